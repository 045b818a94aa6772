#include "qface/eval/ijbs.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <string_view>

#include "qface/core/error.h"
#include "qface/core/text.h"
#include "qface/core/fs.h"
#include "qface/eval/features.h"

namespace qface::eval {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string lower(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return u;
}

// Column of each wanted header name (case-insensitive); errors name the file and line.
std::vector<int> header_columns(const std::vector<std::string_view>& fields, const std::vector<std::string>& want,
                                const fs::path& file, int64_t line) {
  std::vector<int> col(want.size(), -1);
  for (size_t i = 0; i < fields.size(); ++i)
    for (size_t w = 0; w < want.size(); ++w)
      if (lower(fields[i]) == lower(want[w])) col[w] = static_cast<int>(i);
  std::string names;
  for (const auto& w : want) {
    if (!names.empty()) names += ',';
    names += w;
  }
  for (int c : col) require(c >= 0, "{}:{}: header must name the columns {}", file.string(), line, names);
  return col;
}

bool ends_with_path(std::string_view s, std::string_view suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         s[s.size() - suffix.size() - 1] == '/';
}

std::string_view base_name(std::string_view s) {
  const size_t slash = s.rfind('/');
  return slash == std::string_view::npos ? s : s.substr(slash + 1);
}

IjbsProtocol read_protocol(const fs::path& file, const std::string& name, const IjbsMeta& meta) {
  IjbsProtocol p;
  p.name = name;
  p.file = file;
  const std::string text = read_file(file);
  std::vector<int> col;
  // Rows usually repeat one gallery list: each distinct text is parsed once.
  std::unordered_map<std::string_view, int32_t> seen;
  std::vector<std::vector<int64_t>> sorted;  // sorted copy of each gallery (probe-in-gallery check)
  for_each_line(text, [&](int64_t ln, std::string_view line) {
    if (is_blank(line)) return;
    const auto f = split_fields(line, ',');
    if (col.empty()) {
      col = header_columns(f, {"PROBE_TEMPLATE_ID", "GALLERY_TEMPLATE_IDS"}, file, ln);
      return;
    }
    require(f.size() == 2, "{}:{}: {} fields, expected 2 (PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS with ';' between "
            "gallery ids)", file.string(), ln, f.size());
    const int64_t probe = parse_int(f[static_cast<size_t>(col[0])], file, ln, "PROBE_TEMPLATE_ID");
    require(meta.subject_of.count(probe), "{}:{}: probe template {} is not in {}", file.string(), ln, probe,
            meta.templates_file.filename().string());
    const std::string_view gtext = f[static_cast<size_t>(col[1])];
    auto [it, inserted] = seen.emplace(gtext, static_cast<int32_t>(p.galleries.size()));
    if (inserted) {
      std::vector<int64_t> ids;
      for (std::string_view id : split_fields(gtext, ';')) {
        require(!id.empty(), "{}:{}: empty gallery template id (GALLERY_TEMPLATE_IDS are separated by ';')",
                file.string(), ln);
        const int64_t t = parse_int(id, file, ln, "gallery template id");
        require(meta.subject_of.count(t), "{}:{}: gallery template {} is not in {}", file.string(), ln, t,
                meta.templates_file.filename().string());
        ids.push_back(t);
      }
      std::vector<int64_t> s = ids;
      std::sort(s.begin(), s.end());
      const auto dup = std::adjacent_find(s.begin(), s.end());
      require(dup == s.end(), "{}:{}: gallery template {} is listed twice", file.string(), ln,
              dup == s.end() ? 0 : *dup);
      p.galleries.push_back(std::move(ids));
      sorted.push_back(std::move(s));
    }
    require(!std::binary_search(sorted[static_cast<size_t>(it->second)].begin(),
                                sorted[static_cast<size_t>(it->second)].end(), probe),
            "{}:{}: probe template {} is in its own gallery", file.string(), ln, probe);
    p.probe.push_back(probe);
    p.line.push_back(ln);
    p.gallery.push_back(it->second);
  });
  require(!col.empty(), "{}: empty file (expected a PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS header)", file.string());
  require(!p.probe.empty(), "{}: no probe rows after the header", file.string());
  return p;
}

}  // namespace

