// 1:1 verification on pair lists (.bin sets: pairs are images 2i, 2i+1),
// the 10-fold protocol (docs/method.md) exactly as the InsightFace/AdaFace
// reference computes it (hand-written, as no C++ library has it):
// squared L2 distance of normalized features, thresholds 0..4 step 0.01,
// predict "same" when distance < threshold, contiguous folds without shuffle
// (the first n % folds folds one pair larger, as sklearn's KFold), best
// threshold on the 9 training folds (first maximum), accuracy on the 10th.
// TAR@FAR is InsightFace's "VAL": per fold, thresholds 0..4 step 0.001,
// the threshold linearly interpolated where the training FAR reaches the
// target (0 when it never does), TAR and FAR on the test fold. A FAR is
// reported only where every test fold has at least 1/FAR impostors; below
// that the number would be interpolation, not measurement, and it is marked
// unresolved (null in JSON, "—" in tables).
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qface/eval/roc.h"

namespace qface::eval {

struct VerifyOptions {
  int folds = 10;
  double threshold_max = 4.0;
  double threshold_step = 0.01;
  std::vector<double> val_fars{1e-3, 1e-2};
  double val_step = 0.001;
};

struct TarAtFarFolds {
  double far = 0;
  bool resolved = false;           // every test fold has >= 1/far impostors
  int64_t min_fold_impostors = 0;
  double tar_mean = 0, tar_std = 0, far_mean = 0;  // over folds; meaningful only when resolved
};

struct VerifyResult {
  int64_t pairs = 0, genuine = 0;
  double accuracy_mean = 0, accuracy_std = 0;  // std over folds, population (ddof 0) as numpy
  double best_threshold_mean = 0;              // mean of the per-fold best thresholds
  std::vector<double> fold_accuracy, fold_threshold;
  std::vector<TarAtFarFolds> val;                  // one per VerifyOptions::val_fars, InsightFace style
  std::vector<uint8_t> pair_correct;  // per pair: 1 when its fold's threshold decides it right (paired bootstrap)
  // The entry for `far`, or nullptr.
  const TarAtFarFolds* val_at(double far) const;
  // TAR at `far` when resolved, else null (JSON) / "—" (text, in percent).
  nlohmann::json tar_json(double far) const;
  std::string tar_text(double far) const;
  RocResult roc;                                   // exact ROC on -distance over all pairs
};

// dist: squared L2 per pair; issame: 1 genuine.
VerifyResult verify_distances(std::span<const double> dist, std::span<const uint8_t> issame,
                              const VerifyOptions& options = {});

// Squared L2 distances of consecutive rows (2i, 2i+1) of normalized embeddings.
std::vector<double> pair_distances(const torch::Tensor& embeddings);

// The full protocol on embeddings of a .bin set (rows 2i, 2i+1 form pair i).
VerifyResult verify_embeddings(const torch::Tensor& embeddings, std::span<const uint8_t> issame,
                               const VerifyOptions& options = {});

nlohmann::json to_json(const VerifyResult& r);

// The JSON `qface eval verify` writes (kind "eval.verify") and `qface report`
// reads: one entry per set, one result per feature mode ("plain",
// "flip_fused"). The training loop can call this to log validation results.
struct VerifySet {
  std::string set;  // e.g. "lfw"
  std::vector<std::pair<std::string, VerifyResult>> modes;
};
nlohmann::json verify_report_json(const std::string& name, const std::vector<VerifySet>& sets);

// The protocol on a .bin set in both feature modes (docs/method.md): "plain" on
// `plain` (N x D normalized), then, when `flipped` is defined (the flipped
// images' embeddings), "flip_fused" on qface::fuse_flip of both, which is
// also returned in `fused` / `fused_norms` when they are given. The one
// implementation behind `qface eval verify`, training-time validation and the
// main job.
struct ModeInput {
  torch::Tensor plain, plain_norms;      // N x D, N
  torch::Tensor flipped, flipped_norms;  // undefined: plain mode only
  std::string mode = "plain";            // the name of `plain`'s mode: "flip_fused" when fused upstream (no `flipped` then)
};
VerifySet verify_modes(const std::string& set, const ModeInput& features, std::span<const uint8_t> issame,
                       const VerifyOptions& options = {}, torch::Tensor* fused = nullptr,
                       torch::Tensor* fused_norms = nullptr);
nlohmann::json to_json(const RocResult& r);

}  // namespace qface::eval
