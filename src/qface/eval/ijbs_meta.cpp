#include "qface/eval/ijbs_meta.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "qface/core/fs.h"
#include "qface/eval/ijbs.h"

namespace qface::eval {
namespace fs = std::filesystem;

IjbsTemplatesCsv::IjbsTemplatesCsv() : text_("TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n") {}

void IjbsTemplatesCsv::add(int64_t template_id, int64_t subject_id, std::string_view file, std::string_view media) {
  fmt::format_to(std::back_inserter(text_), "{},{},{},{}\n", template_id, subject_id, file, media);
}

void IjbsTemplatesCsv::write(const fs::path& dir) const { write_file_atomic(dir / "templates.csv", text_); }

void IjbsTemplateRoles::add_video(int64_t template_id, bool enrolled, bool first) {
  videos.push_back(template_id);
  (enrolled && first ? s2s_gallery : s2s_probes).push_back(template_id);
}

std::vector<IjbsProtocolLists> ijbs_protocols(const IjbsTemplateRoles& roles) {
  return {{kIjbsProtocols[0], roles.videos, roles.singles},
          {kIjbsProtocols[1], roles.videos, roles.bookings},
          {kIjbsProtocols[2], roles.s2s_probes, roles.s2s_gallery}};
}

void write_ijbs_protocol(const fs::path& dir, const IjbsProtocolLists& protocol) {
  const std::string gallery = fmt::format("{}", fmt::join(protocol.gallery, ";"));
  std::string text = "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n";
  for (int64_t p : protocol.probes) fmt::format_to(std::back_inserter(text), "{},{}\n", p, gallery);
  write_file_atomic(dir / (protocol.name + ".csv"), text);
}

}  // namespace qface::eval
