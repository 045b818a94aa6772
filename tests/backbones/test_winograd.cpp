// Winograd training convolutions against LibTorch's own: output, input and
// weight gradients, both weight layouts; and what falls back.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>

#include "qface/backbones/winograd.h"

namespace qb = qface::backbones;

namespace {

struct WinogradOn {
  WinogradOn() { qb::set_winograd_training(true); }
  ~WinogradOn() { qb::set_winograd_training(false); }
};

double relative_max(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / (b.abs().max().item<double>() + 1e-12);
}

}  // namespace

TEST(Winograd, MatchesLibTorchConvolutionAndGradients) {
  WinogradOn on;
  torch::manual_seed(5);
  for (bool channels_last_weights : {false, true}) {
    for (auto [n, c, k, h] : {std::tuple{2, 16, 32, 9}, std::tuple{3, 64, 64, 14}}) {
      torch::nn::Conv2d conv(torch::nn::Conv2dOptions(c, k, 3).stride(1).padding(1).bias(false));
      if (channels_last_weights) {
        torch::NoGradGuard g;
        conv->weight.set_data(conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
      }
      torch::Tensor x = torch::randn({n, c, h, h}).contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
      torch::Tensor x_ref = x.detach().clone().requires_grad_(true);
      const bool served = qb::winograd_serves(conv, x);
#ifdef __AVX512F__
      EXPECT_TRUE(served) << "oneDNN has Winograd kernels for AVX-512 (avx512_core)";
#endif
      if (!served) std::cout << "[ note ] no Winograd kernel on this CPU: checking the fallback\n";
      torch::Tensor y = qb::conv_forward(conv, x);
      torch::Tensor up = torch::randn_like(y);
      (y * up).sum().backward();
      torch::Tensor gw = conv->weight.grad().clone();
      conv->weight.mutable_grad().reset();
      qb::set_winograd_training(false);
      torch::Tensor y_ref = conv->forward(x_ref);
      qb::set_winograd_training(true);
      (y_ref * up).sum().backward();
      EXPECT_TRUE(y.is_contiguous(torch::MemoryFormat::ChannelsLast));
      EXPECT_LT(relative_max(y, y_ref), 2e-5) << c << " " << channels_last_weights;
      EXPECT_LT(relative_max(x.grad(), x_ref.grad()), 2e-5) << c << " " << channels_last_weights;
      EXPECT_LT(relative_max(gw, conv->weight.grad()), 2e-5) << c << " " << channels_last_weights;
      EXPECT_EQ(gw.sizes(), conv->weight.sizes());
    }
  }
}

TEST(Winograd, OtherCasesFallBack) {
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(16, 16, 3).stride(1).padding(1).bias(false));
  torch::Tensor x = torch::randn({2, 16, 8, 8}).contiguous(torch::MemoryFormat::ChannelsLast).requires_grad_(true);
  EXPECT_FALSE(qb::winograd_serves(conv, x));  // switched off (the default)
  WinogradOn on;
  torch::nn::Conv2d strided(torch::nn::Conv2dOptions(16, 16, 3).stride(2).padding(1).bias(false));
  torch::nn::Conv2d biased(torch::nn::Conv2dOptions(16, 16, 3).stride(1).padding(1).bias(true));
  torch::nn::Conv2d one(torch::nn::Conv2dOptions(16, 16, 1).bias(false));
  EXPECT_FALSE(qb::winograd_serves(strided, x));
  EXPECT_FALSE(qb::winograd_serves(biased, x));
  EXPECT_FALSE(qb::winograd_serves(one, x));
  EXPECT_FALSE(qb::winograd_serves(conv, x.detach().contiguous()));                       // NCHW, no grad
  EXPECT_FALSE(qb::winograd_serves(conv, x.detach().contiguous().requires_grad_(true)));  // NCHW
  torch::NoGradGuard g;
  EXPECT_FALSE(qb::winograd_serves(conv, x));  // inference
}

TEST(Winograd, InferenceMatchesLibTorchWithAndWithoutBias) {
  torch::manual_seed(6);
  torch::NoGradGuard no_grad;
  for (bool bias : {false, true}) {
    torch::nn::Conv2d conv(torch::nn::Conv2dOptions(32, 48, 3).stride(1).padding(1).bias(bias));
    conv->weight.set_data(conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
    const torch::Tensor x = torch::randn({3, 32, 11, 11}).contiguous(torch::MemoryFormat::ChannelsLast);
    EXPECT_FALSE(qb::winograd_serves(conv, x));  // outside a WinogradInference scope
    const torch::Tensor ref = qb::conv_forward(conv, x);
    qb::WinogradInference on(true);
    const bool served = qb::winograd_serves(conv, x);
#ifdef __AVX512F__
    EXPECT_TRUE(served) << "bias " << bias;
#endif
    const torch::Tensor y = qb::conv_forward(conv, x);
    EXPECT_TRUE(y.is_contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_LT(relative_max(y, ref), 2e-5) << "bias " << bias;
    {
      qb::WinogradInference off(false);  // scopes nest and restore
      EXPECT_FALSE(qb::winograd_serves(conv, x));
    }
    EXPECT_EQ(qb::winograd_serves(conv, x), served);
  }
}

TEST(Winograd, Bf16AutocastKeepsLibTorchConvolution) {
  // Under autocast LibTorch runs the convolution in bf16; Winograd (fp32) must
  // not take it over, in training or inference.
  WinogradOn on;
  qb::WinogradInference inference(true);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(16, 16, 3).stride(1).padding(1).bias(false));
  const torch::Tensor x = torch::randn({2, 16, 8, 8}).contiguous(torch::MemoryFormat::ChannelsLast);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::set_cpu_enabled(true);
  const bool training = qb::winograd_serves(conv, x.clone().requires_grad_(true));
  bool inference_served = false;
  torch::Tensor y;
  {
    torch::NoGradGuard g;
    inference_served = qb::winograd_serves(conv, x);
    y = qb::conv_forward(conv, x);
  }
  at::autocast::set_cpu_enabled(false);
  at::autocast::clear_cache();
  EXPECT_FALSE(training);
  EXPECT_FALSE(inference_served);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
}
