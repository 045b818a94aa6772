// CurricularFace (Huang et al., CVPR 2020; the AdaFace paper's main
// baseline): ArcFace's target logit plus negatives that are "hard" (above the
// target's margined cosine) re-weighted by an adaptive t, so that hard
// samples matter little early in training (t ~ 0) and more later (t -> the
// mean target cosine). docs/method.md, "Margin heads".
//
// With cos clamped to [-1 + eps, 1 - eps] (the official code clamps to
// [-1, 1]; eps = 0 reproduces it, the default 1e-7 keeps the gradient of
// sin = sqrt(1 - cos^2) finite at |cos| = 1, as MagFace does here):
//   target  T(cos_y) = cos(theta_y + m)          if cos_y > cos(pi - m)
//                      cos_y - m sin(pi - m)      otherwise (the official fallback)
//   t       <- t_alpha * mean_rows(cos_y) + (1 - t_alpha) * t   (no gradient,
//              before use, every forward; buffer "t", starts at 0)
//   negative N(t, cos_j) = cos_j (t + cos_j)      if cos_j > cos(theta_y + m)  (hard)
//                          cos_j                  otherwise
//   logits = s * (T on the target column, N elsewhere)
// where cos(theta_y + m) = cos_y cos m - sin_y sin m, sin_y = sqrt(1 - cos_y^2).
// The hard mask carries no gradient; t is a constant of the graph.
//
// Rows with label -1 (target not among this head's classes): no target, no
// contribution to t's mean, and no hard negatives unless a row reducer (the
// sharded classifier) supplies the row's target cosine from the shard that
// holds it.
#pragma once

#include <torch/arg.h>

#include <functional>

#include "qface/heads/head.h"

namespace qface::heads {

struct CurricularFaceOptions {
  CurricularFaceOptions(int64_t embedding_size, int64_t num_classes)
      : embedding_size_(embedding_size), num_classes_(num_classes) {}
  TORCH_ARG(int64_t, embedding_size);
  TORCH_ARG(int64_t, num_classes);
  TORCH_ARG(double, m) = 0.5;        // angular margin of the target
  TORCH_ARG(double, s) = 64.0;       // scale
  TORCH_ARG(double, t_alpha) = 0.01; // momentum of t (the official 0.01)
  TORCH_ARG(double, eps) = 1e-7;     // cosine clamp [-1 + eps, 1 - eps]
};

class CurricularFaceImpl : public HeadImpl {
 public:
  explicit CurricularFaceImpl(CurricularFaceOptions options);

  HeadOutput apply_margin(const torch::Tensor& cosine, const torch::Tensor& norms,
                          const torch::Tensor& labels) override;

  // A sum over ranks (all-reduce SUM) of a tensor; returns the sum.
  using RankSum = std::function<torch::Tensor(const torch::Tensor&)>;
  // Sharded classifier (every rank scores the whole global batch against its
  // shard of the classes): each row's target cosine lives on one rank only.
  // The reducer sums (target cosine or 0, has-target 1/0) per row over the
  // ranks, so that every shard knows every row's hard-negative threshold and
  // t follows the global batch's mean.
  void set_row_reducer(RankSum sum) { row_sum_ = std::move(sum); }
  // Data parallel with a replicated head (each rank scores its own rows): the
  // reducer sums (sum of target cosines, row count) over the ranks, so that t
  // follows the global batch's mean and stays equal on every rank.
  void set_mean_reducer(RankSum sum) { mean_sum_ = std::move(sum); }

  // cos(theta + m) of target cosines (the hard-negative threshold).
  torch::Tensor margined(const torch::Tensor& cos_target) const;

  CurricularFaceOptions options;
  torch::Tensor t;  // buffer [1]

 private:
  RankSum row_sum_, mean_sum_;
};
TORCH_MODULE(CurricularFace);

}  // namespace qface::heads
