// Writing an IJB-S-style meta folder (the format ijbs.h describes and
// load_ijbs_meta reads): templates.csv and the three protocol files. Every
// producer (`qface synth`'s DIR/ijbs, `qface bench ijbs`) writes through here,
// so the format is written in one place. No LibTorch here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace qface::eval {

// templates.csv, built row by row (a million rows at IJB-S scale).
class IjbsTemplatesCsv {
 public:
  IjbsTemplatesCsv();
  // `file` relative to the meta folder; `media` "single", "booking" or "video".
  void add(int64_t template_id, int64_t subject_id, std::string_view file, std::string_view media);
  // Writes dir/templates.csv.
  void write(const std::filesystem::path& dir) const;

 private:
  std::string text_;
};

// The template ids of a layout by role (docs/ijbs.md): an enrolled subject has
// a single photo, a booking set and videos; an unenrolled one videos only.
struct IjbsTemplateRoles {
  std::vector<int64_t> singles, bookings, videos;
  // Surveillance-to-surveillance: an enrolled subject's first video is its
  // gallery, every other video (an unenrolled subject's all) a probe.
  std::vector<int64_t> s2s_gallery, s2s_probes;
  void add_video(int64_t template_id, bool enrolled, bool first);
};

struct IjbsProtocolLists {
  std::string name;  // e.g. "surveillance_to_single"; the file is name + ".csv"
  std::vector<int64_t> probes, gallery;
};

// The three protocols, in kIjbsProtocols order: every video against the
// singles, every video against the booking sets, and S2S.
std::vector<IjbsProtocolLists> ijbs_protocols(const IjbsTemplateRoles& roles);

// Writes dir/<name>.csv: one row per probe, the whole gallery on each row.
void write_ijbs_protocol(const std::filesystem::path& dir, const IjbsProtocolLists& protocol);

}  // namespace qface::eval
