#include "qface/backbones/iresnet.h"

#include <torch/torch.h>

#include "qface/backbones/fold.h"
#include "qface/backbones/graph.h"
#include "qface/backbones/winograd.h"

namespace qface::backbones {
namespace nn = torch::nn;

namespace {
constexpr double kEps = 2e-5;
constexpr double kMomentum = 0.9;  // as in MagFace's iresnet.py
nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}
nn::BatchNorm2d bn2d(int64_t c) { return nn::BatchNorm2d(nn::BatchNormOptions(c).eps(kEps).momentum(kMomentum)); }
}  // namespace

IBasicBlockImpl::IBasicBlockImpl(int64_t in, int64_t p, int64_t s, bool with_downsample)
    : inplanes(in), planes(p), stride(s) {
  bn1 = register_module("bn1", bn2d(in));
  conv1 = register_module("conv1", conv(in, p, 3, 1, 1));
  bn2 = register_module("bn2", bn2d(p));
  prelu = register_module("prelu", nn::PReLU(nn::PReLUOptions().num_parameters(p)));
  conv2 = register_module("conv2", conv(p, p, 3, s, 1));
  bn3 = register_module("bn3", bn2d(p));
  if (with_downsample) {
    ds_conv = conv(in, p, 1, s, 0);
    ds_bn = bn2d(p);
    downsample = register_module("downsample", nn::Sequential(ds_conv, ds_bn));
  }
}

torch::Tensor IBasicBlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor out = conv_forward(conv1, bn1(x));
  if (!folded) out = bn2(out);
  out = conv_forward(conv2, prelu(out));
  if (!folded) out = bn3(out);
  torch::Tensor identity = x;
  if (ds_conv) {
    identity = ds_conv(x);
    if (!folded) identity = ds_bn(identity);
  }
  return out + identity;
}

void IBasicBlockImpl::fold_batchnorm() {
  fold_into_conv(conv1, bn2);
  fold_into_conv(conv2, bn3);
  if (ds_conv) fold_into_conv(ds_conv, ds_bn);
  folded = true;
}

IResNetImpl::IResNetImpl(std::string arch, std::vector<int64_t> stage_layers, int64_t embedding_size)
    : BackboneImpl(std::move(arch), embedding_size, Preprocessing{true, 0.0f, 1.0f}) {
  conv1 = register_module("conv1", conv(3, 64, 3, 1, 1));
  bn1 = register_module("bn1", bn2d(64));
  prelu = register_module("prelu", nn::PReLU(nn::PReLUOptions().num_parameters(64)));
  const int64_t widths[4] = {64, 128, 256, 512};
  int64_t inplanes = 64;
  for (std::size_t stage = 0; stage < stage_layers.size() && stage < 4; ++stage) {
    nn::Sequential seq;
    std::vector<IBasicBlock> bs;
    for (int64_t b = 0; b < stage_layers[stage]; ++b) {
      // Every stage starts with stride 2, hence always a downsample branch.
      IBasicBlock block(b == 0 ? inplanes : widths[stage], widths[stage], b == 0 ? 2 : 1, b == 0);
      seq->push_back(block);
      bs.push_back(block);
    }
    inplanes = widths[stage];
    layers.push_back(register_module("layer" + std::to_string(stage + 1), seq));
    blocks.push_back(std::move(bs));
  }
  bn2 = register_module("bn2", bn2d(512));
  fc = register_module("fc", nn::Linear(512 * 7 * 7, embedding_size));
  bn_features = register_module(
      "features", nn::BatchNorm1d(nn::BatchNormOptions(embedding_size).eps(kEps).momentum(kMomentum)));
}

torch::Tensor IResNetImpl::features(torch::Tensor x) {
  x = conv1(x);
  if (!folded_) x = bn1(x);
  x = prelu(x);
  for (auto& stage : blocks)
    for (auto& b : stage) x = b(x);
  if (folded_) return fc(x.flatten(1));
  x = bn2(x);
  // Dropout2d(0.4) in training only.
  if (is_training()) x = torch::feature_dropout(x, 0.4, true);
  return bn_features(fc(x.flatten(1)));
}

void IResNetImpl::fold_batchnorm_impl() {
  fold_into_conv(conv1, bn1);
  for (auto& stage : blocks)
    for (auto& b : stage) b->fold_batchnorm();
  fold_before_linear(bn2, fc);
  fold_into_linear(fc, bn_features);
}

void IResNetImpl::build_graph(Graph& g) {
  int x = g.prelu(prelu, g.conv(conv1, 0));
  for (auto& stage : blocks)
    for (auto& b : stage) {
      const int out = g.conv(b->conv2, g.prelu(b->prelu, g.conv(b->conv1, g.bn(b->bn1, x))));
      x = g.add(out, b->ds_conv ? g.conv(b->ds_conv, x) : x);
    }
  g.linear(fc, x);
}

double IResNetImpl::macs() const {
  double m = conv_macs(conv1, 112);
  int64_t hw = 112;
  for (const auto& stage : blocks)
    for (const auto& b : stage) {
      m += conv_macs(b->conv1, hw);
      const int64_t out = (hw + b->stride - 1) / b->stride;
      m += conv_macs(b->conv2, out);
      if (b->ds_conv) m += conv_macs(b->ds_conv, out);
      hw = out;
    }
  return m + static_cast<double>(fc->weight.numel());
}

}  // namespace qface::backbones