const char* media_name(IjbsMedia m) {
  switch (m) {
    case IjbsMedia::kSingle: return "single";
    case IjbsMedia::kBooking: return "booking";
    case IjbsMedia::kVideo: return "video";
  }
  return "?";
}

IjbsMeta load_ijbs_meta(const fs::path& dir) {
  require(fs::is_directory(dir), "{}: IJB-S meta folder not found", dir.string());
  IjbsMeta m;
  m.dir = dir;
  m.templates_file = dir / "templates.csv";
  require(fs::exists(m.templates_file), "{}: no templates.csv (TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA per image)",
          dir.string());
  const fs::path& file = m.templates_file;
  {
    const std::string text = read_file(file);
    std::vector<int> col;
    size_t need = 0;
    for_each_line(text, [&](int64_t ln, std::string_view line) {
      if (is_blank(line)) return;
      const auto f = split_fields(line, ',');
      if (col.empty()) {
        col = header_columns(f, {"TEMPLATE_ID", "SUBJECT_ID", "FILENAME", "MEDIA"}, file, ln);
        need = static_cast<size_t>(*std::max_element(col.begin(), col.end())) + 1;
        return;
      }
      require(f.size() >= need, "{}:{}: {} fields, expected {}", file.string(), ln, f.size(), need);
      const int64_t t = parse_int(f[static_cast<size_t>(col[0])], file, ln, "TEMPLATE_ID");
      const int64_t s = parse_int(f[static_cast<size_t>(col[1])], file, ln, "SUBJECT_ID");
      const std::string_view name = f[static_cast<size_t>(col[2])];
      require(!name.empty(), "{}:{}: empty FILENAME", file.string(), ln);
      const std::string media = lower(f[static_cast<size_t>(col[3])]);
      IjbsMedia md = IjbsMedia::kVideo;
      if (media == "single") md = IjbsMedia::kSingle;
      else if (media == "booking") md = IjbsMedia::kBooking;
      else if (media == "video") md = IjbsMedia::kVideo;
      else fail("{}:{}: MEDIA '{}' is not single, booking or video", file.string(), ln, std::string(f[static_cast<size_t>(col[3])]));
      auto [its, new_s] = m.subject_of.emplace(t, s);
      require(its->second == s, "{}:{}: template {} has two subjects ({} and {})", file.string(), ln, t, its->second, s);
      auto [itm, new_m] = m.media_of.emplace(t, md);
      require(itm->second == md, "{}:{}: template {} mixes media {} and {}", file.string(), ln, t,
              media_name(itm->second), media_name(md));
      m.files.emplace_back(name);
      m.template_id.push_back(t);
      m.subject_id.push_back(s);
      m.media.push_back(md);
      m.line.push_back(ln);
    });
    require(!col.empty(), "{}: empty file (expected a TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA header)", file.string());
    require(!m.files.empty(), "{}: no rows after the header", file.string());
  }
  for (const char* name : kIjbsProtocols) {
    const fs::path p = dir / (std::string(name) + ".csv");
    if (fs::exists(p)) m.protocols.push_back(read_protocol(p, name, m));
  }
  require(!m.protocols.empty(), "{}: no protocol file (surveillance_to_single.csv, surveillance_to_booking.csv or "
          "surveillance_to_surveillance.csv)", dir.string());
  spdlog::info("ijbs meta {}: {} rows, {} templates, {} protocols", dir.string(), m.files.size(), m.subject_of.size(),
               m.protocols.size());
  return m;
}

std::string Fusion::name() const {
  switch (kind) {
    case Kind::kMean: return "mean";
    case Kind::kNorm: return "norm";
    case Kind::kTopK: return "topk:" + std::to_string(k);
  }
  return "?";
}

