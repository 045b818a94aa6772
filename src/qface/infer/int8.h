// int8 inference: post-training static quantization of a folded backbone's
// graph (backbones/graph.h) on LibTorch's oneDNN quantized engine. Weights:
// per output channel, symmetric int8 (PReLU slopes: per tensor, 8 bit).
// Activations: every graph value as quint8 with a scale and zero point from
// the ranges seen on calibration images. The embedding layer (linear) stays
// fp32 on the dequantized last feature map: it is 0.2 % of the compute and
// the norm it produces is the quality score.
#pragma once

#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qface/backbones/backbone.h"
#include "qface/backbones/graph.h"

namespace qface::infer {

// quint8 parameters of one graph value: real = scale * (q - zero_point).
struct QParams {
  double scale = 1;
  int64_t zero_point = 0;
};

// torch::quantize_per_tensor to quint8, bit for bit, in one vectorized pass:
// Debian's LibTorch 1.13 (built without FBGEMM) quantizes with a scalar loop,
// 80 ms for the 26M values of IR-50's first layer at batch 32 on a 2-core
// AVX-512 VM, a fifth of the whole int8 forward pass. Keeps a channels_last
// input channels_last.
torch::Tensor quantize_quint8(const torch::Tensor& x, const QParams& q);

// Whether this LibTorch has the oneDNN quantized engine; selects it when it does.
bool int8_supported();

// Records each graph value's range over calibration batches (fp32 run of the
// graph) and a sample of its elements; the quint8 range of each value is the
// one with the least quantization error (MSE) on that sample, among [min, max]
// and ranges that clip the 1e-6 .. 1e-2 tails (clipping rare outliers makes
// the step finer for everything else).
class Calibrator {
 public:
  explicit Calibrator(backbones::Graph graph);
  // One preprocessed batch (N x 3 x 112 x 112).
  void observe(const torch::Tensor& x);
  int64_t images() const { return images_; }
  // Per value, the quint8 parameters of the least-error range (always including 0).
  std::vector<QParams> qparams() const;

 private:
  backbones::Graph graph_;
  std::vector<double> lo_, hi_;
  std::vector<std::vector<torch::Tensor>> samples_;
  std::vector<int64_t> sampled_;
  int64_t images_ = 0;
};

// Per graph step, a per-channel shift added to that step's output
// (undefined: none), from bias_correction below. Only steps with a bias
// carry one: convolutions, BatchNorms and the linear layer.
using BiasShift = std::vector<torch::Tensor>;

// How many channels the bias shift of step `i` of `graph` has; 0 where it
// has none (steps without a bias, and the first layer: it reads the image in
// fp32, its output has no int8 error).
int64_t bias_channels(const backbones::Graph& graph, std::size_t i);

// The int8 version of a folded backbone; install with BackboneImpl::set_engine.
class Int8Engine : public backbones::FeaturesEngine {
 public:
  // `act` holds one QParams per graph value. Steps from `fp32_from` on run in
  // fp32 (mixed precision: the last stage of a network is where int8 noise
  // reaches the embedding and its norm least filtered); -1: only the linear
  // layer. `shift`: empty, or one entry per step (bias_correction). Throws
  // qface::Error when the counts or a shift's channels differ or the
  // quantized engine is missing.
  Int8Engine(backbones::Graph graph, std::vector<QParams> act, int fp32_from = -1, BiasShift shift = {});
  ~Int8Engine() override;
  torch::Tensor features(const torch::Tensor& x) override { return run(x); }
  // features(x), with `observe(v, t)` seeing every value as it is made (a
  // quantized tensor where the engine keeps one); with `last_step` >= 0 it
  // stops after that step and returns its output.
  torch::Tensor run(const torch::Tensor& x, const std::function<void(int, const torch::Tensor&)>& observe = {},
                    int last_step = -1);
  std::string name() const override { return "int8"; }
  // Replaces step `i`'s bias shift (undefined: none), rebuilding that step only.
  void set_shift(std::size_t i, const torch::Tensor& shift);

 private:
  struct Step;
  Step make_step(std::size_t i, torch::Tensor shift) const;
  // Step i runs in fp32: the first layer (it reads the image) and, with mixed precision, the tail.
  bool runs_fp32(std::size_t i) const;
  backbones::Graph graph_;
  std::vector<QParams> act_;
  std::vector<Step> steps_;
  std::vector<int> last_;
  int fp32_from_;
};

// Quantizes a folded model in place: installs an Int8Engine built from `act`.
void install_int8(backbones::BackboneImpl& model, const std::vector<QParams>& act, int fp32_from = -1,
                  const BiasShift& shift = {});

// Empirical bias correction (Nagel et al., "Data-Free Quantization Through
// Weight Equalization and Bias Correction", ICCV 2019, the empirical
// variant). int8's error is not zero-mean per channel (clipped tails, the
// zero point's rounding, PReLU's asymmetry, weight rounding), and such a
// systematic shift adds up coherently over a deep network where rounding
// noise adds up in quadrature. Step by step in graph order, each
// correctable step's shift is minus the per-channel mean of int8 − fp32 of
// its output over the calibration batches (preprocessed), measured with
// every earlier step already corrected. Correcting all steps at once from
// one measurement does not work: a step's measured error already holds what
// its inputs' corrections will remove, and the double corrections grow
// with depth (measured: the embedding's mean error 1.7 -> 4.3 after one
// such round, 20 after two, MobileFaceNet).
// Costs one int8 run up to each correctable step (about half as many full
// int8 passes over the batches as there are such steps). Measured on the
// main job's trained MobileFaceNets it is no cure for the norm's error
// (docs/performance.md, int8): that error is rounding noise spread over
// every layer, not a shift; `qface quantize --bias-correction` opts in.
BiasShift bias_correction(const backbones::Graph& graph, const std::vector<QParams>& act, int fp32_from,
                          const std::vector<torch::Tensor>& batches);

// Where mixed precision may start: the steps that begin a new spatial size
// (a stage), latest first, as candidates for Int8Engine's fp32_from.
std::vector<int> stage_starts(const backbones::Graph& graph);

}  // namespace qface::infer
