#include "qface/heads/adaface.h"

#include <torch/torch.h>

#include <cmath>

#include "qface/core/error.h"

namespace qface::heads {

AdaFaceImpl::AdaFaceImpl(AdaFaceOptions o)
    : HeadImpl("adaface", o.embedding_size(), o.num_classes()), options(std::move(o)) {
  require(options.t_alpha() >= 0 && options.t_alpha() <= 1, "adaface: t_alpha must lie in [0, 1], got {}",
          options.t_alpha());
  require(options.stats_init() == "official" || options.stats_init() == "first_batch",
          "adaface: stats_init must be 'official' or 'first_batch', got '{}'", options.stats_init());
  if (options.fixed_z())
    require(*options.fixed_z() >= -1 && *options.fixed_z() <= 1, "adaface: fixed_z must lie in [-1, 1], got {}",
            *options.fixed_z());
  batch_mean = register_buffer("batch_mean", torch::full({1}, options.batch_mean()));
  batch_std = register_buffer("batch_std", torch::full({1}, options.batch_std()));
  // Only in first_batch mode: official checkpoints hold exactly the two buffers above.
  if (options.stats_init() == "first_batch")
    stats_initialized_ = register_buffer("stats_initialized", torch::zeros({1}));
}

bool AdaFaceImpl::stats_initialized() const {
  return !stats_initialized_.defined() || stats_initialized_.item<float>() != 0;
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
    if (!stats_initialized()) {
      // first_batch: this batch's statistics replace the initial values.
      batch_mean.copy_(mean.reshape({1}));
      batch_std.copy_(std.reshape({1}));
      stats_initialized_.fill_(1);
    } else {
      const double t = options.t_alpha();
      batch_mean.copy_(mean * t + (1 - t) * batch_mean);
      batch_std.copy_(std * t + (1 - t) * batch_std);
    }
  }

  torch::Tensor z = options.fixed_z() ? torch::full_like(safe_n, *options.fixed_z()) : margin_scaler(safe_n);
  torch::Tensor g_ang = -m * z;
  torch::Tensor g_add = m + m * z;

  torch::Tensor cos_t = detail::gather_target(cosine, labels);
  torch::Tensor theta = (cos_t.acos() + g_ang).clamp(eps, M_PI - eps);
  torch::Tensor target = s * (theta.cos() - g_add);

  terms_ = {{"z", z.detach()}, {"g_ang", g_ang.detach()}, {"g_add", g_add.detach()}};
  return {detail::replace_target(s * cosine, labels, target), torch::zeros({}, cosine.options())};
}

std::vector<std::pair<std::string, double>> z_distribution(const torch::Tensor& z_in) {
  require(z_in.numel() > 0, "z distribution: no samples");
  torch::Tensor z = z_in.detach().reshape({-1}).to(torch::kCPU, torch::kFloat64);
  torch::Tensor probs = torch::tensor({0.05, 0.25, 0.5, 0.75, 0.95}, torch::kFloat64);
  torch::Tensor q = torch::quantile(z, probs);  // linear interpolation
  auto share = [](const torch::Tensor& mask) { return mask.to(torch::kFloat64).mean().item<double>(); };
  return {{"z_q05", q[0].item<double>()},
          {"z_q25", q[1].item<double>()},
          {"z_q50", q[2].item<double>()},
          {"z_q75", q[3].item<double>()},
          {"z_q95", q[4].item<double>()},
          {"z_clip_lo", share(z.le(-1))},
          {"z_clip_hi", share(z.ge(1))},
          {"z_abs_lt_0.2", share(z.abs().lt(0.2))}};
}

}  // namespace qface::heads