Fusion parse_fusion(const std::string& text) {
  Fusion f;
  if (text == "mean") return f;
  if (text == "norm") {
    f.kind = Fusion::Kind::kNorm;
    return f;
  }
  if (text.rfind("topk:", 0) == 0) {
    const std::string k = text.substr(5);
    int v = 0;
    auto [p, ec] = std::from_chars(k.data(), k.data() + k.size(), v);
    require(ec == std::errc() && p == k.data() + k.size() && v >= 1, "fusion '{}': K must be a positive integer", text);
    f.kind = Fusion::Kind::kTopK;
    f.k = v;
    return f;
  }
  fail("fusion '{}': expected mean, norm or topk:K", text);
}

Templates fuse_templates(const torch::Tensor& features, const torch::Tensor& norms, const std::vector<int64_t>& rows,
                         const std::vector<int64_t>& template_id, const Fusion& fusion) {
  require(rows.size() == template_id.size(), "fuse templates: {} rows for {} template ids", rows.size(),
          template_id.size());
  require(norms.numel() == features.size(0), "fuse templates: {} norms for {} feature rows", norms.numel(),
          features.size(0));
  TemplateOptions opt;
  if (fusion.kind != Fusion::Kind::kTopK) {
    // One media per template: the IJB template is then the (weighted) frame mean.
    opt.norm_weighted = fusion.kind == Fusion::Kind::kNorm;
    return build_templates(features, norms, rows, template_id, template_id, {}, opt);
  }
  require(fusion.k >= 1, "fuse templates: top-k needs k >= 1, got {}", fusion.k);
  torch::Tensor nrm = norms.to(torch::kFloat32).contiguous();
  const float* NR = nrm.data_ptr<float>();
  // Entries grouped by template (first-appearance order), highest norm first, ties by position.
  std::unordered_map<int64_t, int64_t> dense;
  std::vector<int64_t> group(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    group[i] = dense.emplace(template_id[i], static_cast<int64_t>(dense.size())).first->second;
  std::vector<int64_t> order(rows.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if (group[a] != group[b]) return group[a] < group[b];
    const float na = NR[rows[a]], nb = NR[rows[b]];
    return na != nb ? na > nb : a < b;
  });
  std::vector<int64_t> keep_rows, keep_tid;
  keep_rows.reserve(rows.size());
  keep_tid.reserve(rows.size());
  int64_t taken = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    if (k == 0 || group[order[k]] != group[order[k - 1]]) taken = 0;
    if (taken++ < fusion.k) {
      keep_rows.push_back(rows[order[k]]);
      keep_tid.push_back(template_id[order[k]]);
    }
  }
  return build_templates(features, norms, keep_rows, keep_tid, keep_tid, {}, opt);
}

