#include "qface/heads/head.h"

#include <torch/torch.h>

#include "qface/core/error.h"
#include "qface/core/tensor_util.h"

namespace qface::heads {

torch::Tensor init_kernel(int64_t embedding_size, int64_t num_classes) {
  require(embedding_size > 0 && num_classes > 0, "head: embedding size and class count must be positive (got {} x {})",
          embedding_size, num_classes);
  return torch::empty({embedding_size, num_classes}).uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5);
}

HeadImpl::HeadImpl(std::string name, int64_t embedding_size, int64_t num_classes) : name_(std::move(name)) {
  kernel = register_parameter("kernel", init_kernel(embedding_size, num_classes));
}

HeadOutput HeadImpl::forward(const torch::Tensor& x_hat, const torch::Tensor& norms, const torch::Tensor& labels) {
  require(x_hat.dim() == 2 && x_hat.size(1) == embedding_size(),
          "{} head: embeddings must be [B, {}], got {}", name(), embedding_size(), shape_string(x_hat.sizes()));
  torch::Tensor w_hat = kernel / kernel.norm(2, 0, true);
  return apply_margin(torch::mm(x_hat, w_hat), norms, labels);
}

torch::Tensor HeadImpl::weighted_regularizer(const torch::Tensor& norms) const {
  return torch::zeros({}, norms.options());
}

LossOutput HeadImpl::loss(const torch::Tensor& x_hat, const torch::Tensor& norms, const torch::Tensor& labels) {
  HeadOutput out = forward(x_hat, norms, labels);
  LossOutput r;
  r.logits = out.logits;
  r.ce = torch::nn::functional::cross_entropy(out.logits, labels);
  r.reg = out.reg;
  r.loss = r.ce + r.reg;
  return r;
}

namespace detail {

torch::Tensor check_inputs(const torch::Tensor& cosine, const torch::Tensor& norms, const torch::Tensor& labels) {
  require(cosine.dim() == 2, "head: cosine must be [B, C], got {}", shape_string(cosine.sizes()));
  const int64_t batch = cosine.size(0), classes = cosine.size(1);
  require(labels.dim() == 1 && labels.size(0) == batch, "head: labels must be [B] with B = {}, got {}", batch,
          shape_string(labels.sizes()));
  require(labels.scalar_type() == torch::kInt64, "head: labels must be int64, got {}",
          c10::toString(labels.scalar_type()));
  require(norms.numel() == batch && (norms.dim() == 1 || (norms.dim() == 2 && norms.size(1) == 1)),
          "head: norms must be [B] or [B, 1] with B = {}, got {}", batch, shape_string(norms.sizes()));
  if (batch > 0) {
    const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
    require(lo >= -1 && hi < classes, "head: labels must lie in [0, {}) (or -1), got range [{}, {}]", classes, lo,
            hi);
  }
  return norms.reshape({batch});
}

torch::Tensor gather_target(const torch::Tensor& matrix, const torch::Tensor& labels) {
  return matrix.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1);
}

torch::Tensor replace_target(const torch::Tensor& base, const torch::Tensor& labels, const torch::Tensor& target) {
  torch::Tensor index = labels.clamp_min(0).unsqueeze(1);
  torch::Tensor values = torch::where(labels.ge(0), target, base.gather(1, index).squeeze(1));
  return base.scatter(1, index, values.unsqueeze(1));
}

}  // namespace detail
}  // namespace qface::heads
