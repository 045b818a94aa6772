// 3x3 stride-1 convolutions for training through oneDNN's Winograd kernels.
// LibTorch 1.13 asks oneDNN (the same libdnnl.so.2) for direct convolutions
// only; on AVX-512 the Winograd ones run the forward and both backward passes
// 1.7-2.8x faster for IR-50's shapes (bench/onednn/winograd_probe.cpp), with
// outputs within ~1e-6 relative RMS of direct ones. Everything else (other
// kernels, strides, bias, groups, NCHW, no grad, other dtypes) goes to the
// module's own forward.
#pragma once

#include <torch/torch.h>

namespace qface::backbones {

// Process-wide switch, off by default; `qface train` and `qface bench train`
// turn it on (their `winograd` option).
void set_winograd_training(bool on);

// conv(x), through Winograd when the switch is on and the case is served.
torch::Tensor train_conv(torch::nn::Conv2d& conv, const torch::Tensor& x);

// Whether train_conv would take the Winograd path (for tests).
bool winograd_serves(const torch::nn::Conv2d& conv, const torch::Tensor& x);

}  // namespace qface::backbones
