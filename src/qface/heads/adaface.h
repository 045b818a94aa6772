// AdaFace (Kim, Jain, Liu; CVPR 2022): a margin that adapts to image quality,
// with the feature norm as the quality proxy. docs/method.md, "Margin heads".
//
// Per sample, z = clamp(h (n - batch_mean) / (batch_std + eps), -1, 1) with n
// the clamped, detached feature norm; the target logit is
// s (cos(clamp(theta - m z, eps, pi - eps)) - (m + m z)): z = -1 is ArcFace at
// m, z = 0 CosFace at m, z = +1 s (cos(theta - m) - 2m).
//
// Two options beyond the official code, both off by default:
// - stats_init "first_batch": the running statistics start at the first
//   training batch's mean and unbiased std (through the same NormStats
//   reducer, so data-parallel ranks agree) instead of the official 20 / 100;
//   the EMA runs as usual from the second batch on. A third buffer,
//   `stats_initialized` (1 once set), exists only in this mode, so that the
//   state survives checkpoints and --resume; in the default "official" mode
//   the buffers stay exactly {batch_mean, batch_std}, as the official
//   checkpoints hold.
// - fixed_z: z held at one value in [-1, 1] for every sample (the margin
//   controls: -1 ArcFace m, 0 CosFace m, +1 s (cos(theta - m) - 2m)); the
//   running statistics still update, for logging.
#pragma once

#include <torch/arg.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "qface/heads/head.h"

namespace qface::heads {

struct AdaFaceOptions {
  AdaFaceOptions(int64_t embedding_size, int64_t num_classes)
      : embedding_size_(embedding_size), num_classes_(num_classes) {}
  TORCH_ARG(int64_t, embedding_size);
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(double, m) = 0.4;           // margin
  TORCH_ARG(double, h) = 0.333;         // concentration: z spans ~[-1, 1] for 3 std
  TORCH_ARG(double, s) = 64.0;          // scale
  TORCH_ARG(double, t_alpha) = 0.01;    // EMA momentum of the norm statistics
  TORCH_ARG(double, eps) = 1e-3;        // cosine clamp and std guard
  TORCH_ARG(double, batch_mean) = 20.0; // initial EMA of the mean norm
  TORCH_ARG(double, batch_std) = 100.0; // initial EMA of the norm's std
  // "official": the statistics start at batch_mean / batch_std above (the
  // official code). "first_batch": they are set to the first batch's mean and
  // unbiased std, then follow the EMA.
  TORCH_ARG(std::string, stats_init) = "official";
  // When set: z = fixed_z for every sample (must lie in [-1, 1]).
  TORCH_ARG(std::optional<double>, fixed_z) = std::nullopt;
};

class AdaFaceImpl : public HeadImpl {
 public:
  explicit AdaFaceImpl(AdaFaceOptions options);

  HeadOutput apply_margin(const torch::Tensor& cosine, const torch::Tensor& norms,
                          const torch::Tensor& labels) override;

  // Mean and unbiased std of the (clamped, detached) norms of the batch. The
  // default is the local batch; data-parallel training installs a reducer that
  // computes them over the global batch.
  using NormStats = std::function<std::pair<torch::Tensor, torch::Tensor>(const torch::Tensor& safe_norms)>;
  void set_norm_stats(NormStats stats) { stats_ = std::move(stats); }

  // The EMA-normalized norm z = clamp(h (n - mean) / (std + eps), -1, 1) under
  // the current buffers (no update; fixed_z is not applied here).
  torch::Tensor margin_scaler(const torch::Tensor& safe_norms) const;

  // True once the statistics hold data: always in "official" mode, after the
  // first batch in "first_batch" mode.
  bool stats_initialized() const;

  AdaFaceOptions options;
  torch::Tensor batch_mean;         // buffer [1]
  torch::Tensor batch_std;          // buffer [1]
  torch::Tensor stats_initialized_; // buffer [1] "stats_initialized", 0 or 1; only with stats_init "first_batch"

 private:
  NormStats stats_;
};
TORCH_MODULE(AdaFace);

// The distribution of AdaFace's z over a set of samples, as the trainer logs
// it: "z_q05", "z_q25", "z_q50", "z_q75", "z_q95" (quantiles, linear
// interpolation between order statistics as numpy's and torch's default:
// q at position p (N - 1)), "z_clip_lo" / "z_clip_hi" (share of samples with
// z = -1 / +1, i.e. clipped), "z_abs_lt_0.2" (share with |z| < 0.2, near
// CosFace). In this order. Throws qface::Error for an empty z.
std::vector<std::pair<std::string, double>> z_distribution(const torch::Tensor& z);

}  // namespace qface::heads
