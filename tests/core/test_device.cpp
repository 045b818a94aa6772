// core/device.h: device names, the errors a machine without CUDA gives, and
// the per-worker GPU of plain "cuda" (issue #38). The CUDA branches run where
// a GPU is visible; on CPU-only machines the errors are what is checked.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <string>

#include "qface/core/device.h"
#include "qface/core/error.h"

namespace {

std::string error_of(const std::string& name, const std::string& option = "--device") {
  try {
    (void)qface::parse_device(name, option);
  } catch (const qface::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Device, CpuParsesAndMalformedNamesSayWhatIsAccepted) {
  EXPECT_EQ(qface::parse_device("cpu"), torch::Device(torch::kCPU));
  for (const char* bad : {"", "gpu", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda:+1", "cuda:99999999", "cuda 0",
                          "mps"}) {
    const std::string e = error_of(bad, "device");
    EXPECT_NE(e.find("device: '" + std::string(bad) + "' is not a device; give cpu, cuda or cuda:N"),
              std::string::npos)
        << bad << ": " << e;
  }
}

TEST(Device, CudaWhereThereIsNoneIsAClearError) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible";
  for (const char* name : {"cuda", "cuda:0", "cuda:3"}) {
    const std::string e = error_of(name);
    ASSERT_FALSE(e.empty()) << name;
    EXPECT_NE(e.find(std::string("--device ") + name + ":"), std::string::npos) << e;
    // Which of the two is missing: CUDA in this LibTorch, or a visible GPU.
    if (qface::cuda_built())
      EXPECT_NE(e.find("no CUDA device is visible"), std::string::npos) << e;
    else
      EXPECT_NE(e.find("built against a LibTorch without CUDA"), std::string::npos) << e;
  }
}

TEST(Device, IndexPastTheVisibleDevicesIsAnError) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto count = torch::cuda::device_count();
  EXPECT_EQ(qface::parse_device("cuda:0"), torch::Device(torch::kCUDA, 0));
  const std::string e = error_of("cuda:" + std::to_string(count));
  EXPECT_NE(e.find("there are only " + std::to_string(count) + " CUDA device(s)"), std::string::npos) << e;
}

TEST(Device, PlainCudaBecomesTheWorkersOwnGpu) {
  EXPECT_EQ(qface::device_for_rank(torch::Device(torch::kCPU), 3), torch::Device(torch::kCPU));
  // An explicit index is the user's choice, kept for every worker.
  EXPECT_EQ(qface::device_for_rank(torch::Device(torch::kCUDA, 1), 3), torch::Device(torch::kCUDA, 1));
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (count > 0) EXPECT_EQ(qface::device_for_rank(torch::Device(torch::kCUDA), count - 1),
                           torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(count - 1)));
  try {
    (void)qface::device_for_rank(torch::Device(torch::kCUDA), count);
    ADD_FAILURE() << "worker " << count << " got a GPU of " << count;
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no GPU of its own"), std::string::npos) << e.what();
  }
}

TEST(Device, ModuleDeviceIsWhereItsTensorsAre) {
  torch::nn::Linear linear(3, 2);
  EXPECT_EQ(qface::module_device(*linear), torch::Device(torch::kCPU));
  torch::nn::Sequential empty;
  EXPECT_EQ(qface::module_device(*empty), torch::Device(torch::kCPU));
  if (!torch::cuda::is_available()) return;
  linear->to(torch::Device(torch::kCUDA, 0));
  EXPECT_EQ(qface::module_device(*linear), torch::Device(torch::kCUDA, 0));
}
