#include "qface/heads/curricularface.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "qface/core/error.h"

namespace qface::heads {

CurricularFaceImpl::CurricularFaceImpl(CurricularFaceOptions o)
    : HeadImpl("curricularface", o.embedding_size(), o.num_classes()), options(std::move(o)) {
  require(options.t_alpha() >= 0 && options.t_alpha() <= 1, "curricularface: t_alpha must lie in [0, 1], got {}",
          options.t_alpha());
  require(options.m() >= 0 && options.m() < M_PI, "curricularface: m must lie in [0, pi), got {}", options.m());
  require(options.eps() >= 0 && options.eps() < 0.5, "curricularface: eps must lie in [0, 0.5), got {}",
          options.eps());
  t = register_buffer("t", torch::zeros({1}));
}

torch::Tensor CurricularFaceImpl::margined(const torch::Tensor& cos_t) const {
  const double m = options.m();
  return cos_t * std::cos(m) - (1.0 - cos_t * cos_t).sqrt() * std::sin(m);
}

HeadOutput CurricularFaceImpl::apply_margin(const torch::Tensor& cosine_in, const torch::Tensor& norms,
                                            const torch::Tensor& labels) {
  detail::check_inputs(cosine_in, norms, labels);
  const double eps = options.eps(), m = options.m(), s = options.s();
  torch::Tensor cosine = cosine_in.clamp(-1 + eps, 1 - eps);
  torch::Tensor valid = labels.ge(0);

  // Target: cos(theta + m) while theta + m < pi, else the official fallback.
  torch::Tensor cos_t = detail::gather_target(cosine, labels);
  torch::Tensor target = torch::where(cos_t > std::cos(M_PI - m), margined(cos_t), cos_t - m * std::sin(M_PI - m));

  torch::Tensor hard;
  {  // t and the hard-negative mask: outside the graph.
    torch::NoGradGuard no_grad;
    torch::Tensor row_cos = torch::where(valid, cos_t, torch::zeros_like(cos_t));
    torch::Tensor row_has = valid.to(cosine.scalar_type());
    if (row_sum_) {  // the shard that holds a row's target supplies it; the others add 0
      row_cos = row_sum_(row_cos);
      row_has = row_sum_(row_has);
    }
    const torch::Tensor has = row_has.gt(0.5);
    torch::Tensor sum_count = torch::stack({row_cos.sum(), row_has.sum()});
    if (mean_sum_) sum_count = mean_sum_(sum_count);
    if (sum_count[1].item<double>() > 0) {  // updated before use
      const double a = options.t_alpha();
      t.copy_(sum_count[0] / sum_count[1] * a + (1 - a) * t);
    }
    // Rows without a known target have no hard negatives (threshold +inf).
    torch::Tensor threshold =
        torch::where(has, margined(row_cos), torch::full_like(row_cos, std::numeric_limits<double>::infinity()));
    hard = cosine > threshold.unsqueeze(1);
  }
  torch::Tensor negatives = torch::where(hard, cosine * (t + cosine), cosine);

  {  // Per-row terms: the margin and the number of hard negatives (the target column excluded).
    torch::NoGradGuard no_grad;
    torch::Tensor own = torch::zeros_like(hard).scatter(1, labels.clamp_min(0).unsqueeze(1), valid.unsqueeze(1));
    terms_ = {{"margin", torch::full({cosine.size(0)}, m, cosine.options())},
              {"hard_negatives", hard.logical_and(own.logical_not()).sum(1).to(torch::kFloat32)}};
  }
  return {detail::replace_target(s * negatives, labels, s * target), torch::zeros({}, cosine.options())};
}

}  // namespace qface::heads
