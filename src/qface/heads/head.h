// Margin heads: the classification layer + loss of AdaFace, MagFace, ArcFace,
// CosFace and CurricularFace (formulas: docs/method.md, Margin heads). A head
// owns the class centres W [D, C] and turns (normalized embedding, feature
// norm, label) into scaled logits whose target entry carries the method's
// margin.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <map>
#include <string>

namespace qface::heads {

struct HeadOutput {
  torch::Tensor logits;  // [B, C] scaled logits, margin applied to each row's target class
  torch::Tensor reg;     // scalar, already weighted (MagFace: lambda_g * mean g(a)); 0 otherwise
};

struct LossOutput {
  torch::Tensor loss;  // ce + reg
  torch::Tensor ce;    // mean cross-entropy of the logits
  torch::Tensor reg;   // weighted regularizer (0 for heads without one)
  torch::Tensor logits;
};

// Uniform(-1, 1), then every column renormalized to 1e-5 and scaled by 1e5:
// unit-norm columns, drawn exactly as the reference implementations do.
torch::Tensor init_kernel(int64_t embedding_size, int64_t num_classes);

class HeadImpl : public torch::nn::Module {
 public:
  HeadImpl(std::string name, int64_t embedding_size, int64_t num_classes);

  const std::string& name() const { return name_; }
  int64_t embedding_size() const { return kernel.size(0); }
  int64_t num_classes() const { return kernel.size(1); }

  // x_hat [B, D] L2-normalized embeddings; norms [B] or [B, 1] their raw norms
  // (keep the graph for MagFace, whose margin and regularizer train the norm);
  // labels [B] int64 in [0, C), or -1 for rows whose target is not in this head.
  HeadOutput forward(const torch::Tensor& x_hat, const torch::Tensor& norms, const torch::Tensor& labels);

  // The margin on a precomputed, unclamped cosine matrix [B, C'] (for example
  // one shard of a sharded classifier). Clamps the cosine with the head's eps.
  virtual HeadOutput apply_margin(const torch::Tensor& cosine, const torch::Tensor& norms,
                                  const torch::Tensor& labels) = 0;

  // The weighted regularizer term of the loss on these norms (MagFace:
  // lambda_g * mean g(clamp(n, l_a, u_a))); a zero scalar for heads without one.
  virtual torch::Tensor weighted_regularizer(const torch::Tensor& norms) const;

  // forward + mean cross-entropy over the batch + regularizer.
  LossOutput loss(const torch::Tensor& x_hat, const torch::Tensor& norms, const torch::Tensor& labels);

  // Per-sample margin terms of the last call, detached: AdaFace "z", "g_ang",
  // "g_add"; MagFace "a", "margin"; ArcFace/CosFace "margin"; CurricularFace
  // "margin", "hard_negatives" (per row, the target column excluded).
  const std::map<std::string, torch::Tensor>& last_terms() const { return terms_; }

  torch::Tensor kernel;  // [D, C] parameter

 protected:
  std::map<std::string, torch::Tensor> terms_;

 private:
  std::string name_;
};
TORCH_MODULE(Head);

// Shared pieces of the margin heads.
namespace detail {
// Validates the inputs of apply_margin (labels int64 in [0, C) or -1; norms
// [B] or [B, 1]) and returns the norms as a flat [B] tensor. Throws qface::Error.
torch::Tensor check_inputs(const torch::Tensor& cosine, const torch::Tensor& norms, const torch::Tensor& labels);
// Each row's target entry of `matrix` ([B]); rows with label -1 read column 0.
torch::Tensor gather_target(const torch::Tensor& matrix, const torch::Tensor& labels);
// `base` with each row's target entry replaced by `target` [B]; rows with label -1 keep base.
torch::Tensor replace_target(const torch::Tensor& base, const torch::Tensor& labels, const torch::Tensor& target);
}  // namespace detail

}  // namespace qface::heads
