// MagFace (Meng et al., CVPR 2021): a margin that grows with the feature
// magnitude a, plus a regularizer g(a) that rewards large magnitudes for easy
// samples, so that the magnitude becomes a quality score. docs/method.md,
// Margin heads.
#pragma once

#include <torch/arg.h>

#include "qface/heads/head.h"

namespace qface::heads {

struct MagFaceOptions {
  MagFaceOptions(int64_t embedding_size, int64_t num_classes)
      : embedding_size_(embedding_size), num_classes_(num_classes) {}
  TORCH_ARG(int64_t, embedding_size);
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(double, s) = 64.0;
  TORCH_ARG(double, l_a) = 10.0;   // magnitude range [l_a, u_a]
  TORCH_ARG(double, u_a) = 110.0;
  TORCH_ARG(double, l_m) = 0.45;   // margin range [l_m, u_m]
  TORCH_ARG(double, u_m) = 0.8;
  TORCH_ARG(double, lambda_g) = 35.0;  // weight of the regularizer
  TORCH_ARG(bool, easy_margin) = true; // apply the margin only where cos > 0
  // Mag-CosFace: additive margin s (cos - m(a)) instead of s cos(theta + m(a)).
  TORCH_ARG(bool, additive) = false;
  // Cosine clamp to [-1 + eps, 1 - eps]. The reference clamps to [-1, 1],
  // where sin = sqrt(1 - cos^2) has an infinite derivative.
  TORCH_ARG(double, eps) = 1e-7;


 public:
  // Mag-CosFace defaults: l_m = 0.35, u_m = 0.8, lambda_g = 150, additive.
  static MagFaceOptions cosface(int64_t embedding_size, int64_t num_classes) {
    return MagFaceOptions(embedding_size, num_classes).l_m(0.35).u_m(0.8).lambda_g(150.0).additive(true);
  }
};

class MagFaceImpl : public HeadImpl {
 public:
  explicit MagFaceImpl(MagFaceOptions options);

  HeadOutput apply_margin(const torch::Tensor& cosine, const torch::Tensor& norms,
                          const torch::Tensor& labels) override;

  // m(a) = (u_m - l_m) / (u_a - l_a) * (a - l_a) + l_m
  torch::Tensor margin(const torch::Tensor& a) const;
  // g(a) = a / u_a^2 + 1 / a (per sample, unweighted)
  torch::Tensor regularizer(const torch::Tensor& a) const;
  // lambda_g * mean g(clamp(n, l_a, u_a))
  torch::Tensor weighted_regularizer(const torch::Tensor& norms) const override;

  MagFaceOptions options;
};
TORCH_MODULE(MagFace);

}  // namespace qface::heads
