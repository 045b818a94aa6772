#include "qface/deploy/ssd_mobilenet.h"

#include <torch/nn/functional/padding.h>

#include <fmt/ranges.h>

#include "qface/core/error.h"

namespace qface::deploy {
namespace F = torch::nn::functional;

namespace {

const torch::Tensor& get(const std::map<std::string, torch::Tensor>& w, const std::string& name,
                         std::vector<int64_t> shape) {
  const auto it = w.find(name);
  require(it != w.end(), "ssd model: weight '{}' missing", name);
  require(it->second.sizes().vec() == shape, "ssd model: weight '{}' has shape {}, expected {}", name,
          fmt::format("{}", it->second.sizes().vec()), fmt::format("{}", shape));
  require(it->second.scalar_type() == torch::kFloat32, "ssd model: weight '{}' is not float32", name);
  return it->second;
}

// TensorFlow's "same": total padding (ceil(n / s) - 1) * s + k - n, the odd
// pixel after (bottom / right).
std::pair<int64_t, int64_t> same_padding(int64_t n, int64_t k, int64_t s) {
  const int64_t total = std::max<int64_t>(((n + s - 1) / s - 1) * s + k - n, 0);
  return {total / 2, total - total / 2};
}

}  // namespace

SameConvImpl::SameConvImpl(const torch::Tensor& filter, const torch::Tensor& bias, int64_t stride, bool depthwise,
                           bool relu6)
    : stride_(stride), kernel_(filter.size(0)), relu6_(relu6) {
  const int64_t in = filter.size(2), out = depthwise ? in * filter.size(3) : filter.size(3);
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel_)
                                                        .stride(stride)
                                                        .groups(depthwise ? in : 1)
                                                        .bias(true)));
  torch::NoGradGuard no_grad;
  // TensorFlow [kh, kw, in, out] -> [out, in, kh, kw]; depthwise [kh, kw, c, 1] -> [c, 1, kh, kw].
  conv->weight.copy_(depthwise ? filter.permute({2, 3, 0, 1}) : filter.permute({3, 2, 0, 1}));
  conv->bias.copy_(bias);
}

torch::Tensor SameConvImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = x;
  if (kernel_ > 1) {
    const auto [top, bottom] = same_padding(x.size(2), kernel_, stride_);
    const auto [left, right] = same_padding(x.size(3), kernel_, stride_);
    y = F::pad(x, F::PadFuncOptions({left, right, top, bottom}));
  }
  y = conv->forward(y);
  return relu6_ ? y.clamp_(0, 6) : y;
}

