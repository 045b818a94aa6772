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
#include "tests/support/models.h"
#include "tests/support/testing.h"

namespace qb = qface::backbones;
namespace qf = qface::infer;
namespace qt = qface::testing;

namespace {

// Runs the ONNX file on x with OpenCV DNN, asking for both outputs by name
// as a user would; returns "embedding" (and "norm" in `norm`).
torch::Tensor run_opencv(const std::string& path, const torch::Tensor& x, torch::Tensor* norm = nullptr) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
  torch::Tensor xc = x.contiguous();
  std::vector<int> dims(xc.sizes().begin(), xc.sizes().end());
  cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F, xc.data_ptr<float>());
  net.setInput(blob, "input");
  std::vector<cv::Mat> out;
  net.forward(out, std::vector<cv::String>{"embedding", "norm"});
  const int64_t rows = x.size(0);
  EXPECT_EQ(out.at(1).total(), static_cast<std::size_t>(rows));
  if (norm) *norm = torch::from_blob(out[1].ptr<float>(), {rows}, torch::kFloat32).clone();
  return torch::from_blob(out[0].ptr<float>(), {rows, static_cast<int64_t>(out[0].total()) / rows}, torch::kFloat32)
      .clone();
}

// A backbone with random weights and BN statistics, in eval mode, exported
// to `onnx`, with its LibTorch outputs on a random batch `x`.
struct Exported {
  torch::Tensor x, e, n;
};
Exported export_random(const std::string& arch, uint64_t seed, int64_t batch, const std::filesystem::path& onnx) {
  torch::manual_seed(seed);
  auto model = qb::make_backbone(arch);
  qt::randomize_bn_stats(*model);
  model->eval();
  Exported out{.x = torch::randn({batch, 3, 112, 112})};
  torch::NoGradGuard g;
  std::tie(out.e, out.n) = model->forward(out.x);
  qf::export_onnx(*model, onnx);
  return out;
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
  qt::randomize_bn_stats(*model);
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
  torch::Tensor on;
  torch::Tensor oe = run_opencv((tmp / "m.onnx").string(), x, &on);
  ASSERT_EQ(oe.sizes(), e.sizes());
  EXPECT_GE((oe * e).sum(1).min().item<double>(), 0.9999) << arch;
  EXPECT_TRUE(torch::allclose(on, n.reshape({-1}), 1e-4, 1e-3)) << arch << ": " << on << " vs " << n;
  EXPECT_TRUE(torch::allclose(oe.norm(2, 1), torch::ones({2}), 1e-4, 1e-4)) << arch;
  // Dynamic batch: one image.
  torch::Tensor oe1 = run_opencv((tmp / "m.onnx").string(), x.slice(0, 1, 2));
  EXPECT_GE((oe1 * e.slice(0, 1, 2)).sum(1).min().item<double>(), 0.9999) << arch;
}

INSTANTIATE_TEST_SUITE_P(Archs, OnnxExport, ::testing::Values("ir_18", "iresnet18", "mobilefacenet"));

// The same file from Python's cv2.dnn (Debian's python3-opencv): both outputs by name.
TEST(OnnxExportPython, Cv2DnnReadsEmbeddingAndNorm) {
  const std::string& py = qt::python_with_torch();
  if (py.empty()) GTEST_SKIP() << "no /usr/bin/python3 with torch";
  qt::TempDir tmp;
  const Exported m = export_random("mobilefacenet", 23, 3, tmp / "m.onnx");
  qface::write_npy(tmp / "x.npy", m.x);
  qface::write_npy(tmp / "n.npy", m.n.reshape({-1}));
  qt::write_text(tmp / "t.py", R"(
import sys, numpy as np
try:
    import cv2
except ImportError:
    print('SKIP no cv2 (python3-opencv)'); sys.exit(0)
net = cv2.dnn.readNetFromONNX(sys.argv[1] + '/m.onnx')
net.setInput(np.load(sys.argv[1] + '/x.npy'), 'input')
emb, norm = net.forward(['embedding', 'norm'])
want = np.load(sys.argv[1] + '/n.npy')
assert emb.shape == (3, 512) and norm.shape == (3, 1), (emb.shape, norm.shape)
assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
assert np.allclose(norm[:, 0], want, rtol=1e-3, atol=1e-4), (norm[:, 0], want)
print('ok', cv2.__version__)
)");
  const auto r = qt::run_program(py, {(tmp / "t.py").string(), tmp.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  if (r.out.rfind("SKIP", 0) == 0) GTEST_SKIP() << r.out;
  EXPECT_EQ(r.out.rfind("ok 4.", 0), 0u) << r.out;
}

TEST(OnnxExportIrSe, SqueezeExcitationExports) {
  qt::TempDir tmp;
  const Exported m = export_random("ir_se_50", 22, 1, tmp / "se.onnx");
  torch::Tensor on;
  torch::Tensor oe = run_opencv((tmp / "se.onnx").string(), m.x, &on);
  EXPECT_GE((oe * m.e).sum(1).min().item<double>(), 0.9999);
  EXPECT_TRUE(torch::allclose(on, m.n.reshape({-1}), 1e-4, 1e-3)) << on << " vs " << m.n;
}
