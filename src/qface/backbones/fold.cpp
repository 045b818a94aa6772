#include "qface/backbones/fold.h"

#include <torch/torch.h>

namespace qface::backbones {

std::pair<torch::Tensor, torch::Tensor> bn_affine(const torch::Tensor& weight, const torch::Tensor& bias,
                                                  const torch::Tensor& mean, const torch::Tensor& var, double eps) {
  torch::Tensor scale = (var + eps).rsqrt();
  if (weight.defined()) scale = scale * weight;
  torch::Tensor shift = -mean * scale;
  if (bias.defined()) shift = shift + bias;
  return {scale, shift};
}

std::pair<torch::Tensor, torch::Tensor> bn_affine(const torch::nn::BatchNorm2d& bn) {
  return bn_affine(bn->weight, bn->bias, bn->running_mean, bn->running_var, bn->options.eps());
}

std::pair<torch::Tensor, torch::Tensor> bn_affine(const torch::nn::BatchNorm1d& bn) {
  return bn_affine(bn->weight, bn->bias, bn->running_mean, bn->running_var, bn->options.eps());
}

// The folded layers keep their registered parameters, and the weights are
// scaled in place (a new 170 MB of IR-50 weights costs more to fault in than
// the arithmetic); a bias that was not registered lives in the module's
// `bias` member, which is what forward() reads.
void fold_into_conv(torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn) {
  torch::NoGradGuard no_grad;
  auto [scale, shift] = bn_affine(bn);
  conv->weight.mul_(scale.view({-1, 1, 1, 1}));
  torch::Tensor b = conv->bias.defined() ? conv->bias * scale + shift : shift;
  if (conv->bias.defined()) {
    conv->bias.set_data(b);
  } else {
    conv->bias = b;
  }
}

void fold_into_linear(torch::nn::Linear& linear, const torch::nn::BatchNorm1d& bn) {
  torch::NoGradGuard no_grad;
  auto [scale, shift] = bn_affine(bn);
  linear->weight.mul_(scale.view({-1, 1}));
  torch::Tensor b = linear->bias.defined() ? linear->bias * scale + shift : shift;
  if (linear->bias.defined()) {
    linear->bias.set_data(b);
  } else {
    linear->bias = b;
  }
}

void fold_before_linear(const torch::nn::BatchNorm2d& bn, torch::nn::Linear& linear) {
  torch::NoGradGuard no_grad;
  auto [scale, shift] = bn_affine(bn);
  const int64_t channels = scale.size(0);
  const int64_t in = linear->weight.size(1);
  const int64_t spatial = in / channels;
  // Flattening in (C, H, W) order repeats each channel's affine `spatial` times.
  torch::Tensor s = scale.repeat_interleave(spatial);
  torch::Tensor t = shift.repeat_interleave(spatial);
  torch::Tensor b = torch::mv(linear->weight, t);
  if (linear->bias.defined()) b = b + linear->bias;
  linear->weight.mul_(s.view({1, -1}));
  if (linear->bias.defined()) {
    linear->bias.set_data(b);
  } else {
    linear->bias = b;
  }
}

}  // namespace qface::backbones