std::vector<int64_t> match_files(const IjbsMeta& meta, const std::vector<std::string>& files) {
  constexpr int64_t kAmbiguous = -2;
  std::unordered_map<std::string_view, int64_t> exact;
  exact.reserve(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    auto [it, inserted] = exact.emplace(files[i], static_cast<int64_t>(i));
    if (!inserted) it->second = kAmbiguous;
  }
  // Base-name chains for suffix matches, built only when some name has no
  // exact match (features embedded from the listed paths need none).
  std::unordered_map<std::string_view, int64_t> first_by_base;  // base name -> first entry
  std::vector<int64_t> next_same_base;                           // chain of entries with one base name
  auto build_bases = [&] {
    if (!next_same_base.empty() || files.empty()) return;
    next_same_base.assign(files.size(), -1);
    first_by_base.reserve(files.size());
    std::unordered_map<std::string_view, int64_t> last_by_base;
    last_by_base.reserve(files.size());
    for (size_t i = 0; i < files.size(); ++i) {
      const std::string_view b = base_name(files[i]);
      auto [lt, first] = last_by_base.emplace(b, static_cast<int64_t>(i));
      if (first) {
        first_by_base.emplace(b, static_cast<int64_t>(i));
      } else {
        next_same_base[static_cast<size_t>(lt->second)] = static_cast<int64_t>(i);
        lt->second = static_cast<int64_t>(i);
      }
    }
  };
  // Prefix rules learnt from unambiguous suffix matches: files.txt name = add + FILENAME without `strip`.
  struct Rule {
    std::string strip, add;
  };
  std::vector<Rule> rules;
  std::string key;
  auto lookup = [&](std::string_view k) -> int64_t {
    auto it = exact.find(k);
    return it == exact.end() ? -1 : it->second;
  };
  std::vector<int64_t> out(meta.files.size(), -1);
  for (size_t i = 0; i < meta.files.size(); ++i) {
    const std::string& F = meta.files[i];
    int64_t r = lookup(F);
    for (size_t k = 0; r == -1 && k < rules.size(); ++k) {
      if (F.compare(0, rules[k].strip.size(), rules[k].strip) != 0) continue;
      key.assign(rules[k].add).append(F, rules[k].strip.size());
      r = lookup(key);
    }
    if (r == -1) {
      build_bases();
      auto it = first_by_base.find(base_name(F));
      int64_t found = -1;
      for (int64_t e = it == first_by_base.end() ? -1 : it->second; e >= 0; e = next_same_base[static_cast<size_t>(e)]) {
        const std::string& E = files[static_cast<size_t>(e)];
        if (E == F || ends_with_path(E, F) || ends_with_path(F, E)) {
          require(found < 0, "{}:{}: '{}' matches several rows of files.txt ('{}' and '{}')",
                  meta.templates_file.string(), meta.line[i], F, files[static_cast<size_t>(found)], E);
          found = e;
        }
      }
      if (found >= 0) {
        const std::string& E = files[static_cast<size_t>(found)];
        if (rules.size() < 16)
          rules.push_back(E.size() >= F.size() ? Rule{"", E.substr(0, E.size() - F.size())}
                                               : Rule{F.substr(0, F.size() - E.size()), ""});
        r = lookup(E);
      }
    }
    require(r != kAmbiguous, "{}:{}: '{}' is listed several times in files.txt", meta.templates_file.string(),
            meta.line[i], F);
    require(r >= 0, "{}:{}: '{}' has no row in the features' files.txt", meta.templates_file.string(), meta.line[i], F);
    out[i] = r;
  }
  return out;
}

std::vector<double> IjbsProtocolResult::hits_at_rank(int k) const {
  std::vector<double> h;
  for (int64_t p = 0; p < outcomes.size(); ++p)
    if (outcomes.mated[p]) h.push_back(outcomes.rank[p] <= k ? 1.0 : 0.0);
  return h;
}

std::vector<double> IjbsProtocolResult::open_set_hits(double fpir) const {
  double t = std::nan("");
  open_set_tpir(outcomes, fpir, {}, &t);  // NaN threshold: no non-mated probes, no hits defined
  std::vector<double> h;
  for (int64_t p = 0; p < outcomes.size(); ++p) {
    if (!outcomes.mated[p]) continue;
    if (std::isnan(t)) h.push_back(std::nan(""));
    else h.push_back(outcomes.rank[p] == 1 && outcomes.mate_score[p] > t ? 1.0 : 0.0);
  }
  return h;
}

const IjbsProtocolResult* IjbsResult::find(const std::string& protocol) const {
  for (const auto& p : protocols)
    if (p.protocol == protocol) return &p;
  return nullptr;
}

