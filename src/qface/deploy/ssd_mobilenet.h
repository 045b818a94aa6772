// SSD with a MobileNetV1 body (Liu et al. 2016; Howard et al. 2017), the face
// detector that face-api ships as `ssd_mobilenetv1_model` (trained on WIDER
// FACE, TensorFlow object-detection layout, MIT licence), in LibTorch.
//
// The network: MobileNetV1 (a 3x3 stride-2 stem, 13 depthwise-separable
// blocks, strides 2 at blocks 2, 4, 6 and 12, ReLU6 everywhere) on a 512x512
// RGB input scaled to [-1, 1]; four extra 1x1 -> 3x3/2 stages below it; box
// and class predictors on six feature maps (block 11 at 32x32 with 3 anchors
// a cell, block 13 at 16x16 and the extra stages at 8, 4, 2 and 1 with 6):
// 5,118 anchors in all. The pointwise convolutions carry their BatchNorm
// folded into a bias in the file; the depthwise ones carry BatchNorm
// (eps 1e-3), folded here at load. Padding is TensorFlow's "same" (a stride-2
// 3x3 on an even size pads one pixel at the bottom and right only).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <string>
#include <vector>

namespace qface::deploy {

inline constexpr int64_t kSsdInputSize = 512;
inline constexpr int64_t kSsdAnchors = 5118;

// One convolution with TensorFlow "same" padding, bias, optional ReLU6.
class SameConvImpl : public torch::nn::Module {
 public:
  // filter in TensorFlow layout ([kh, kw, in, out], or [kh, kw, channels, 1]
  // for a depthwise one); bias [out].
  SameConvImpl(const torch::Tensor& filter, const torch::Tensor& bias, int64_t stride, bool depthwise, bool relu6);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv{nullptr};
  int64_t stride_, kernel_;
  bool relu6_;
};
TORCH_MODULE(SameConv);

// One prediction level of an input of any size (rows x cols cells, each
// with its anchor shapes, NHWC order): box encodings [N, rows*cols*A, 4] and
// face probabilities [N, rows*cols*A].
struct SsdLevel {
  torch::Tensor encodings, scores;
  int64_t rows = 0, cols = 0;
};

struct SsdRaw {
  torch::Tensor boxes;   // [N, 5118, 4]: ymin, xmin, ymax, xmax relative to the input square
  torch::Tensor scores;  // [N, 5118]: face probability (sigmoid of the face logit)
};

class SsdMobileNetV1Impl : public torch::nn::Module {
 public:
  // The tensors of ssd_mobilenetv1_model-weights_manifest.json (io::read_tfjs_weights);
  // a missing or mis-shaped one is a qface::Error naming it.
  explicit SsdMobileNetV1Impl(const std::map<std::string, torch::Tensor>& weights);

  // x: [N, 3, 512, 512] RGB in [-1, 1].
  SsdRaw forward(const torch::Tensor& x);

  // The network on x: [N, 3, H, W] RGB in [-1, 1], any H, W >= 32: the six
  // levels' outputs. The convolutions do not care about the size, so a photo
  // run at its own resolution is scanned like a sliding 512 window at every
  // 16-pixel step, with no window edges.
  std::vector<SsdLevel> levels(const torch::Tensor& x);

  // The anchors (ymin, xmin, ymax, xmax), [5118, 4], from the file's Output/extra_dim.
  const torch::Tensor& anchors() const { return anchors_; }

  // The anchors of an input of height x width, in input pixels, in levels()'
  // order: the file's anchor shapes (in 512ths of the input) on each level's
  // grid, centred where that level's cells see the input (see
  // ssd_level_offsets). For 512 x 512 they are the file's anchors times 512.
  torch::Tensor grid_anchors(int64_t height, int64_t width) const;

 private:
  SameConv stem{nullptr};
  std::vector<SameConv> depthwise, pointwise;  // blocks 1..13
  std::vector<SameConv> extra;                 // Prediction/Conv2d_0..7
  std::vector<SameConv> box_head, class_head;  // six of each
  torch::Tensor anchors_;
  std::vector<torch::Tensor> shapes_;  // per level: [A, 2] anchor height, width in 512ths
};
TORCH_MODULE(SsdMobileNetV1);

// Where a level's cells look, relative to where the anchors assume.
// The anchors were laid out for 512 x 512, where every stride-2 convolution
// sees an even size and pads only after; an odd size (e.g. 17 rows at stride
// 64 for a 1088-row input) pads one before too, which moves every later
// cell's view up by that convolution's input stride. Returns, for an input
// side of n pixels, the shift in pixels of each of the six levels (0 for n a
// multiple of 512; for n = 1088: 0, 0, 0, -64, -192, -448).
std::vector<double> ssd_level_offsets(int64_t n);

// The input stride of each of the six levels: 16, 32, 64, 128, 256, 512.
inline constexpr int64_t kSsdLevelStride[6] = {16, 32, 64, 128, 256, 512};

// Box-coder decoding of SSD (scales 10, 10, 5, 5): encodings [.., 4] as
// (ty, tx, th, tw) against anchors [.., 4] as (ymin, xmin, ymax, xmax).
torch::Tensor decode_ssd_boxes(const torch::Tensor& encodings, const torch::Tensor& anchors);

}  // namespace qface::deploy
