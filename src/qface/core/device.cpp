#include "qface/core/device.h"

#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>

#include <charconv>

#include "qface/core/error.h"

namespace qface {

bool cuda_built() { return at::hasCUDA(); }

torch::Device parse_device(const std::string& name, const std::string& option) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  int index = -1;
  bool ok = name == "cuda";
  if (!ok && name.rfind("cuda:", 0) == 0 && name.size() > 5 && name.size() <= 9) {
    const char* first = name.data() + 5;
    const char* last = name.data() + name.size();
    auto [end, ec] = std::from_chars(first, last, index);
    ok = ec == std::errc() && end == last && index >= 0;
  }
  require(ok, "{}: '{}' is not a device; give cpu, cuda or cuda:N", option, name);
  require(cuda_built(),
          "{} {}: this qface was built against a LibTorch without CUDA (Debian 12's libtorch-dev is CPU only). "
          "Build it against a CUDA LibTorch (docs/training.md, Devices) or use --device cpu",
          option, name);
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  require(count > 0, "{} {}: this LibTorch has CUDA, but no CUDA device is visible (check the driver, nvidia-smi "
          "and CUDA_VISIBLE_DEVICES)", option, name);
  require(index < count, "{} {}: there are only {} CUDA device(s), cuda:0 to cuda:{}", option, name, count,
          count - 1);
  return index < 0 ? torch::Device(torch::kCUDA) : torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::Device device_for_rank(const torch::Device& device, int local_rank) {
  if (!device.is_cuda() || device.has_index()) return device;
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  require(local_rank < count, "device cuda: worker {} of this machine has no GPU of its own ({} visible); start at "
          "most {} workers per machine, or name the device (cuda:N)", local_rank, count, count);
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

torch::Device module_device(const torch::nn::Module& module) {
  for (const auto& p : module.parameters()) return p.device();
  for (const auto& b : module.buffers()) return b.device();
  return torch::Device(torch::kCPU);
}

}  // namespace qface
