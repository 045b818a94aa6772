#include "qface/backbones/mobilefacenet.h"
#include "qface/core/torch_compat.h"

#include <torch/torch.h>

#include "qface/backbones/fold.h"
#include "qface/backbones/graph.h"

namespace qface::backbones {
namespace nn = torch::nn;

ConvBNImpl::ConvBNImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t groups,
                       bool with_prelu) {
  conv = register_module(
      "conv", nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).groups(groups).bias(false)));
  bn = register_module("bn", nn::BatchNorm2d(out));
  if (with_prelu) prelu = register_module("prelu", nn::PReLU(nn::PReLUOptions().num_parameters(out)));
}

torch::Tensor ConvBNImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = conv(x);
  if (!folded) y = bn(y);
  return prelu ? prelu(y) : y;
}

void ConvBNImpl::fold_batchnorm() {
  fold_into_conv(conv, bn);
  folded = true;
}

DepthWiseImpl::DepthWiseImpl(int64_t in, int64_t out, bool res, int64_t stride, int64_t groups) : residual(res) {
  conv = register_module("conv", ConvBN(in, groups, 1, 1, 0, 1, true));
  conv_dw = register_module("conv_dw", ConvBN(groups, groups, 3, stride, 1, groups, true));
  project = register_module("project", ConvBN(groups, out, 1, 1, 0, 1, false));
}

torch::Tensor DepthWiseImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = project(conv_dw(conv(x)));
  return residual ? x + y : y;
}

void DepthWiseImpl::fold_batchnorm() {
  conv->fold_batchnorm();
  conv_dw->fold_batchnorm();
  project->fold_batchnorm();
}

namespace {
// Residual(c, num_block, groups): registered as <name>.model.{i}.
std::vector<DepthWise> residual_stage(nn::Module& parent, const std::string& name, int64_t c, int64_t n,
                                      int64_t groups) {
  nn::Sequential model;
  std::vector<DepthWise> blocks;
  for (int64_t i = 0; i < n; ++i) {
    DepthWise d(c, c, true, 1, groups);
    model->push_back(d);
    blocks.push_back(d);
  }
  auto holder = std::make_shared<nn::Module>();
  holder->register_module("model", model);
  parent.register_module(name, holder);
  return blocks;
}
}  // namespace

MobileFaceNetImpl::MobileFaceNetImpl(int64_t embedding_size)
    : BackboneImpl("mobilefacenet", embedding_size, Preprocessing{true, 0.5f, 0.5f}) {
  conv1 = register_module("conv1", ConvBN(3, 64, 3, 2, 1, 1, true));
  conv2_dw = register_module("conv2_dw", ConvBN(64, 64, 3, 1, 1, 64, true));
  conv_23 = register_module("conv_23", DepthWise(64, 64, false, 2, 128));
  conv_3 = residual_stage(*this, "conv_3", 64, 4, 128);
  conv_34 = register_module("conv_34", DepthWise(64, 128, false, 2, 256));
  conv_4 = residual_stage(*this, "conv_4", 128, 6, 256);
  conv_45 = register_module("conv_45", DepthWise(128, 128, false, 2, 512));
  conv_5 = residual_stage(*this, "conv_5", 128, 2, 256);
  conv_6_sep = register_module("conv_6_sep", ConvBN(128, 512, 1, 1, 0, 1, true));
  conv_6_dw = register_module("conv_6_dw", ConvBN(512, 512, 7, 1, 0, 512, false));
  linear = register_module("linear", nn::Linear(nn::LinearOptions(512, embedding_size).bias(false)));
  bn = register_module("bn", nn::BatchNorm1d(embedding_size));
}

torch::Tensor MobileFaceNetImpl::features(torch::Tensor x) {
  x = conv2_dw(conv1(x));
  x = conv_23(x);
  for (auto& d : conv_3) x = d(x);
  x = conv_34(x);
  for (auto& d : conv_4) x = d(x);
  x = conv_45(x);
  for (auto& d : conv_5) x = d(x);
  x = conv_6_dw(conv_6_sep(x));
  x = linear(x.flatten(1));
  return folded_ ? x : bn(x);
}

void MobileFaceNetImpl::fold_batchnorm_impl() {
  for (ConvBN* c : {&conv1, &conv2_dw, &conv_6_sep, &conv_6_dw}) (*c)->fold_batchnorm();
  for (DepthWise* d : {&conv_23, &conv_34, &conv_45}) (*d)->fold_batchnorm();
  for (auto* stage : {&conv_3, &conv_4, &conv_5})
    for (auto& d : *stage) d->fold_batchnorm();
  fold_into_linear(linear, bn);
}

void MobileFaceNetImpl::build_graph(Graph& g) {
  auto conv_bn = [&](const ConvBN& c, int x) {
    x = g.conv(c->conv, x);
    return c->prelu ? g.prelu(c->prelu, x) : x;
  };
  auto depthwise = [&](const DepthWise& d, int x) {
    const int y = conv_bn(d->project, conv_bn(d->conv_dw, conv_bn(d->conv, x)));
    return d->residual ? g.add(x, y) : y;
  };
  int x = conv_bn(conv2_dw, conv_bn(conv1, 0));
  x = depthwise(conv_23, x);
  for (auto& d : conv_3) x = depthwise(d, x);
  x = depthwise(conv_34, x);
  for (auto& d : conv_4) x = depthwise(d, x);
  x = depthwise(conv_45, x);
  for (auto& d : conv_5) x = depthwise(d, x);
  x = conv_bn(conv_6_dw, conv_bn(conv_6_sep, x));
  g.linear(linear, x);
}

double MobileFaceNetImpl::macs() const {
  double m = 0;
  int64_t hw = 112;
  auto add = [&](const ConvBN& c) {
    const int64_t s = (*c->conv->options.stride())[0];
    const int64_t k = (*c->conv->options.kernel_size())[0];
    const int64_t p = (*compat::get<torch::ExpandingArray<2>>(c->conv->options.padding()))[0];
    hw = (hw + 2 * p - k) / s + 1;
    m += conv_macs(c->conv, hw);
  };
  auto add_dw = [&](const DepthWise& d) {
    add(d->conv);
    add(d->conv_dw);
    add(d->project);
  };
  add(conv1);
  add(conv2_dw);
  add_dw(conv_23);
  for (const auto& d : conv_3) add_dw(d);
  add_dw(conv_34);
  for (const auto& d : conv_4) add_dw(d);
  add_dw(conv_45);
  for (const auto& d : conv_5) add_dw(d);
  add(conv_6_sep);
  add(conv_6_dw);
  return m + static_cast<double>(linear->weight.numel());
}

}  // namespace qface::backbones
