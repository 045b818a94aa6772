#include "qface/heads/adaface.h"

#include <torch/torch.h>

#include <cmath>

#include "qface/core/error.h"

namespace qface::heads {

AdaFaceImpl::AdaFaceImpl(AdaFaceOptions o)
    : HeadImpl("adaface", o.embedding_size(), o.num_classes()), options(std::move(o)) {
  require(options.t_alpha() >= 0 && options.t_alpha() <= 1, "adaface: t_alpha must lie in [0, 1], got {}",
          options.t_alpha());
  batch_mean = register_buffer("batch_mean", torch::full({1}, options.batch_mean()));
  batch_std = register_buffer("batch_std", torch::full({1}, options.batch_std()));
}

torch::Tensor AdaFaceImpl::margin_scaler(const torch::Tensor& safe_norms) const {
  return ((safe_norms - batch_mean) / (batch_std + options.eps()) * options.h()).clamp(-1, 1);
}

HeadOutput AdaFaceImpl::apply_margin(const torch::Tensor& cosine_in, const torch::Tensor& norms,
                                     const torch::Tensor& labels) {
  const int64_t batch = cosine_in.size(0);
  torch::Tensor n = detail::check_inputs(cosine_in, norms, labels);
  const double eps = options.eps(), m = options.m(), s = options.s();
  torch::Tensor cosine = cosine_in.clamp(-1 + eps, 1 - eps);
  // The margin never back-propagates into the norm.
  torch::Tensor safe_n = n.clamp(0.001, 100).detach();

  {  // EMA of the norm statistics, updated before use, outside the graph.
    torch::NoGradGuard no_grad;
    torch::Tensor mean, std;
    if (stats_) {
      std::tie(mean, std) = stats_(safe_n);
    } else {
      mean = safe_n.mean();
      // Unbiased std (n - 1); a single sample has none, so the EMA keeps its value.
      std = batch > 1 ? safe_n.std(/*unbiased=*/true) : batch_std.reshape({});
    }
    const double t = options.t_alpha();
    batch_mean.copy_(mean * t + (1 - t) * batch_mean);
    batch_std.copy_(std * t + (1 - t) * batch_std);
  }

  torch::Tensor z = margin_scaler(safe_n);
  torch::Tensor g_ang = -m * z;
  torch::Tensor g_add = m + m * z;

  torch::Tensor cos_t = detail::gather_target(cosine, labels);
  torch::Tensor theta = (cos_t.acos() + g_ang).clamp(eps, M_PI - eps);
  torch::Tensor target = s * (theta.cos() - g_add);

  terms_ = {{"z", z.detach()}, {"g_ang", g_ang.detach()}, {"g_add", g_add.detach()}};
  return {detail::replace_target(s * cosine, labels, target), torch::zeros({}, cosine.options())};
}

}  // namespace qface::heads
