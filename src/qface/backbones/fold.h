// BatchNorm folding helpers (inference only): y = BN(layer(x)) becomes one
// layer with scaled weights and a bias.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <utility>

namespace qface::backbones {

// Per-channel (scale, shift) with BN(x) = x * scale + shift in eval mode.
std::pair<torch::Tensor, torch::Tensor> bn_affine(const torch::Tensor& weight, const torch::Tensor& bias,
                                                  const torch::Tensor& mean, const torch::Tensor& var, double eps);
std::pair<torch::Tensor, torch::Tensor> bn_affine(const torch::nn::BatchNorm2d& bn);
std::pair<torch::Tensor, torch::Tensor> bn_affine(const torch::nn::BatchNorm1d& bn);

// conv -> bn  becomes conv' (with bias).
void fold_into_conv(torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn);
// linear -> bn1d  becomes linear'.
void fold_into_linear(torch::nn::Linear& linear, const torch::nn::BatchNorm1d& bn);
// bn2d -> flatten (C,H,W order) -> linear  becomes linear'.
void fold_before_linear(const torch::nn::BatchNorm2d& bn, torch::nn::Linear& linear);

}  // namespace qface::backbones
