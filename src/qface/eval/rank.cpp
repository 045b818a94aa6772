#include "qface/eval/rank.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <limits>
#include <unordered_map>

#include "qface/core/error.h"

namespace qface::eval {

RankResult rank_identification(const torch::Tensor& probe, const std::vector<std::string>& probe_labels,
                               const torch::Tensor& gallery, const std::vector<std::string>& gallery_labels,
                               const torch::Tensor& distractors, const std::vector<int>& ks) {
  require(probe.size(0) == static_cast<int64_t>(probe_labels.size()), "rank: {} probe rows, {} labels",
          probe.size(0), probe_labels.size());
  require(gallery.size(0) == static_cast<int64_t>(gallery_labels.size()), "rank: {} gallery rows, {} labels",
          gallery.size(0), gallery_labels.size());
  require(gallery.size(0) > 0 && probe.size(0) > 0, "rank: empty probe or gallery set");
  std::vector<torch::Tensor> parts{gallery.to(torch::kFloat32)};
  if (distractors.defined() && distractors.size(0) > 0) {
    require(distractors.size(1) == gallery.size(1), "rank: distractor dimension {} vs gallery {}",
            distractors.size(1), gallery.size(1));
    parts.push_back(distractors.to(torch::kFloat32));
  }
  require(probe.size(1) == gallery.size(1), "rank: probe dimension {} vs gallery {}", probe.size(1), gallery.size(1));
  torch::Tensor all = torch::cat(parts, 0).contiguous();
  const int64_t G = gallery.size(0), A = all.size(0), P = probe.size(0);
  // Dense label ids; distractors get -1.
  std::unordered_map<std::string, int64_t> ids;
  std::vector<int64_t> gl(A, -1), pl(P, -2);
  for (int64_t g = 0; g < G; ++g) gl[g] = ids.emplace(gallery_labels[g], static_cast<int64_t>(ids.size())).first->second;
  for (int64_t p = 0; p < P; ++p) {
    auto it = ids.find(probe_labels[p]);
    if (it != ids.end()) pl[p] = it->second;
  }
  std::vector<int64_t> rank(P, 0);
  torch::Tensor pr = probe.to(torch::kFloat32).contiguous();
  const int64_t chunk = 2048;
  for (int64_t c0 = 0; c0 < P; c0 += chunk) {
    const int64_t c1 = std::min(P, c0 + chunk);
    torch::Tensor S = torch::mm(pr.slice(0, c0, c1), all.t()).contiguous();
    const float* s = S.data_ptr<float>();
    at::parallel_for(c0, c1, 32, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        if (pl[p] < 0) continue;
        const float* row = s + (p - c0) * A;
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t g = 0; g < G; ++g)
          if (gl[g] == pl[p]) m = std::max(m, row[g]);
        int64_t above = 0;
        for (int64_t g = 0; g < A; ++g)
          if (gl[g] != pl[p] && row[g] > m) ++above;
        rank[p] = above + 1;
      }
    });
  }
  RankResult r;
  r.probe_rank = rank;
  r.gallery = G;
  r.distractors = A - G;
  for (int64_t p = 0; p < P; ++p) (pl[p] < 0 ? r.probes_without_mate : r.probes) += 1;
  require(r.probes > 0, "rank: no probe has a mate in the gallery (labels are file-name prefixes before '_')");
  for (int k : ks) {
    int64_t hit = 0;
    for (int64_t p = 0; p < P; ++p)
      if (pl[p] >= 0 && rank[p] <= k) ++hit;
    r.rank_accuracy.push_back({k, static_cast<double>(hit) / static_cast<double>(r.probes)});
  }
  return r;
}

nlohmann::json to_json(const RankResult& r) {
  nlohmann::json j{{"probes", r.probes},
                   {"gallery", r.gallery},
                   {"distractors", r.distractors},
                   {"probes_without_mate", r.probes_without_mate}};
  for (auto [k, v] : r.rank_accuracy) j["rank"][std::to_string(k)] = v;
  return j;
}

}  // namespace qface::eval
