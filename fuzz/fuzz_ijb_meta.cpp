// IJB meta files -> parse_ijb_meta. Input: up to six files separated by NUL
// bytes, in the order tid_mid, 5pts score, pair labels, gallery G1, gallery
// G2, probes; files past the end of the input are absent.
#include "fuzz/fuzz_util.h"
#include "qface/core/error.h"
#include "qface/eval/ijb_meta.h"

namespace qface::fuzz {
int one_ijb_meta(const uint8_t* data, std::size_t size) {
  static const char* kSuffixes[] = {"_face_tid_mid.txt",   "_name_5pts_score.txt", "_template_pair_label.txt",
                                    "_1N_gallery_G1.csv", "_1N_gallery_G2.csv",   "_1N_probe_mixed.csv"};
  const auto parts = qface::fuzz::split(qface::fuzz::as_view(data, size), std::string_view("\0", 1), 6);
  try {
    (void)qface::eval::parse_ijb_meta("fuzz", "ijbc", [&](const std::string& suffix) -> std::optional<std::string> {
      for (std::size_t i = 0; i < 6; ++i)
        if (suffix == kSuffixes[i]) return i < parts.size() ? std::optional<std::string>(parts[i]) : std::nullopt;
      __builtin_trap();  // a suffix this target does not know
    });
  } catch (const qface::Error&) {
  }
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(ijb_meta)
