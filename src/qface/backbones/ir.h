// AdaFace's IR / IR-SE ResNets (ir_18, ir_34, ir_50, ir_101, ir_se_50), with the
// official module names: input_layer.{0,1,2}, body.{i}.res_layer.{0..5}
// (+ res_layer.se_block.{fc1,fc2} for IR-SE), body.{i}.shortcut_layer.{0,1},
// output_layer.{0,3,4}. docs/method.md, Backbones.
#pragma once

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "qface/backbones/backbone.h"

namespace qface::backbones {

// Squeeze-and-excitation: x * sigmoid(fc2(relu(fc1(avgpool(x))))).
class SEModuleImpl : public torch::nn::Module {
 public:
  SEModuleImpl(int64_t channels, int64_t reduction);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SEModule);

// BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN [-> SE], plus the
// shortcut: subsampling (MaxPool k1 stride s) or conv1x1(stride)+BN.
class IRUnitImpl : public torch::nn::Module {
 public:
  IRUnitImpl(int64_t in_channels, int64_t depth, int64_t stride, bool se);
  torch::Tensor forward(const torch::Tensor& x);
  void fold_batchnorm();

  int64_t in_channels, depth, stride;
  bool folded = false;
  torch::nn::Sequential res_layer{nullptr}, shortcut_layer{nullptr};
  torch::nn::BatchNorm2d bn0{nullptr}, bn1{nullptr}, bn2{nullptr}, shortcut_bn{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, shortcut_conv{nullptr};  // shortcut_conv null: subsampling
  torch::nn::PReLU prelu{nullptr};
  SEModule se{nullptr};
};
TORCH_MODULE(IRUnit);

class IRNetImpl : public BackboneImpl {
 public:
  // units per stage, e.g. {3, 4, 14, 3} for ir_50.
  IRNetImpl(std::string arch, std::vector<int64_t> units, bool se, int64_t embedding_size = 512);
  torch::Tensor features(torch::Tensor x) override;
  double macs() const override;

  torch::nn::Sequential input_layer{nullptr}, output_layer{nullptr};
  torch::nn::Conv2d stem_conv{nullptr};
  torch::nn::BatchNorm2d stem_bn{nullptr}, out_bn2d{nullptr};
  torch::nn::PReLU stem_prelu{nullptr};
  torch::nn::ModuleList body{nullptr};
  std::vector<IRUnit> units;
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear linear{nullptr};
  torch::nn::BatchNorm1d out_bn1d{nullptr};  // affine = false

 protected:
  void fold_batchnorm_impl() override;
  void build_graph(Graph& g) override;
};
TORCH_MODULE(IRNet);

}  // namespace qface::backbones
