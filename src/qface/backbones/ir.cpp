#include "qface/backbones/ir.h"

#include <torch/torch.h>

#include "qface/backbones/fold.h"
#include "qface/backbones/graph.h"
#include "qface/backbones/winograd.h"

namespace qface::backbones {
namespace nn = torch::nn;

namespace {
nn::Conv2d conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}
// MaxPool2d(kernel 1, stride s) is plain subsampling.
torch::Tensor subsample(const torch::Tensor& x, int64_t s) {
  if (s == 1) return x;
  return x.slice(2, 0, x.size(2), s).slice(3, 0, x.size(3), s);
}
}  // namespace

SEModuleImpl::SEModuleImpl(int64_t channels, int64_t reduction) {
  fc1 = register_module("fc1", conv(channels, channels / reduction, 1, 1, 0));
  fc2 = register_module("fc2", conv(channels / reduction, channels, 1, 1, 0));
}

torch::Tensor SEModuleImpl::forward(const torch::Tensor& x) {
  torch::Tensor s = torch::adaptive_avg_pool2d(x, {1, 1});
  s = torch::sigmoid(fc2(torch::relu(fc1(s))));
  return x * s;
}

IRUnitImpl::IRUnitImpl(int64_t in, int64_t d, int64_t s, bool with_se) : in_channels(in), depth(d), stride(s) {
  if (in != d) {
    shortcut_conv = conv(in, d, 1, s, 0);
    shortcut_bn = nn::BatchNorm2d(d);
    shortcut_layer = register_module("shortcut_layer", nn::Sequential(shortcut_conv, shortcut_bn));
  }
  bn0 = nn::BatchNorm2d(in);
  conv1 = conv(in, d, 3, 1, 1);
  bn1 = nn::BatchNorm2d(d);
  prelu = nn::PReLU(nn::PReLUOptions().num_parameters(d));
  conv2 = conv(d, d, 3, s, 1);
  bn2 = nn::BatchNorm2d(d);
  res_layer = nn::Sequential(bn0, conv1, bn1, prelu, conv2, bn2);
  if (with_se) {
    se = SEModule(d, 16);
    res_layer->push_back("se_block", se);
  }
  register_module("res_layer", res_layer);
}

torch::Tensor IRUnitImpl::forward(const torch::Tensor& x) {
  torch::Tensor r = conv_forward(conv1, bn0(x));
  if (!folded) r = bn1(r);
  r = conv_forward(conv2, prelu(r));
  if (!folded) r = bn2(r);
  if (se) r = se(r);
  torch::Tensor sc;
  if (shortcut_conv) {
    sc = shortcut_conv(x);
    if (!folded) sc = shortcut_bn(sc);
  } else {
    sc = subsample(x, stride);
  }
  return r + sc;
}

void IRUnitImpl::fold_batchnorm() {
  fold_into_conv(conv1, bn1);
  fold_into_conv(conv2, bn2);
  if (shortcut_conv) fold_into_conv(shortcut_conv, shortcut_bn);
  folded = true;
}

IRNetImpl::IRNetImpl(std::string arch, std::vector<int64_t> stage_units, bool se, int64_t embedding_size)
    : BackboneImpl(std::move(arch), embedding_size, Preprocessing{true, 0.5f, 0.5f}) {
  stem_conv = conv(3, 64, 3, 1, 1);
  stem_bn = nn::BatchNorm2d(64);
  stem_prelu = nn::PReLU(nn::PReLUOptions().num_parameters(64));
  input_layer = register_module("input_layer", nn::Sequential(stem_conv, stem_bn, stem_prelu));
  body = nn::ModuleList();
  const int64_t widths[4] = {64, 128, 256, 512};
  int64_t in = 64;
  for (std::size_t stage = 0; stage < stage_units.size() && stage < 4; ++stage) {
    for (int64_t u = 0; u < stage_units[stage]; ++u) {
      IRUnit unit(u == 0 ? in : widths[stage], widths[stage], u == 0 ? 2 : 1, se);
      units.push_back(unit);
      body->push_back(unit);
    }
    in = widths[stage];
  }
  register_module("body", body);
  out_bn2d = nn::BatchNorm2d(512);
  dropout = nn::Dropout(0.4);
  linear = nn::Linear(512 * 7 * 7, embedding_size);
  out_bn1d = nn::BatchNorm1d(nn::BatchNormOptions(embedding_size).affine(false));
  output_layer = register_module("output_layer",
                                 nn::Sequential(out_bn2d, dropout, nn::Flatten(), linear, out_bn1d));
}

torch::Tensor IRNetImpl::features(torch::Tensor x) {
  x = stem_conv(x);
  if (!folded_) x = stem_bn(x);
  x = stem_prelu(x);
  for (auto& u : units) x = u(x);
  if (folded_) return linear(x.flatten(1));
  return output_layer->forward(x);
}

void IRNetImpl::fold_batchnorm_impl() {
  fold_into_conv(stem_conv, stem_bn);
  for (auto& u : units) u->fold_batchnorm();
  // BN2d -> flatten -> linear -> BN1d is one linear layer.
  fold_before_linear(out_bn2d, linear);
  fold_into_linear(linear, out_bn1d);
}

void IRNetImpl::build_graph(Graph& g) {
  int x = g.prelu(stem_prelu, g.conv(stem_conv, 0));
  for (auto& u : units) {
    int r = g.conv(u->conv2, g.prelu(u->prelu, g.conv(u->conv1, g.bn(u->bn0, x))));
    if (u->se) r = g.fp32([se = u->se](const torch::Tensor& t) mutable { return se->forward(t); }, r);
    x = g.add(r, u->shortcut_conv ? g.conv(u->shortcut_conv, x) : g.subsample(x, u->stride));
  }
  g.linear(linear, x);
}

double IRNetImpl::macs() const {
  double m = conv_macs(stem_conv, 112);
  int64_t hw = 112;
  for (const auto& u : units) {
    m += conv_macs(u->conv1, hw);
    const int64_t out = (hw + u->stride - 1) / u->stride;
    m += conv_macs(u->conv2, out);
    if (u->shortcut_conv) m += conv_macs(u->shortcut_conv, out);
    if (u->se) m += conv_macs(u->se->fc1, 1) + conv_macs(u->se->fc2, 1);
    hw = out;
  }
  return m + static_cast<double>(linear->weight.numel());
}

}  // namespace qface::backbones
