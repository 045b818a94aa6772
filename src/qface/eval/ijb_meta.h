// IJB-B / IJB-C meta files (ijb.h has the protocols): which images belong to
// which template and media, the 1:1 pairs, the 1:N gallery and probe lists.
// No LibTorch here, so the meta reader and its fuzzer build alone.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace qface::eval {

// One template list of the 1:N protocol (a gallery or the probes): one row per image.
struct TemplateList {
  std::string name;  // "G1", "G2", "probe"
  std::filesystem::path file;
  std::vector<std::string> images;
  std::vector<int64_t> template_id, subject_id;
};

struct IjbMeta {
  std::filesystem::path dir;
  std::string prefix;  // e.g. "ijbc"
  // *_face_tid_mid.txt: one row per image.
  std::vector<std::string> images;
  std::vector<int64_t> template_id, media_id;
  std::vector<float> detector_score;  // from *_name_5pts_score.txt, empty when absent
  // *_template_pair_label.txt
  std::filesystem::path pair_file;
  std::vector<int64_t> pair_t1, pair_t2;
  std::vector<uint8_t> pair_label;
  // 1:N lists (empty when the files are absent)
  std::vector<TemplateList> galleries;
  std::optional<TemplateList> probes;
};

// Finds *_face_tid_mid.txt in `dir` (or dir/meta) and reads every file above.
IjbMeta load_ijb_meta(const std::filesystem::path& dir);

// Parses the meta files of `prefix` in `dir`, their text given by
// read(suffix) (suffix "_face_tid_mid.txt", "_name_5pts_score.txt",
// "_template_pair_label.txt", "_1N_gallery_G1.csv", "_1N_gallery_G2.csv",
// "_1N_probe_mixed.csv"; nullopt when the file is absent). Errors name
// dir/prefix+suffix and the line. load_ijb_meta reads them from disk; tests
// and the fuzzer give them from memory.
IjbMeta parse_ijb_meta(const std::filesystem::path& dir, const std::string& prefix,
                       const std::function<std::optional<std::string>(const std::string& suffix)>& read);

}  // namespace qface::eval
