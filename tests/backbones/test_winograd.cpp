// Winograd training convolutions against LibTorch's own: output, input and
// weight gradients, both weight layouts; and what falls back.
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
      torch::Tensor y = qb::train_conv(conv, x);
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
