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

// One axis of an input of n pixels through the network's stride-2
// convolutions: each level's number of cells and the shift of its view.
struct LevelAxis {
  int64_t cells[6] = {};
  double offset[6] = {};
};
LevelAxis level_axis(int64_t n) {
  LevelAxis a;
  // The stride-2 3x3 convolutions in order (stem, blocks 2, 4, 6, 12, extra
  // stages 1, 3, 5, 7) by their input stride; a level is read after the
  // convolution of input stride 8, 16, ..., 256.
  double shift = 0;
  int64_t m = n;
  for (int64_t in_stride = 1; in_stride <= 256; in_stride *= 2) {
    shift -= static_cast<double>(same_padding(m, 3, 2).first * in_stride);
    m = (m + 1) / 2;
    if (in_stride >= 8) {
      const int level = in_stride == 8 ? 0 : in_stride == 16 ? 1 : in_stride == 32 ? 2 : in_stride == 64 ? 3 : in_stride == 128 ? 4 : 5;
      a.cells[level] = m;
      a.offset[level] = shift;
    }
  }
  return a;
}

}  // namespace

std::vector<double> ssd_level_offsets(int64_t n) {
  const LevelAxis a = level_axis(n);
  return {a.offset, a.offset + 6};
}

SameConvImpl::SameConvImpl(const torch::Tensor& filter, const torch::Tensor& bias, int64_t stride, bool depthwise,
                           bool relu6)
    : stride_(stride), kernel_(filter.size(0)), relu6_(relu6) {
  const int64_t in = filter.size(2), out = depthwise ? in * filter.size(3) : filter.size(3);
  // At stride 1 "same" is symmetric, so the convolution pads by itself (no
  // padded copy of a large map); at stride 2 forward() pads TensorFlow's way.
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel_)
                                                        .stride(stride)
                                                        .padding(stride == 1 ? kernel_ / 2 : 0)
                                                        .groups(depthwise ? in : 1)
                                                        .bias(true)));
  torch::NoGradGuard no_grad;
  // TensorFlow [kh, kw, in, out] -> [out, in, kh, kw]; depthwise [kh, kw, c, 1] -> [c, 1, kh, kw].
  conv->weight.copy_(depthwise ? filter.permute({2, 3, 0, 1}) : filter.permute({3, 2, 0, 1}));
  conv->bias.copy_(bias);
  // NHWC: oneDNN's depthwise and 1x1 kernels run about 1.4x faster on it
  // than on NCHW at the sizes a scan sees (bench detect).
  conv->weight.set_data(conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
}

torch::Tensor SameConvImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = x;
  if (kernel_ > 1 && stride_ > 1) {
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
  // The anchor shapes of each level, read off its first cell; the file's
  // anchors must then be exactly that grid (scanning photos relies on it).
  const int64_t per_cell[6] = {3, 6, 6, 6, 6, 6};
  int64_t first = 0;
  for (int level = 0; level < 6; ++level) {
    const torch::Tensor cell = anchors_.slice(0, first, first + per_cell[level]);
    shapes_.push_back(torch::stack({cell.select(1, 2) - cell.select(1, 0), cell.select(1, 3) - cell.select(1, 1)}, 1));
    const int64_t side = kSsdInputSize / kSsdLevelStride[level];
    first += side * side * per_cell[level];
  }
  const double off = (grid_anchors(kSsdInputSize, kSsdInputSize) / kSsdInputSize - anchors_).abs().max().item<double>();
  require(off < 1e-5, "ssd model: Output/extra_dim is not SSD's regular anchor grid (off by {})", off);
}

torch::Tensor SsdMobileNetV1Impl::grid_anchors(int64_t height, int64_t width) const {
  const LevelAxis ay = level_axis(height), ax = level_axis(width);
  std::vector<torch::Tensor> out;
  for (int level = 0; level < 6; ++level) {
    const double stride = static_cast<double>(kSsdLevelStride[level]);
    const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
    const torch::Tensor cy = ((torch::arange(ay.cells[level], opts) + 0.5) * stride + ay.offset[level]).view({-1, 1, 1});
    const torch::Tensor cx = ((torch::arange(ax.cells[level], opts) + 0.5) * stride + ax.offset[level]).view({1, -1, 1});
    const torch::Tensor shape = shapes_[static_cast<std::size_t>(level)].to(torch::kFloat64) * kSsdInputSize;
    const torch::Tensor h = shape.select(1, 0).view({1, 1, -1}) / 2, w = shape.select(1, 1).view({1, 1, -1}) / 2;
    const int64_t rows = ay.cells[level], cols = ax.cells[level], a = shape.size(0);
    out.push_back(torch::stack({(cy - h).expand({rows, cols, a}), (cx - w).expand({rows, cols, a}),
                                (cy + h).expand({rows, cols, a}), (cx + w).expand({rows, cols, a})},
                               -1)
                      .reshape({-1, 4}));
  }
  return torch::cat(out, 0).to(torch::kFloat32);
}

std::vector<SsdLevel> SsdMobileNetV1Impl::levels(const torch::Tensor& x) {
  require(x.dim() == 4 && x.size(1) == 3 && x.size(2) >= 32 && x.size(3) >= 32,
          "ssd: expected [N, 3, H, W] with H, W >= 32, got {}", fmt::format("{}", x.sizes().vec()));
  std::vector<torch::Tensor> maps;
  torch::Tensor y = stem->forward(x.contiguous(torch::MemoryFormat::ChannelsLast));
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
  std::vector<SsdLevel> out;
  for (int m = 0; m < 6; ++m) {
    // Anchors run over cells (row-major) and, within a cell, over its anchor shapes: NHWC order.
    // Class 0 is the background, class 1 the face (class 2 is unused by face-api).
    const torch::Tensor logits = class_head[m]->forward(maps[m]).permute({0, 2, 3, 1}).reshape({n, -1, 3});
    out.push_back({box_head[m]->forward(maps[m]).permute({0, 2, 3, 1}).reshape({n, -1, 4}),
                   torch::sigmoid(logits.select(2, 1)), maps[m].size(2), maps[m].size(3)});
  }
  return out;
}

SsdRaw SsdMobileNetV1Impl::forward(const torch::Tensor& x) {
  require(x.dim() == 4 && x.size(1) == 3 && x.size(2) == kSsdInputSize && x.size(3) == kSsdInputSize,
          "ssd: expected [N, 3, 512, 512], got {}", fmt::format("{}", x.sizes().vec()));
  std::vector<torch::Tensor> enc, scores;
  for (SsdLevel& l : levels(x)) {
    enc.push_back(l.encodings);
    scores.push_back(l.scores);
  }
  return {decode_ssd_boxes(torch::cat(enc, 1), anchors_.unsqueeze(0)), torch::cat(scores, 1)};
}

torch::Tensor decode_ssd_boxes(const torch::Tensor& e, const torch::Tensor& a) {
  const torch::Tensor ah = a.select(-1, 2) - a.select(-1, 0), aw = a.select(-1, 3) - a.select(-1, 1);
  const torch::Tensor cy = a.select(-1, 0) + ah / 2, cx = a.select(-1, 1) + aw / 2;
  const torch::Tensor y = e.select(-1, 0) / 10 * ah + cy, x = e.select(-1, 1) / 10 * aw + cx;
  const torch::Tensor h = torch::exp(e.select(-1, 2) / 5) * ah / 2, w = torch::exp(e.select(-1, 3) / 5) * aw / 2;
  return torch::stack({y - h, x - w, y + h, x + w}, -1);
}

}  // namespace qface::deploy
