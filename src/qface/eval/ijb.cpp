#include "qface/eval/ijb.h"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/eval/features.h"
#include "qface/eval/verify.h"

namespace qface::eval {
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Dot product of two float rows with 16 independent accumulators (vectorizes).
inline float dot(const float* a, const float* b, int64_t d) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= d; i += 16)
    for (int k = 0; k < 16; ++k) acc[k] += a[i + k] * b[i + k];
  float s = 0;
  for (; i < d; ++i) s += a[i] * b[i];
  for (int k = 0; k < 16; ++k) s += acc[k];
  return s;
}

}  // namespace

int64_t Templates::row(int64_t id) const {
  auto it = index.find(id);
  return it == index.end() ? -1 : it->second;
}

Templates build_templates(const torch::Tensor& features, const torch::Tensor& norms,
                          const std::vector<int64_t>& image_rows, const std::vector<int64_t>& template_id,
                          const std::vector<int64_t>& media_id, const std::vector<float>& weights,
                          const TemplateOptions& options) {
  const size_t n = image_rows.size();
  require(template_id.size() == n && media_id.size() == n, "templates: image, template and media counts differ");
  require(weights.empty() || weights.size() == n, "templates: {} weights for {} images", weights.size(), n);
  torch::Tensor feats = features.to(torch::kFloat32).contiguous();
  torch::Tensor nrm = norms.to(torch::kFloat32).contiguous();
  const int64_t D = feats.size(1);
  const float* F = feats.data_ptr<float>();
  const float* NR = nrm.data_ptr<float>();

  Templates t;
  std::vector<int64_t> dense(n);
  for (size_t i = 0; i < n; ++i) {
    auto [it, inserted] = t.index.emplace(template_id[i], static_cast<int64_t>(t.ids.size()));
    if (inserted) t.ids.push_back(template_id[i]);
    dense[i] = it->second;
  }
  const int64_t T = static_cast<int64_t>(t.ids.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return dense[a] != dense[b] ? dense[a] < dense[b] : (media_id[a] != media_id[b] ? media_id[a] < media_id[b] : a < b);
  });
  std::vector<int64_t> start(T + 1, 0);
  for (size_t i = 0; i < n; ++i) ++start[dense[i] + 1];
  for (int64_t k = 0; k < T; ++k) start[k + 1] += start[k];

  t.features = huge_zeros(T, D);
  float* out = t.features.data_ptr<float>();
  at::parallel_for(0, T, 64, [&](int64_t b, int64_t e) {
    std::vector<float> media(D);
    for (int64_t k = b; k < e; ++k) {
      float* tf = out + k * D;
      int64_t i = start[k];
      while (i < start[k + 1]) {
        const int64_t mid = media_id[order[i]];
        std::fill(media.begin(), media.end(), 0.f);
        int64_t count = 0;
        for (; i < start[k + 1] && media_id[order[i]] == mid; ++i) {
          const int64_t img = order[i];
          const int64_t row = image_rows[img];
          float w = weights.empty() ? 1.f : weights[img];
          if (options.norm_weighted) w *= NR[row];
          const float* f = F + row * D;
          for (int64_t d = 0; d < D; ++d) media[d] += w * f[d];
          ++count;
        }
        const float inv = 1.f / static_cast<float>(count);
        for (int64_t d = 0; d < D; ++d) tf[d] += media[d] * inv;
      }
      double ss = 0;
      for (int64_t d = 0; d < D; ++d) ss += static_cast<double>(tf[d]) * tf[d];
      const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : 0.f;
      for (int64_t d = 0; d < D; ++d) tf[d] *= inv;
    }
  });
  return t;
}

Buffer<int32_t> template_rows(const Templates& t, std::span<const int64_t> ids) {
  const int64_t n = static_cast<int64_t>(ids.size());
  Buffer<int32_t> out(n, -1);
  if (t.ids.empty()) return out;
  const auto [lo_it, hi_it] = std::minmax_element(t.ids.begin(), t.ids.end());
  const int64_t lo = *lo_it, hi = *hi_it;
  if (hi - lo < std::max<int64_t>(int64_t{1} << 26, 0)) {
    std::vector<int32_t> table(hi - lo + 1, -1);
    for (size_t r = 0; r < t.ids.size(); ++r) table[t.ids[r] - lo] = static_cast<int32_t>(r);
    at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        out[i] = ids[i] >= lo && ids[i] <= hi ? table[ids[i] - lo] : -1;
    });
  } else {
    at::parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) out[i] = static_cast<int32_t>(t.row(ids[i]));
    });
  }
  return out;
}

