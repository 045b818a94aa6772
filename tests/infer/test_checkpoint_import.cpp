// Torch checkpoint import without Python: files written by Python torch
// (Lightning .ckpt with a Namespace, MagFace legacy .pth, DataParallel state
// dict) load and give Python's embeddings; broken files give clear errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/io/checkpoint.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
namespace qb = qface::backbones;
namespace qi = qface::io;
namespace qt = qface::testing;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const qface::Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::function<void()>& f, const std::string& needle) {
  const std::string msg = error_of(f);
  EXPECT_FALSE(msg.empty()) << "no qface::Error (expected one mentioning '" << needle << "')";
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

}  // namespace

// Files made once per suite by /usr/bin/python3 (bench/python/make_checkpoints.py).
class PythonCheckpoints : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (qt::python_with_torch().empty()) return;
    dir_ = std::make_unique<qt::TempDir>();
    auto r = qt::run_program(qt::python_with_torch(),
                             {qt::source_dir() + "/bench/python/make_checkpoints.py", dir_->path().string()});
    if (r.exit_code != 0) {
      error_ = r.err;
      dir_.reset();
    }
  }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (qt::python_with_torch().empty()) GTEST_SKIP() << "no /usr/bin/python3 with torch";
    ASSERT_TRUE(dir_) << error_;
  }
  static fs::path file(const std::string& name) { return dir_->path() / name; }

  static void expect_python_embeddings(const std::string& arch, const std::string& name) {
    auto model = qb::make_backbone(arch);
    qi::load_weights(*model, file(name + (name == "adaface_ir18" ? ".ckpt" : ".pth")));
    model->eval();
    torch::NoGradGuard g;
    auto [e, n] = model->forward(qface::read_npy(file("input.npy")));
    torch::Tensor pe = qface::read_npy(file(name + ".emb.npy")), pn = qface::read_npy(file(name + ".norm.npy"));
    EXPECT_LT((e - pe).abs().max().item<double>(), 1e-5) << name;
    EXPECT_LT(((n - pn).abs() / pn).max().item<double>(), 1e-5) << name;
  }

  static inline std::unique_ptr<qt::TempDir> dir_;
  static inline std::string error_;
};

TEST_F(PythonCheckpoints, LightningCkptWithNamespaceGivesPythonEmbeddings) {
  qi::Checkpoint c = qi::read_checkpoint(file("adaface_ir18.ckpt"));
  EXPECT_EQ(c.arch, "ir_18");  // from hyper_parameters, an argparse.Namespace
  auto model = qb::make_backbone("ir_18");
  qi::LoadReport r = qi::load_state_dict(*model, c.tensors, "adaface_ir18.ckpt", c.arch);
  EXPECT_EQ(r.prefix, "model.");
  EXPECT_EQ(r.loaded, qb::state_dict(*model).size());
  EXPECT_EQ(r.ignored.size(), 3u);  // head.kernel, head.batch_mean, head.batch_std
  expect_python_embeddings("ir_18", "adaface_ir18");
}

TEST_F(PythonCheckpoints, MagFaceLegacyPthGivesPythonEmbeddings) {
  qi::Checkpoint c = qi::read_checkpoint(file("magface_ir18.pth"));
  EXPECT_EQ(c.arch, "iresnet18");
  expect_python_embeddings("iresnet18", "magface_ir18");
}

TEST_F(PythonCheckpoints, DataParallelStateDictGivesPythonEmbeddings) {
  expect_python_embeddings("mobilefacenet", "mfn_module");
}

