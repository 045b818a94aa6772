// TinyFace-style closed-set identification with distractors (docs/method.md):
// every probe is ranked against gallery + distractors by cosine; rank-k is the
// share of probes whose first same-label gallery item is within the top k
// (ties counted in the probe's favour: only strictly higher non-mates push it
// down). Distractors never match. Probes without a mate are counted and skipped.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

namespace qface::eval {

struct RankResult {
  int64_t probes = 0, gallery = 0, distractors = 0, probes_without_mate = 0;
  std::vector<std::pair<int, double>> rank_accuracy;  // (k, rate)
  std::vector<int64_t> probe_rank;  // per probe: the rank of its best mate (1 = first), 0 for a probe without mate
};

// labels: probe and gallery identity labels (strings); distractors have none.
RankResult rank_identification(const torch::Tensor& probe, const std::vector<std::string>& probe_labels,
                               const torch::Tensor& gallery, const std::vector<std::string>& gallery_labels,
                               const torch::Tensor& distractors, const std::vector<int>& ks = {1, 5, 20});

nlohmann::json to_json(const RankResult& r);

}  // namespace qface::eval