SsdMobileNetV1Impl::SsdMobileNetV1Impl(const std::map<std::string, torch::Tensor>& w) {
  const std::string mb = "MobilenetV1/";
  stem = register_module("stem", SameConv(get(w, mb + "Conv2d_0_pointwise/weights", {3, 3, 3, 32}),
                                          get(w, mb + "Conv2d_0_pointwise/convolution_bn_offset", {32}), 2, false, true));
  // MobileNetV1's widths after each block (the depthwise keeps the width, the pointwise sets it).
  const int64_t widths[14] = {32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
  for (int b = 1; b <= 13; ++b) {
    const int64_t c = widths[b - 1], out = widths[b];
    const int64_t stride = (b == 2 || b == 4 || b == 6 || b == 12) ? 2 : 1;
    const std::string dw = fmt::format("{}Conv2d_{}_depthwise/", mb, b), pw = fmt::format("{}Conv2d_{}_pointwise/", mb, b);
    // Fold the depthwise BatchNorm: w * gamma / sqrt(var + eps), beta - mean * gamma / sqrt(var + eps).
    const auto& gamma = get(w, dw + "BatchNorm/gamma", {c});
    const auto& beta = get(w, dw + "BatchNorm/beta", {c});
    const auto& mean = get(w, dw + "BatchNorm/moving_mean", {c});
    const auto& var = get(w, dw + "BatchNorm/moving_variance", {c});
    const torch::Tensor k = gamma / torch::sqrt(var + 0.0010000000474974513);
    const torch::Tensor filter = get(w, dw + "depthwise_weights", {3, 3, c, 1}) * k.view({1, 1, c, 1});
    depthwise.push_back(register_module(fmt::format("dw{}", b), SameConv(filter, beta - mean * k, stride, true, true)));
    pointwise.push_back(register_module(fmt::format("pw{}", b),
                                        SameConv(get(w, pw + "weights", {1, 1, c, out}),
                                                 get(w, pw + "convolution_bn_offset", {out}), 1, false, true)));
  }
  // The extra stages: 1x1 narrowing, then a 3x3 stride-2 (1024 -> 256 -> 512 -> 128 -> 256 -> 128 -> 256 -> 64 -> 128).
  const int64_t extra_widths[9] = {1024, 256, 512, 128, 256, 128, 256, 64, 128};
  for (int i = 0; i < 8; ++i) {
    const int64_t k = i % 2 ? 3 : 1;
    const std::string p = fmt::format("Prediction/Conv2d_{}_pointwise/", i);
    extra.push_back(register_module(
        fmt::format("extra{}", i),
        SameConv(get(w, p + "weights", {k, k, extra_widths[i], extra_widths[i + 1]}),
                 get(w, p + "convolution_bn_offset", {extra_widths[i + 1]}), i % 2 ? 2 : 1, false, true)));
  }
  // Predictors on block 11 (512 ch, 3 anchors), block 13 (1024, 6) and the extra stages' 3x3 outputs.
  const int64_t map_widths[6] = {512, 1024, 512, 256, 256, 128};
  for (int m = 0; m < 6; ++m) {
    const int64_t a = m == 0 ? 3 : 6, c = map_widths[m];
    const std::string p = fmt::format("Prediction/BoxPredictor_{}/", m);
    box_head.push_back(register_module(fmt::format("box{}", m),
                                       SameConv(get(w, p + "BoxEncodingPredictor/weights", {1, 1, c, 4 * a}),
                                                get(w, p + "BoxEncodingPredictor/biases", {4 * a}), 1, false, false)));
    class_head.push_back(register_module(fmt::format("class{}", m),
                                         SameConv(get(w, p + "ClassPredictor/weights", {1, 1, c, 3 * a}),
                                                  get(w, p + "ClassPredictor/biases", {3 * a}), 1, false, false)));
  }
  anchors_ = register_buffer("anchors", get(w, "Output/extra_dim", {1, kSsdAnchors, 4})[0].clone());
}

SsdRaw SsdMobileNetV1Impl::forward(const torch::Tensor& x) {
  require(x.dim() == 4 && x.size(1) == 3 && x.size(2) == kSsdInputSize && x.size(3) == kSsdInputSize,
          "ssd: expected [N, 3, 512, 512], got {}", fmt::format("{}", x.sizes().vec()));
  std::vector<torch::Tensor> maps;
  torch::Tensor y = stem->forward(x);
  for (int b = 0; b < 13; ++b) {
    y = pointwise[b]->forward(depthwise[b]->forward(y));
    if (b == 10) maps.push_back(y);  // block 11
  }
  maps.push_back(y);
  for (int i = 0; i < 8; ++i) {
    y = extra[i]->forward(y);
    if (i % 2) maps.push_back(y);
  }
  const int64_t n = x.size(0);
  std::vector<torch::Tensor> boxes, logits;
  for (int m = 0; m < 6; ++m) {
    // Anchors run over cells (row-major) and, within a cell, over its anchor shapes: NHWC order.
    boxes.push_back(box_head[m]->forward(maps[m]).permute({0, 2, 3, 1}).reshape({n, -1, 4}));
    logits.push_back(class_head[m]->forward(maps[m]).permute({0, 2, 3, 1}).reshape({n, -1, 3}));
  }
  const torch::Tensor enc = torch::cat(boxes, 1);
  // Class 0 is the background, class 1 the face (class 2 is unused by face-api).
  return {decode_ssd_boxes(enc, anchors_.unsqueeze(0)), torch::sigmoid(torch::cat(logits, 1).select(2, 1))};
}

torch::Tensor decode_ssd_boxes(const torch::Tensor& e, const torch::Tensor& a) {
  const torch::Tensor ah = a.select(-1, 2) - a.select(-1, 0), aw = a.select(-1, 3) - a.select(-1, 1);
  const torch::Tensor cy = a.select(-1, 0) + ah / 2, cx = a.select(-1, 1) + aw / 2;
  const torch::Tensor y = e.select(-1, 0) / 10 * ah + cy, x = e.select(-1, 1) / 10 * aw + cx;
  const torch::Tensor h = torch::exp(e.select(-1, 2) / 5) * ah / 2, w = torch::exp(e.select(-1, 3) / 5) * aw / 2;
  return torch::stack({y - h, x - w, y + h, x + w}, -1);
}

}  // namespace qface::deploy
