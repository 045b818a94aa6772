#include "qface/heads/magface.h"

#include <torch/torch.h>

#include <cmath>

#include "qface/core/error.h"

namespace qface::heads {

MagFaceImpl::MagFaceImpl(MagFaceOptions o)
    : HeadImpl(o.additive() ? "magface-cos" : "magface", o.embedding_size(), o.num_classes()),
      options(std::move(o)) {
  require(options.u_a() > options.l_a() && options.l_a() > 0,
          "{}: need 0 < l_a < u_a, got l_a = {}, u_a = {}", name(), options.l_a(), options.u_a());
}

torch::Tensor MagFaceImpl::margin(const torch::Tensor& a) const {
  const auto& o = options;
  return (o.u_m() - o.l_m()) / (o.u_a() - o.l_a()) * (a - o.l_a()) + o.l_m();
}

torch::Tensor MagFaceImpl::regularizer(const torch::Tensor& a) const {
  return a / (options.u_a() * options.u_a()) + 1.0 / a;
}

torch::Tensor MagFaceImpl::weighted_regularizer(const torch::Tensor& norms) const {
  return options.lambda_g() * regularizer(norms.reshape({-1}).clamp(options.l_a(), options.u_a())).mean();
}

HeadOutput MagFaceImpl::apply_margin(const torch::Tensor& cosine_in, const torch::Tensor& norms,
                                     const torch::Tensor& labels) {
  torch::Tensor n = detail::check_inputs(cosine_in, norms, labels);
  const auto& o = options;
  torch::Tensor cosine = cosine_in.clamp(-1 + o.eps(), 1 - o.eps());
  // Not detached: the margin and the regularizer both train the magnitude.
  torch::Tensor a = n.clamp(o.l_a(), o.u_a());
  torch::Tensor m = margin(a);
  torch::Tensor cos_t = detail::gather_target(cosine, labels);

  torch::Tensor target;
  if (o.additive()) {
    target = cos_t - m;
  } else {
    torch::Tensor sin_t = (1.0 - cos_t * cos_t).sqrt();
    target = cos_t * m.cos() - sin_t * m.sin();
    if (o.easy_margin()) {
      target = torch::where(cos_t > 0, target, cos_t);
    } else {
      // Keep the target logit monotonic in theta past pi - m (ArcFace's "hard" variant).
      torch::Tensor threshold = (M_PI - m).cos();
      target = torch::where(cos_t > threshold, target, cos_t - (M_PI - m).sin() * m);
    }
  }
  terms_ = {{"a", a.detach()}, {"margin", m.detach()}};
  return {detail::replace_target(o.s() * cosine, labels, o.s() * target), weighted_regularizer(n)};
}

}  // namespace qface::heads