Buffer<float> pair_scores(const torch::Tensor& template_features, std::span<const int32_t> r1,
                          std::span<const int32_t> r2) {
  require(r1.size() == r2.size(), "pair scores: {} vs {} template rows", r1.size(), r2.size());
  torch::Tensor tf = template_features.to(torch::kFloat32).contiguous();
  const int64_t T = tf.size(0), D = tf.size(1);
  const float* F = tf.data_ptr<float>();
  const int64_t P = static_cast<int64_t>(r1.size());
  Buffer<float> s(P);
  for (int64_t p = 0; p < P; ++p)
    require(r1[p] >= 0 && r1[p] < T && r2[p] >= 0 && r2[p] < T, "pair scores: pair {} names row {} / {} of {}", p,
            r1[p], r2[p], T);
  // Memory, not arithmetic, bounds this: 15.7M pairs x 2 rows x 2 KB is 64 GB
  // of gathers when done in list order. Pairs are therefore bucketed into
  // tiles of (first-row block, second-row block) with blocks of kBlock rows
  // (kBlock x D x 4 bytes fits the L2 cache), so each tile reads its rows from
  // cache; a counting sort makes the buckets, and scores go back to list order.
  constexpr int64_t kBlock = 256;
  if (P < (1 << 20) || T <= 2 * kBlock) {
    at::parallel_for(0, P, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) s[p] = dot(F + int64_t{r1[p]} * D, F + int64_t{r2[p]} * D, D);
    });
    return s;
  }
  auto tp0 = std::chrono::steady_clock::now();
  const int64_t nb = (T + kBlock - 1) / kBlock, tiles = nb * nb;
  std::vector<int64_t> start(tiles + 1, 0);
  for (int64_t p = 0; p < P; ++p) ++start[(r1[p] / kBlock) * nb + r2[p] / kBlock + 1];
  for (int64_t t = 0; t < tiles; ++t) start[t + 1] += start[t];
  Buffer<int32_t> perm(P);
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t p = 0; p < P; ++p) perm[fill[(r1[p] / kBlock) * nb + r2[p] / kBlock]++] = static_cast<int32_t>(p);
  }
  const double sort_s = seconds_since(tp0);
  // Threads take contiguous runs of tiles with about equal pair counts.
  const int threads = std::max(1, at::get_num_threads());
  const int64_t parts = int64_t{threads} * 8;
  at::parallel_for(0, parts, 1, [&](int64_t b, int64_t e) {
    const int64_t lo = P * b / parts, hi = P * e / parts;
    for (int64_t k = lo; k < hi; ++k) {
      const int32_t p = perm[k];
      s[p] = dot(F + int64_t{r1[p]} * D, F + int64_t{r2[p]} * D, D);
    }
  });
  spdlog::debug("pair scores: {} pairs in {} tiles, bucketing {:.3f} s, dots {:.3f} s", P, tiles, sort_s,
                seconds_since(tp0) - sort_s);
  return s;
}

double open_set_tpir(const ProbeOutcomes& o, double fpir, std::span<const int64_t> items, double* threshold) {
  const int64_t n = items.empty() ? o.size() : static_cast<int64_t>(items.size());
  std::vector<float> nonmated_top;
  int64_t mated = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t p = items.empty() ? k : items[k];
    if (o.mated[p]) ++mated;
    else nonmated_top.push_back(o.top_score[p]);
  }
  if (threshold) *threshold = std::nan("");
  if (nonmated_top.empty()) return std::nan("");
  const double t = threshold_at_fmr(std::move(nonmated_top), fpir);
  if (threshold) *threshold = t;
  if (mated == 0) return std::nan("");
  int64_t hit = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int64_t p = items.empty() ? k : items[k];
    if (o.mated[p] && o.rank[p] == 1 && o.mate_score[p] > t) ++hit;
  }
  return static_cast<double>(hit) / static_cast<double>(mated);
}

IdentificationResult summarize_identification(const ProbeOutcomes& o, int64_t gallery_templates,
                                              const std::vector<int>& ks, const std::vector<double>& fpirs) {
  const int64_t P = o.size();
  IdentificationResult r;
  r.gallery_templates = gallery_templates;
  for (int64_t p = 0; p < P; ++p) (o.mated[p] ? r.mated_probes : r.nonmated_probes) += 1;
  for (int k : ks) {
    int64_t hit = 0;
    for (int64_t p = 0; p < P; ++p)
      if (o.mated[p] && o.rank[p] <= k) ++hit;
    r.cmc.push_back({k, r.mated_probes ? static_cast<double>(hit) / static_cast<double>(r.mated_probes) : 0.0});
  }
  for (double f : fpirs) {
    if (r.nonmated_probes == 0) {
      spdlog::warn("identify: no non-mated probes, TPIR@FPIR undefined");
      r.tpir_at_fpir.push_back({f, std::nan(""), std::nan("")});
      continue;
    }
    // Fewer than 1/FPIR non-mated probes: the threshold would be the top
    // score plus interpolation, not a measurement (null in the JSON).
    if (!fpir_resolved(r.nonmated_probes, f)) {
      r.tpir_at_fpir.push_back({f, std::nan(""), std::nan("")});
      continue;
    }
    double t = 0;
    const double tpir = open_set_tpir(o, f, {}, &t);
    r.tpir_at_fpir.push_back({f, r.mated_probes ? tpir : 0.0, t});
  }
  return r;
}

