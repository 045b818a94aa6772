// AdaFace (Kim, Jain, Liu; CVPR 2022): a margin that adapts to image quality,
// with the feature norm as the quality proxy. SPEC §1.
#pragma once

#include <torch/arg.h>

#include <functional>
#include <utility>

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
  // the current buffers (no update).
  torch::Tensor margin_scaler(const torch::Tensor& safe_norms) const;

  AdaFaceOptions options;
  torch::Tensor batch_mean;  // buffer [1]
  torch::Tensor batch_std;   // buffer [1]

 private:
  NormStats stats_;
};
TORCH_MODULE(AdaFace);

}  // namespace qface::heads
