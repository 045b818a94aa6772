#include "qface/heads/arcface.h"

#include <torch/torch.h>

#include <cmath>

namespace qface::heads {

ArcFaceImpl::ArcFaceImpl(FixedMarginOptions o)
    : HeadImpl("arcface", o.embedding_size(), o.num_classes()), options(std::move(o)) {}

HeadOutput ArcFaceImpl::apply_margin(const torch::Tensor& cosine_in, const torch::Tensor& norms,
                                     const torch::Tensor& labels) {
  detail::check_inputs(cosine_in, norms, labels);
  const double eps = options.eps(), m = options.m(), s = options.s();
  torch::Tensor cosine = cosine_in.clamp(-1 + eps, 1 - eps);
  torch::Tensor theta = (detail::gather_target(cosine, labels).acos() + m).clamp(eps, M_PI - eps);
  terms_ = {{"margin", torch::full({cosine.size(0)}, m, cosine.options())}};
  return {detail::replace_target(s * cosine, labels, s * theta.cos()), torch::zeros({}, cosine.options())};
}

CosFaceImpl::CosFaceImpl(FixedMarginOptions o)
    : HeadImpl("cosface", o.embedding_size(), o.num_classes()), options(std::move(o)) {}

HeadOutput CosFaceImpl::apply_margin(const torch::Tensor& cosine_in, const torch::Tensor& norms,
                                     const torch::Tensor& labels) {
  detail::check_inputs(cosine_in, norms, labels);
  const double eps = options.eps(), m = options.m(), s = options.s();
  torch::Tensor cosine = cosine_in.clamp(-1 + eps, 1 - eps);
  terms_ = {{"margin", torch::full({cosine.size(0)}, m, cosine.options())}};
  return {detail::replace_target(s * cosine, labels, s * (detail::gather_target(cosine, labels) - m)),
          torch::zeros({}, cosine.options())};
}

}  // namespace qface::heads
