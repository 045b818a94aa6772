// ArcFace (additive angular margin, s cos(theta + m)) and CosFace (additive
// cosine margin, s (cos theta - m)): the fixed-margin baselines.
// docs/method.md, Margin heads.
#pragma once

#include <torch/arg.h>

#include "qface/heads/head.h"

namespace qface::heads {

struct FixedMarginOptions {
  FixedMarginOptions(int64_t embedding_size, int64_t num_classes, double m)
      : embedding_size_(embedding_size), num_classes_(num_classes), m_(m) {}
  TORCH_ARG(int64_t, embedding_size);
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(double, m);
  TORCH_ARG(double, s) = 64.0;
  TORCH_ARG(double, eps) = 1e-4;  // as in the AdaFace reference's baselines
};

// ArcFace: m = 0.5 (ArcFace paper).
struct ArcFaceOptions : FixedMarginOptions {
  ArcFaceOptions(int64_t embedding_size, int64_t num_classes) : FixedMarginOptions(embedding_size, num_classes, 0.5) {}
};
// CosFace: m = 0.35 (CosFace paper; the AdaFace repository's baseline uses 0.4).
struct CosFaceOptions : FixedMarginOptions {
  CosFaceOptions(int64_t embedding_size, int64_t num_classes)
      : FixedMarginOptions(embedding_size, num_classes, 0.35) {}
};

class ArcFaceImpl : public HeadImpl {
 public:
  explicit ArcFaceImpl(FixedMarginOptions options);
  HeadOutput apply_margin(const torch::Tensor& cosine, const torch::Tensor& norms,
                          const torch::Tensor& labels) override;
  FixedMarginOptions options;
};
TORCH_MODULE(ArcFace);

class CosFaceImpl : public HeadImpl {
 public:
  explicit CosFaceImpl(FixedMarginOptions options);
  HeadOutput apply_margin(const torch::Tensor& cosine, const torch::Tensor& norms,
                          const torch::Tensor& labels) override;
  FixedMarginOptions options;
};
TORCH_MODULE(CosFace);

}  // namespace qface::heads