IdentificationResult identify(const torch::Tensor& probe_features, const std::vector<int64_t>& probe_subject,
                              const torch::Tensor& gallery_features, const std::vector<int64_t>& gallery_subject,
                              const std::vector<int>& ks, const std::vector<double>& fpirs) {
  return summarize_identification(score_probes(probe_features, probe_subject, gallery_features, gallery_subject),
                                  gallery_features.size(0), ks, fpirs);
}

IjbResult evaluate_ijb(const IjbMeta& meta, const torch::Tensor& features, const torch::Tensor& norms,
                       const std::vector<std::string>& files, const IjbOptions& options) {
  auto t0 = std::chrono::steady_clock::now();
  IjbResult r;
  require(static_cast<int64_t>(files.size()) == features.size(0), "ijb: {} file names for {} feature rows",
          files.size(), features.size(0));
  // Image name -> feature row (by base name; full relative path as a fallback).
  std::unordered_map<std::string, int64_t> by_name;
  std::unordered_map<std::string, int> base_count;
  by_name.reserve(files.size() * 2);
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string base = fs::path(files[i]).filename().string();
    by_name.emplace(files[i], static_cast<int64_t>(i));
    if (++base_count[base] == 1) by_name.emplace(base, static_cast<int64_t>(i));
  }
  auto lookup = [&](const std::string& image) -> int64_t {
    auto it = by_name.find(image);
    if (it != by_name.end()) return it->second;
    const std::string base = fs::path(image).filename().string();
    auto bc = base_count.find(base);
    if (bc != base_count.end() && bc->second > 1) return -2;
    it = by_name.find(base);
    return it == by_name.end() ? -1 : it->second;
  };
  const fs::path tid_mid = meta.dir / (meta.prefix + "_face_tid_mid.txt");
  std::vector<int64_t> rows(meta.images.size());
  for (size_t i = 0; i < meta.images.size(); ++i) {
    rows[i] = lookup(meta.images[i]);
    require(rows[i] != -2, "{}: image '{}' (entry {}) matches several rows of files.txt by base name",
            tid_mid.string(), meta.images[i], i + 1);
    require(rows[i] >= 0, "{}: image '{}' (entry {}) has no row in the features' files.txt", tid_mid.string(),
            meta.images[i], i + 1);
  }
  std::vector<float> weights;
  if (options.templates.detector_weighted) {
    require(!meta.detector_score.empty(), "{}: detector-score weighting needs {}_name_5pts_score.txt",
            meta.dir.string(), meta.prefix);
    for (size_t i = 0; i < meta.images.size(); ++i)
      require(std::isfinite(meta.detector_score[i]), "{}_name_5pts_score.txt: no score for image '{}'",
              (meta.dir / meta.prefix).string(), meta.images[i]);
    weights = meta.detector_score;
  }
  Templates tpl = build_templates(features, norms, rows, meta.template_id, meta.media_id, weights, options.templates);
  r.images = static_cast<int64_t>(meta.images.size());
  r.templates = static_cast<int64_t>(tpl.ids.size());
  r.timings.push_back({"templates", seconds_since(t0)});

  if (options.verification && !meta.pair_label.empty()) {
    auto t1 = std::chrono::steady_clock::now();
    const size_t P = meta.pair_label.size();
    Buffer<int32_t> r1 = template_rows(tpl, meta.pair_t1), r2 = template_rows(tpl, meta.pair_t2);
    for (size_t p = 0; p < P; ++p) {
      require(r1[p] >= 0, "{}:{}: template {} is not in {}", meta.pair_file.string(), p + 1, meta.pair_t1[p],
              tid_mid.filename().string());
      require(r2[p] >= 0, "{}:{}: template {} is not in {}", meta.pair_file.string(), p + 1, meta.pair_t2[p],
              tid_mid.filename().string());
    }
    Buffer<float> scores = pair_scores(tpl.features, r1, r2);
    r.timings.push_back({"pair_scores", seconds_since(t1)});
    auto t2 = std::chrono::steady_clock::now();
    r.verification = roc_at_far(scores, meta.pair_label, options.fars);
    r.timings.push_back({"roc", seconds_since(t2)});
  }

  if (options.identification && meta.probes && !meta.galleries.empty()) {
    auto t3 = std::chrono::steady_clock::now();
    // Template features of a list: the 1:1 templates by id; ids the 1:1 meta
    // lacks are built from the list's own images (one media per image).
    auto list_templates = [&](const TemplateList& list, std::vector<int64_t>& subject) {
      std::vector<int64_t> ids;
      std::unordered_map<int64_t, int64_t> seen;
      std::vector<int64_t> extra_rows, extra_tid, extra_mid;
      for (size_t i = 0; i < list.template_id.size(); ++i) {
        const int64_t id = list.template_id[i];
        auto [it, inserted] = seen.emplace(id, static_cast<int64_t>(ids.size()));
        if (inserted) {
          ids.push_back(id);
          subject.push_back(list.subject_id[i]);
        } else {
          require(subject[it->second] == list.subject_id[i], "{}:{}: template {} has two subjects ({} and {})",
                  list.file.string(), i + 2, id, subject[it->second], list.subject_id[i]);
        }
        if (tpl.row(id) < 0) {
          const int64_t row = lookup(list.images[i]);
          require(row >= 0, "{}:{}: template {} is not in {} and its image '{}' has no row in files.txt",
                  list.file.string(), i + 2, id, tid_mid.filename().string(), list.images[i]);
          extra_rows.push_back(row);
          extra_tid.push_back(id);
          extra_mid.push_back(static_cast<int64_t>(extra_mid.size()));
        }
      }
      Templates extra;
      if (!extra_rows.empty())
        extra = build_templates(features, norms, extra_rows, extra_tid, extra_mid, {}, options.templates);
      std::vector<torch::Tensor> rows_out;
      std::vector<int64_t> idx_main;
      torch::Tensor out = torch::empty({static_cast<int64_t>(ids.size()), tpl.features.size(1)});
      for (size_t k = 0; k < ids.size(); ++k) {
        const int64_t a = tpl.row(ids[k]);
        out[k] = a >= 0 ? tpl.features[a] : extra.features[extra.row(ids[k])];
      }
      return out;
    };
    std::vector<int64_t> probe_subject;
    torch::Tensor probe_feats = list_templates(*meta.probes, probe_subject);
    for (const TemplateList& g : meta.galleries) {
      std::vector<int64_t> gallery_subject;
      torch::Tensor gallery_feats = list_templates(g, gallery_subject);
      IdentificationResult ir = identify(probe_feats, probe_subject, gallery_feats, gallery_subject);
      ir.gallery = g.name;
      r.identification.push_back(std::move(ir));
    }
    r.timings.push_back({"identification", seconds_since(t3)});
  }
  r.timings.push_back({"total", seconds_since(t0)});
  return r;
}

