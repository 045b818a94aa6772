#include "qface/eval/rank.h"

#include <torch/torch.h>

#include <unordered_map>

#include "qface/core/error.h"
#include "qface/eval/probe_scan.h"

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
  // Dense label ids; distractors get -1 and probes without a mate -2, labels
  // that never mate.
  std::unordered_map<std::string, int64_t> ids;
  std::vector<int64_t> gl(A, -1), pl(P, -2);
  for (int64_t g = 0; g < G; ++g) gl[g] = ids.emplace(gallery_labels[g], static_cast<int64_t>(ids.size())).first->second;
  for (int64_t p = 0; p < P; ++p) {
    auto it = ids.find(probe_labels[p]);
    if (it != ids.end()) pl[p] = it->second;
  }
  // Blocks of 2048 probes, half the IJB default: the block spans gallery and distractors.
  RankResult r;
  r.probe_rank = score_probes(probe, pl, all, gl, 2048).rank;
  r.gallery = G;
  r.distractors = A - G;
  for (int64_t p = 0; p < P; ++p) (pl[p] < 0 ? r.probes_without_mate : r.probes) += 1;
  require(r.probes > 0, "rank: no probe has a mate in the gallery (labels are file-name prefixes before '_')");
  for (int k : ks) {
    int64_t hit = 0;
    for (int64_t p = 0; p < P; ++p)
      if (pl[p] >= 0 && r.probe_rank[p] <= k) ++hit;
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