IjbsResult evaluate_ijbs(const IjbsMeta& meta, const torch::Tensor& features, const torch::Tensor& norms,
                         const std::vector<std::string>& files, const IjbsOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  require(static_cast<int64_t>(files.size()) == features.size(0), "ijbs: {} file names for {} feature rows",
          files.size(), features.size(0));
  IjbsResult r;
  r.fusion = options.fusion.name();
  const std::vector<int64_t> rows = match_files(meta, files);
  r.timings.push_back({"match", seconds_since(t0)});
  auto t1 = std::chrono::steady_clock::now();
  const Templates tpl = fuse_templates(features, norms, rows, meta.template_id, options.fusion);
  r.frames = static_cast<int64_t>(rows.size());
  r.templates = static_cast<int64_t>(tpl.ids.size());
  r.timings.push_back({"templates", seconds_since(t1)});
  for (const IjbsProtocol& proto : meta.protocols) {
    auto t2 = std::chrono::steady_clock::now();
    IjbsProtocolResult pr;
    pr.protocol = proto.name;
    const int64_t P = static_cast<int64_t>(proto.probe.size());
    pr.probe_template = proto.probe;
    for (int64_t t : proto.probe) pr.probe_subject.push_back(meta.subject_of.at(t));
    pr.outcomes.resize(P);
    // Probes grouped by their gallery list: one GEMM per distinct gallery.
    std::vector<std::vector<int64_t>> by_gallery(proto.galleries.size());
    for (int64_t p = 0; p < P; ++p) by_gallery[static_cast<size_t>(proto.gallery[static_cast<size_t>(p)])].push_back(p);
    std::unordered_map<int64_t, char> union_ids;
    for (size_t g = 0; g < proto.galleries.size(); ++g) {
      const auto& probes = by_gallery[g];
      if (probes.empty()) continue;
      std::vector<int64_t> grow, gsubj, prow;
      for (int64_t t : proto.galleries[g]) {
        grow.push_back(tpl.row(t));
        gsubj.push_back(meta.subject_of.at(t));
        union_ids.emplace(t, 0);
      }
      std::vector<int64_t> psubj;
      for (int64_t p : probes) {
        prow.push_back(tpl.row(proto.probe[static_cast<size_t>(p)]));
        psubj.push_back(pr.probe_subject[static_cast<size_t>(p)]);
      }
      const torch::Tensor gf = tpl.features.index_select(0, torch::tensor(grow, torch::kInt64));
      const torch::Tensor pf = tpl.features.index_select(0, torch::tensor(prow, torch::kInt64));
      const ProbeOutcomes o = score_probes(pf, psubj, gf, gsubj);
      for (size_t k = 0; k < probes.size(); ++k) {
        const int64_t p = probes[k];
        pr.outcomes.mated[p] = o.mated[k];
        pr.outcomes.rank[p] = o.rank[k];
        pr.outcomes.mate_score[p] = o.mate_score[k];
        pr.outcomes.top_score[p] = o.top_score[k];
      }
    }
    pr.summary = summarize_identification(pr.outcomes, static_cast<int64_t>(union_ids.size()), options.ks, options.fpirs);
    pr.summary.gallery = proto.name;
    r.timings.push_back({proto.name, seconds_since(t2)});
    r.protocols.push_back(std::move(pr));
  }
  r.timings.push_back({"total", seconds_since(t0)});
  return r;
}

