// Open-set identification's per-probe outcomes from one probe x gallery scan
// (cosine GEMM over blocks of probes): what the IJB and IJB-S 1:N protocols
// (eval/ijb.h, eval/ijbs.h) and TinyFace-style ranking (eval/rank.h) all
// compute their numbers from.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace qface::eval {

// Per-probe outcome of open-set identification, in probe order: what CMC and
// TPIR@FPIR are computed from, and what paired bootstraps resample.
struct ProbeOutcomes {
  std::vector<uint8_t> mated;     // the probe's subject is in its gallery
  std::vector<int64_t> rank;      // 1 + non-mates scoring above the best mate; 0 when not mated
  std::vector<float> mate_score;  // best mate score; -inf when not mated
  std::vector<float> top_score;   // best score over the whole gallery
  int64_t size() const { return static_cast<int64_t>(mated.size()); }
  void resize(int64_t n);
};

// One gallery: probe x gallery cosine GEMM, `chunk` probes at a time (the
// score block holds chunk x gallery floats), per-probe outcomes. A gallery row
// mates a probe when their subjects are equal: give rows that must never mate
// (distractors) a subject no probe has.
ProbeOutcomes score_probes(const torch::Tensor& probe_features, const std::vector<int64_t>& probe_subject,
                           const torch::Tensor& gallery_features, const std::vector<int64_t>& gallery_subject,
                           int64_t chunk = 4096);

}  // namespace qface::eval
