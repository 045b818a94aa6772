// 3x3 stride-1 convolutions through oneDNN's Winograd kernels, for training
// and for fp32 inference. LibTorch 1.13 asks oneDNN (the same libdnnl.so.2)
// for direct convolutions only; on AVX-512 the Winograd ones run the forward
// and both backward passes 1.7-2.8x faster for IR-50's shapes
// (bench/onednn/winograd_probe.cpp), with outputs within ~1e-6 relative RMS
// of direct ones. Everything else (other kernels, strides, groups, NCHW,
// other dtypes, bf16 autocast, CPUs without the kernel) goes to the module's
// own forward.
#pragma once

#include <torch/torch.h>

namespace qface::backbones {

// Process-wide switch for training (convolutions that need gradients), off by
// default; `qface train` and `qface bench train` turn it on (their `winograd`
// option).
void set_winograd_training(bool on);

// While alive, convolutions without gradients on this thread take the
// Winograd path where served (infer::embed, per InferenceOptions::winograd).
// Restores the previous setting. Not in effect under bf16 autocast.
class WinogradInference {
 public:
  explicit WinogradInference(bool on);
  ~WinogradInference();
  WinogradInference(const WinogradInference&) = delete;
  WinogradInference& operator=(const WinogradInference&) = delete;

 private:
  bool prev_;
};

// conv(x), through Winograd when switched on and the case is served.
torch::Tensor conv_forward(torch::nn::Conv2d& conv, const torch::Tensor& x);

// Whether conv_forward would take the Winograd path (for tests).
bool winograd_serves(const torch::nn::Conv2d& conv, const torch::Tensor& x);

}  // namespace qface::backbones
