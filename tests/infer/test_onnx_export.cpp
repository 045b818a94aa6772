// ONNX export, run by OpenCV's DNN module: same embeddings as LibTorch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <onnx/onnx_pb.h>
#include <opencv2/dnn.hpp>

#include <fstream>

#include "qface/backbones/backbone.h"
#include "qface/core/npy.h"
#include "qface/infer/embed.h"
#include "qface/infer/onnx_export.h"
#include "qface/io/checkpoint.h"
#include "tests/support/testing.h"

namespace qb = qface::backbones;
namespace qf = qface::infer;
namespace qt = qface::testing;

namespace {

void randomize_bn(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& kv : m.named_buffers()) {
    if (kv.key().ends_with("running_mean")) kv.value().copy_(torch::randn_like(kv.value()) * 0.1);
    if (kv.key().ends_with("running_var")) kv.value().copy_(torch::rand_like(kv.value()) * 0.5 + 0.75);
  }
}

// Runs the ONNX file on x with OpenCV; returns the "embedding" output.
// (OpenCV 4.6 fuses ReduceL2 + Div into its own L2-normalize layer, so the
// graph's "norm" output is not reachable there; the file is checked for it.)
torch::Tensor run_opencv(const std::string& path, const torch::Tensor& x) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
  torch::Tensor xc = x.contiguous();
  std::vector<int> dims(xc.sizes().begin(), xc.sizes().end());
  cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F, xc.data_ptr<float>());
  net.setInput(blob, "input");
  cv::Mat out = net.forward("embedding");
  const int64_t rows = x.size(0);
  return torch::from_blob(out.ptr<float>(), {rows, static_cast<int64_t>(out.total()) / rows}, torch::kFloat32).clone();
}

// Graph inputs/outputs of an ONNX file.
std::vector<std::string> graph_io(const std::string& path) {
  onnx::ModelProto m;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&in)) << path;
  std::vector<std::string> names;
  for (const auto& v : m.graph().input()) names.push_back("in:" + v.name());
  for (const auto& v : m.graph().output()) names.push_back("out:" + v.name());
  return names;
}

}  // namespace

class OnnxExport : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxExport, OpenCvRunsItWithTheSameEmbeddings) {
  const std::string arch = GetParam();
  qt::TempDir tmp;
  torch::manual_seed(21);
  auto model = qb::make_backbone(arch);
  randomize_bn(*model);
  qface::io::save_checkpoint(tmp / "w.pt", *model, arch);
  model->eval();
  torch::Tensor x = torch::randn({2, 3, 112, 112});
  torch::NoGradGuard g;
  auto [e, n] = model->forward(x);

  // Through the CLI, from the saved weights.
  auto r = qt::run_qface({"export", "--arch", arch, "--weights", (tmp / "w.pt").string(), "--out",
                          (tmp / "m.onnx").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(graph_io((tmp / "m.onnx").string()),
            (std::vector<std::string>{"in:input", "out:embedding", "out:norm"}));
  torch::Tensor oe = run_opencv((tmp / "m.onnx").string(), x);
  ASSERT_EQ(oe.sizes(), e.sizes());
  EXPECT_GE((oe * e).sum(1).min().item<double>(), 0.9999) << arch;
  EXPECT_TRUE(torch::allclose(oe.norm(2, 1), torch::ones({2}), 1e-4, 1e-4)) << arch;
  // Dynamic batch: one image.
  torch::Tensor oe1 = run_opencv((tmp / "m.onnx").string(), x.slice(0, 1, 2));
  EXPECT_GE((oe1 * e.slice(0, 1, 2)).sum(1).min().item<double>(), 0.9999) << arch;
}

INSTANTIATE_TEST_SUITE_P(Archs, OnnxExport, ::testing::Values("ir_18", "iresnet18", "mobilefacenet"));

TEST(OnnxExportIrSe, SqueezeExcitationExports) {
  qt::TempDir tmp;
  torch::manual_seed(22);
  auto model = qb::make_backbone("ir_se_50");
  randomize_bn(*model);
  model->eval();
  torch::Tensor x = torch::randn({1, 3, 112, 112});
  torch::NoGradGuard g;
  auto [e, n] = model->forward(x);
  qf::export_onnx(*model, tmp / "se.onnx");
  torch::Tensor oe = run_opencv((tmp / "se.onnx").string(), x);
  EXPECT_GE((oe * e).sum(1).min().item<double>(), 0.9999);
}