nlohmann::json to_json(const IjbResult& r) {
  nlohmann::json j;
  j["images"] = r.images;
  j["templates"] = r.templates;
  if (r.verification) j["verification"] = to_json(*r.verification);
  if (!r.identification.empty()) {
    nlohmann::json galleries = nlohmann::json::array();
    std::map<int, double> cmc_sum;
    std::map<double, double> tpir_sum;
    for (const auto& g : r.identification) {
      nlohmann::json jg{{"gallery", g.gallery},
                        {"gallery_templates", g.gallery_templates},
                        {"mated_probes", g.mated_probes},
                        {"nonmated_probes", g.nonmated_probes}};
      for (auto [k, v] : g.cmc) {
        jg["cmc"]["top" + std::to_string(k)] = v;
        cmc_sum[k] += v;
      }
      for (const auto& p : g.tpir_at_fpir) {
        jg["tpir_at_fpir"].push_back({{"fpir", p.fpir},
                                      {"tpir", std::isfinite(p.tpir) ? nlohmann::json(p.tpir) : nlohmann::json()},
                                      {"threshold", std::isfinite(p.threshold) ? nlohmann::json(p.threshold)
                                                                                : nlohmann::json()}});
        tpir_sum[p.fpir] += p.tpir;
      }
      galleries.push_back(jg);
    }
    const double n = static_cast<double>(r.identification.size());
    nlohmann::json mean;
    for (auto [k, v] : cmc_sum) mean["cmc"]["top" + std::to_string(k)] = v / n;
    for (auto [f, v] : tpir_sum)
      mean["tpir_at_fpir"].push_back({{"fpir", f}, {"tpir", std::isfinite(v) ? nlohmann::json(v / n) : nlohmann::json()}});
    j["identification"] = {{"galleries", galleries}, {"mean", mean}};
  }
  for (auto& [k, v] : r.timings) j["seconds"][k] = v;
  return j;
}

}  // namespace qface::eval