TEST_F(PythonCheckpoints, WrongArchitectureListsMissingUnexpectedAndShapes) {
  auto model = qb::make_backbone("ir_34");
  const std::string msg = error_of([&] { qi::load_weights(*model, file("adaface_ir18.ckpt")); });
  EXPECT_NE(msg.find("adaface_ir18.ckpt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'ir_18'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing: body."), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // iresnet weights into an IR model: nothing fits.
  auto ir = qb::make_backbone("ir_18");
  expect_error([&] { qi::load_weights(*ir, file("magface_ir18.pth")); }, "unexpected");
  // Embedding size differs: shape mismatch named with both shapes.
  auto small = qb::make_backbone("mobilefacenet", 128);
  expect_error([&] { qi::load_weights(*small, file("mfn_module.pth")); }, "linear.weight [512x512] vs model [128x512]");
}

TEST_F(PythonCheckpoints, TruncatedAndCorruptFilesGiveErrorsNotCrashes) {
  qt::TempDir tmp;
  for (const char* name : {"adaface_ir18.ckpt", "magface_ir18.pth", "mfn_module.pth"}) {
    const std::string bytes = qface::read_file(file(name));
    auto model = qb::make_backbone(std::string(name) == "mfn_module.pth" ? "mobilefacenet"
                                   : std::string(name) == "magface_ir18.pth" ? "iresnet18" : "ir_18");
    for (double frac : {0.0, 0.5, 0.999}) {
      const fs::path p = tmp / (std::string("cut_") + name);
      qface::write_file_atomic(p, bytes.substr(0, static_cast<std::size_t>(bytes.size() * frac)));
      expect_error([&] { qi::load_weights(*model, p); }, p.string());
    }
    // Bytes flipped in the middle (tensor data or structure): an error, never a crash.
    std::string bad = bytes;
    for (std::size_t i = bad.size() / 2; i < bad.size() / 2 + 64; ++i) bad[i] = static_cast<char>(~bad[i]);
    const fs::path p = tmp / (std::string("flip_") + name);
    qface::write_file_atomic(p, bad);
    // Neither torch.load nor LibTorch's zip reader verify CRCs: flipped tensor bytes may load as
    // other numbers; what must hold is an error naming the file or a clean load, never a crash.
    const std::string msg = error_of([&] { qi::load_weights(*model, p); });
    if (!msg.empty()) {
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    }
    // The first kilobyte (zip header / pickle structure) corrupted.
    std::string head = bytes;
    for (std::size_t i = 40; i < 1024; ++i) head[i] = static_cast<char>(head[i] ^ 0x5a);
    qface::write_file_atomic(p, head);
    expect_error([&] { qi::load_weights(*model, p); }, p.string());
  }
}

TEST(Checkpoint, QfaceOwnFormatRoundTrips) {
  qt::TempDir tmp;
  torch::manual_seed(5);
  auto a = qb::make_backbone("mobilefacenet");
  const fs::path p = tmp / "mfn.qface.pt";
  qi::save_checkpoint(p, *a, "mobilefacenet");
  qi::Checkpoint c = qi::read_checkpoint(p);
  EXPECT_EQ(c.format, "qface");
  EXPECT_EQ(c.arch, "mobilefacenet");
  auto b = qb::make_backbone("mobilefacenet");
  qi::LoadReport r = qi::load_weights(*b, p);
  EXPECT_EQ(r.prefix, "");
  auto sa = qb::state_dict(*a), sb = qb::state_dict(*b);
  ASSERT_EQ(sa.size(), sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
  // Truncated qface file.
  const std::string bytes = qface::read_file(p);
  qface::write_file_atomic(p, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { qi::load_weights(*b, p); }, p.string());
}

TEST(Checkpoint, NonTorchFilesAreRejectedClearly) {
  qt::TempDir tmp;
  auto m = qb::make_backbone("mobilefacenet");
  qface::write_file_atomic(tmp / "empty.pth", "");
  expect_error([&] { qi::load_weights(*m, tmp / "empty.pth"); }, "too short");
  qface::write_file_atomic(tmp / "text.pth", "hello world, not a checkpoint");
  expect_error([&] { qi::load_weights(*m, tmp / "text.pth"); }, "not a torch checkpoint");
  expect_error([&] { qi::load_weights(*m, tmp / "absent.pth"); }, "cannot open");
}
