// IJB meta files (ijb_meta.h): finding them and parsing their text.
#include "qface/eval/ijb_meta.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <unordered_map>

#include "qface/core/error.h"
#include "qface/core/text.h"
#include "qface/core/fs.h"

namespace qface::eval {
namespace fs = std::filesystem;

namespace {

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

TemplateList parse_template_csv(const std::string& text, const fs::path& file, const std::string& name) {
  TemplateList list;
  list.name = name;
  list.file = file;
  int col_t = -1, col_s = -1, col_f = -1;
  for_each_line(text, [&](int64_t ln, std::string_view line) {
    if (is_blank(line)) return;
    auto f = split_fields(line, ',');
    if (col_t < 0) {
      for (size_t i = 0; i < f.size(); ++i) {
        const std::string h = upper(f[i]);
        if (h == "TEMPLATE_ID") col_t = static_cast<int>(i);
        if (h == "SUBJECT_ID") col_s = static_cast<int>(i);
        if (h == "FILENAME") col_f = static_cast<int>(i);
      }
      require(col_t >= 0 && col_s >= 0 && col_f >= 0,
              "{}:{}: header must name TEMPLATE_ID, SUBJECT_ID and FILENAME columns", file.string(), ln);
      return;
    }
    const size_t need = static_cast<size_t>(std::max({col_t, col_s, col_f})) + 1;
    require(f.size() >= need, "{}:{}: {} fields, expected at least {}", file.string(), ln, f.size(), need);
    list.template_id.push_back(parse_int(f[col_t], file, ln, "TEMPLATE_ID"));
    list.subject_id.push_back(parse_int(f[col_s], file, ln, "SUBJECT_ID"));
    list.images.emplace_back(f[col_f]);
  });
  require(col_t >= 0, "{}: empty file (expected a TEMPLATE_ID,SUBJECT_ID,FILENAME header)", file.string());
  return list;
}

}  // namespace

IjbMeta parse_ijb_meta(const fs::path& dir, const std::string& prefix,
                       const std::function<std::optional<std::string>(const std::string& suffix)>& read) {
  IjbMeta m;
  m.dir = dir;
  m.prefix = prefix;
  auto meta_file = [&](const std::string& suffix) { return m.dir / (m.prefix + suffix); };
  const fs::path tid_mid = meta_file("_face_tid_mid.txt");
  {
    const std::optional<std::string> tid_mid_text = read("_face_tid_mid.txt");
    require(tid_mid_text.has_value(), "{}: not found", tid_mid.string());
    const std::string& text = *tid_mid_text;
    for_each_line(text, [&](int64_t ln, std::string_view line) {
      if (is_blank(line)) return;
      auto f = split_fields(line);
      require(f.size() >= 3, "{}:{}: expected 'image template_id media_id', got {} fields", tid_mid.string(), ln,
              f.size());
      m.images.emplace_back(f[0]);
      m.template_id.push_back(parse_int(f[1], tid_mid, ln, "template id"));
      m.media_id.push_back(parse_int(f[2], tid_mid, ln, "media id"));
    });
    require(!m.images.empty(), "{}: no images", tid_mid.string());
  }
  const fs::path pts = meta_file("_name_5pts_score.txt");
  if (const std::optional<std::string> pts_text = read("_name_5pts_score.txt")) {
    std::unordered_map<std::string, float> score;
    const std::string& text = *pts_text;
    for_each_line(text, [&](int64_t ln, std::string_view line) {
      if (is_blank(line)) return;
      auto f = split_fields(line);
      require(f.size() >= 12, "{}:{}: expected 'image x1 y1 ... x5 y5 score', got {} fields", pts.string(), ln,
              f.size());
      score[std::string(f[0])] = static_cast<float>(parse_double(f[11], pts, ln, "detector score"));
    });
    m.detector_score.resize(m.images.size(), std::nanf(""));
    for (size_t i = 0; i < m.images.size(); ++i) {
      auto it = score.find(m.images[i]);
      if (it != score.end()) m.detector_score[i] = it->second;
    }
  }
  const fs::path pairs = meta_file("_template_pair_label.txt");
  if (const std::optional<std::string> pairs_text = read("_template_pair_label.txt")) {
    m.pair_file = pairs;
    const std::string& text = *pairs_text;
    const size_t guess = text.size() / 12 + 1;
    m.pair_t1.reserve(guess);
    m.pair_t2.reserve(guess);
    m.pair_label.reserve(guess);
    for_each_line(text, [&](int64_t ln, std::string_view line) {
      auto f = split_fields(line);
      if (f.empty()) {
        require(false, "{}:{}: empty line in the pair list", pairs.string(), ln);
      }
      require(f.size() >= 3, "{}:{}: expected 't1 t2 label', got {} fields", pairs.string(), ln, f.size());
      m.pair_t1.push_back(parse_int(f[0], pairs, ln, "template id"));
      m.pair_t2.push_back(parse_int(f[1], pairs, ln, "template id"));
      const int64_t l = parse_int(f[2], pairs, ln, "label");
      require(l == 0 || l == 1, "{}:{}: label {} is not 0 or 1", pairs.string(), ln, l);
      m.pair_label.push_back(static_cast<uint8_t>(l));
    });
  }
  for (const char* g : {"G1", "G2"}) {
    const std::string suffix = std::string("_1N_gallery_") + g + ".csv";
    if (const std::optional<std::string> text = read(suffix)) m.galleries.push_back(parse_template_csv(*text, meta_file(suffix), g));
  }
  if (const std::optional<std::string> text = read("_1N_probe_mixed.csv"))
    m.probes = parse_template_csv(*text, meta_file("_1N_probe_mixed.csv"), "probe");
  return m;
}


IjbMeta load_ijb_meta(const fs::path& dir_in) {
  require(fs::is_directory(dir_in), "{}: IJB meta folder not found", dir_in.string());
  fs::path tid_mid;
  for (const fs::path& d : {dir_in, dir_in / "meta"}) {
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d)) {
      const std::string n = e.path().filename().string();
      const std::string suffix = "_face_tid_mid.txt";
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
        require(tid_mid.empty(), "{}: several *_face_tid_mid.txt files ({} and {})", d.string(),
                tid_mid.filename().string(), n);
        tid_mid = e.path();
      }
    }
    if (!tid_mid.empty()) break;
  }
  require(!tid_mid.empty(), "{}: no *_face_tid_mid.txt (IJB meta: image template_id media_id per line)",
          dir_in.string());
  const fs::path dir = tid_mid.parent_path();
  const std::string fname = tid_mid.filename().string();
  const std::string prefix = fname.substr(0, fname.size() - std::string("_face_tid_mid.txt").size());
  IjbMeta m = parse_ijb_meta(dir, prefix, [&](const std::string& suffix) -> std::optional<std::string> {
    const fs::path p = dir / (prefix + suffix);
    if (suffix != "_face_tid_mid.txt" && !fs::exists(p)) return std::nullopt;
    return read_file(p);
  });
  spdlog::info("ijb meta {} ({}): {} images, {} pairs, {} galleries{}", m.dir.string(), m.prefix, m.images.size(),
               m.pair_label.size(), m.galleries.size(), m.probes ? ", probes" : "");
  return m;
}

}  // namespace qface::eval
