// InsightFace's iresnet (MagFace's backbone): conv1/bn1/prelu/layer1..4/bn2/
// dropout/fc/features, every stage strided with a downsample branch, BN eps
// 2e-5 (momentum 0.9 as in MagFace), final BatchNorm1d affine.
// docs/method.md, Backbones.
#pragma once

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "qface/backbones/backbone.h"

namespace qface::backbones {

// bn1 -> conv1 -> bn2 -> prelu -> conv2(stride) -> bn3, + identity or downsample.{0,1}.
class IBasicBlockImpl : public torch::nn::Module {
 public:
  IBasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride, bool downsample);
  torch::Tensor forward(const torch::Tensor& x);
  void fold_batchnorm();

  int64_t inplanes, planes, stride;
  bool folded = false;
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr}, ds_bn{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, ds_conv{nullptr};  // ds_conv null: identity
  torch::nn::PReLU prelu{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(IBasicBlock);

class IResNetImpl : public BackboneImpl {
 public:
  IResNetImpl(std::string arch, std::vector<int64_t> layers, int64_t embedding_size = 512);
  torch::Tensor features(torch::Tensor x) override;
  double macs() const override;

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::PReLU prelu{nullptr};
  std::vector<torch::nn::Sequential> layers;  // layer1..layer4
  std::vector<std::vector<IBasicBlock>> blocks;
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn_features{nullptr};  // registered as "features"

 protected:
  void fold_batchnorm_impl() override;
  void build_graph(Graph& g) override;
};
TORCH_MODULE(IResNet);

}  // namespace qface::backbones