json to_json(const IjbsResult& r, bool per_probe) {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(); };
  json j;
  j["frames"] = r.frames;
  j["templates"] = r.templates;
  j["fusion"] = r.fusion;
  json protocols = json::array();
  for (const auto& p : r.protocols) {
    const IdentificationResult& s = p.summary;
    json jp{{"protocol", p.protocol},
            {"probes", p.outcomes.size()},
            {"mated_probes", s.mated_probes},
            {"nonmated_probes", s.nonmated_probes},
            {"gallery_templates", s.gallery_templates}};
    for (auto [k, v] : s.cmc) jp["cmc"]["top" + std::to_string(k)] = v;
    jp["tpir_at_fpir"] = json::array();
    for (const auto& t : s.tpir_at_fpir)
      jp["tpir_at_fpir"].push_back({{"fpir", t.fpir}, {"tpir", num(t.tpir)}, {"threshold", num(t.threshold)}});
    if (per_probe) {
      json pp;
      pp["template"] = p.probe_template;
      pp["subject"] = p.probe_subject;
      pp["mated"] = p.outcomes.mated;
      pp["rank"] = p.outcomes.rank;
      json top = json::array(), mate = json::array();
      for (int64_t i = 0; i < p.outcomes.size(); ++i) {
        top.push_back(num(p.outcomes.top_score[i]));
        mate.push_back(num(p.outcomes.mate_score[i]));
      }
      pp["top_score"] = std::move(top);
      pp["mate_score"] = std::move(mate);
      jp["per_probe"] = std::move(pp);
    }
    protocols.push_back(std::move(jp));
  }
  j["protocols"] = std::move(protocols);
  for (auto& [k, v] : r.timings) j["seconds"][k] = v;
  return j;
}

IjbsResult ijbs_result_from_json(const json& j, const IjbsOptions& options) {
  IjbsResult r;
  r.frames = j.at("frames").get<int64_t>();
  r.templates = j.at("templates").get<int64_t>();
  r.fusion = j.at("fusion").get<std::string>();
  auto score = [](const json& v) {
    return v.is_number() ? v.get<float>() : -std::numeric_limits<float>::infinity();
  };
  for (const json& jp : j.at("protocols")) {
    IjbsProtocolResult p;
    p.protocol = jp.at("protocol").get<std::string>();
    const json& pp = jp.at("per_probe");
    p.probe_template = pp.at("template").get<std::vector<int64_t>>();
    p.probe_subject = pp.at("subject").get<std::vector<int64_t>>();
    p.outcomes.mated = pp.at("mated").get<std::vector<uint8_t>>();
    p.outcomes.rank = pp.at("rank").get<std::vector<int64_t>>();
    for (const json& v : pp.at("top_score")) p.outcomes.top_score.push_back(score(v));
    for (const json& v : pp.at("mate_score")) p.outcomes.mate_score.push_back(score(v));
    const std::size_t n = p.probe_template.size();
    require(p.probe_subject.size() == n && p.outcomes.mated.size() == n && p.outcomes.rank.size() == n &&
                p.outcomes.top_score.size() == n && p.outcomes.mate_score.size() == n,
            "ijbs: per-probe arrays of {} differ in length", p.protocol);
    p.summary = summarize_identification(p.outcomes, jp.at("gallery_templates").get<int64_t>(), options.ks,
                                         options.fpirs);
    p.summary.gallery = p.protocol;
    r.protocols.push_back(std::move(p));
  }
  return r;
}

namespace {
void require_same_probes(const IjbsProtocolResult& a, const IjbsProtocolResult& b) {
  require(a.protocol == b.protocol && a.probe_template == b.probe_template && a.outcomes.mated == b.outcomes.mated,
          "ijbs: paired comparison of different probe sets ({}: {} probes vs {}: {} probes)", a.protocol,
          a.probe_template.size(), b.protocol, b.probe_template.size());
}
}  // namespace

Interval paired_rank_difference(const IjbsProtocolResult& a, const IjbsProtocolResult& b, int k,
                                const BootstrapOptions& options) {
  require_same_probes(a, b);
  const std::vector<double> ha = a.hits_at_rank(k), hb = b.hits_at_rank(k);
  return paired_mean_difference(ha, hb, options);
}

Interval paired_tpir_difference(const IjbsProtocolResult& a, const IjbsProtocolResult& b, double fpir,
                                const BootstrapOptions& options) {
  require_same_probes(a, b);
  return bootstrap(a.outcomes.size(), [&](std::span<const int64_t> draw) {
    return open_set_tpir(a.outcomes, fpir, draw) - open_set_tpir(b.outcomes, fpir, draw);
  }, options);
}

}  // namespace qface::eval
