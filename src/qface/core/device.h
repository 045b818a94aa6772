// Where tensors live (issue #38): "cpu", "cuda" or "cuda:N". CUDA needs a
// LibTorch built with it (Debian 13's libtorch-cuda-dev, or PyTorch's own)
// and a visible GPU; without either, parse_device says which is missing
// instead of failing later inside LibTorch.
#pragma once

#include <torch/types.h>

#include <string>

namespace torch::nn {
class Module;
}

namespace qface {

// Parses and checks a device name; `option` names the option or key in
// errors ("--device", "device").
torch::Device parse_device(const std::string& name, const std::string& option = "--device");

// The device of one worker of a data-parallel job: plain "cuda" becomes
// cuda:<local_rank> (one GPU per process, as torchrun's workers use them);
// an explicit index and the CPU are kept.
torch::Device device_for_rank(const torch::Device& device, int local_rank);

// Whether this LibTorch was built with CUDA (whether or not a GPU is present).
bool cuda_built();

// The device of a module's first parameter or buffer (the CPU for a module
// without either).
torch::Device module_device(const torch::nn::Module& module);

}  // namespace qface
