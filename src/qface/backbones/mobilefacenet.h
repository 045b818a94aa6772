// MobileFaceNet (Chen et al. 2018; ~1M parameters, ~0.2 GMACs), with the module
// names of the widely used PyTorch port (conv1, conv2_dw, conv_23, conv_3, ...,
// conv_6_sep, conv_6_dw, linear, bn). The small backbone for CPU demos.
#pragma once

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "qface/backbones/backbone.h"

namespace qface::backbones {

// conv -> bn [-> prelu]  (ConvBlock with PReLU, LinearBlock without).
class ConvBNImpl : public torch::nn::Module {
 public:
  ConvBNImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t groups, bool prelu);
  torch::Tensor forward(const torch::Tensor& x);
  void fold_batchnorm();

  bool folded = false;
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::PReLU prelu{nullptr};  // null for a linear block
};
TORCH_MODULE(ConvBN);

// 1x1 expand (conv) -> depthwise kxk (conv_dw) -> 1x1 project, + x when residual.
class DepthWiseImpl : public torch::nn::Module {
 public:
  DepthWiseImpl(int64_t in, int64_t out, bool residual, int64_t stride, int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);
  void fold_batchnorm();

  bool residual;
  ConvBN conv{nullptr}, conv_dw{nullptr}, project{nullptr};
};
TORCH_MODULE(DepthWise);

class MobileFaceNetImpl : public BackboneImpl {
 public:
  explicit MobileFaceNetImpl(int64_t embedding_size = 512);
  torch::Tensor features(torch::Tensor x) override;
  double macs() const override;

  // The network in order: conv1, conv2_dw, conv_23, conv_3 (model.*), conv_34,
  // conv_4, conv_45, conv_5, conv_6_sep, conv_6_dw; each either a ConvBN or a
  // DepthWise (residual stages hold several).
  ConvBN conv1{nullptr}, conv2_dw{nullptr}, conv_6_sep{nullptr}, conv_6_dw{nullptr};
  DepthWise conv_23{nullptr}, conv_34{nullptr}, conv_45{nullptr};
  std::vector<DepthWise> conv_3, conv_4, conv_5;
  torch::nn::Linear linear{nullptr};  // no bias until folded
  torch::nn::BatchNorm1d bn{nullptr};

 protected:
  void fold_batchnorm_impl() override;
  void build_graph(Graph& g) override;
};
TORCH_MODULE(MobileFaceNet);

}  // namespace qface::backbones
