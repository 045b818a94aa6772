// Inference: preprocessing, BN folding + channels_last vs the plain model,
// flip fusion (docs/method.md), bf16 check, and `qface embed` end to end.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>

#include <fmt/format.h>

#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/eval/features.h"
#include "qface/infer/embed.h"
#include "qface/infer/precision.h"
#include "qface/io/checkpoint.h"
#include "tests/support/models.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
namespace qb = qface::backbones;
namespace qf = qface::infer;
namespace qt = qface::testing;

namespace {

cv::Mat random_face(int seed, int size = 112) {
  cv::Mat m(size, size, CV_8UC3);
  cv::RNG rng(static_cast<uint64_t>(seed));
  rng.fill(m, cv::RNG::UNIFORM, 0, 256);
  return m;
}

}  // namespace

TEST(Infer, PreprocessingFollowsTheModelFamily) {
  cv::Mat img(112, 112, CV_8UC3, cv::Scalar(0, 51, 255));  // B=0, G=51, R=255
  // AdaFace: BGR, (x/255 - 0.5)/0.5.
  torch::Tensor a = qf::preprocess({img}, {true, 0.5f, 0.5f});
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{1, 3, 112, 112}));
  EXPECT_FLOAT_EQ(a[0][0][5][7].item<float>(), -1.0f);
  EXPECT_NEAR(a[0][1][5][7].item<float>(), 51.0 / 255 * 2 - 1, 1e-6);
  EXPECT_FLOAT_EQ(a[0][2][5][7].item<float>(), 1.0f);
  // MagFace: BGR, x/255.
  torch::Tensor m = qf::preprocess({img}, {true, 0.0f, 1.0f});
  EXPECT_NEAR(m[0][1][0][0].item<float>(), 0.2f, 1e-6);
  // RGB family: channels swapped.
  torch::Tensor r = qf::preprocess({img}, {false, 0.5f, 0.5f});
  EXPECT_FLOAT_EQ(r[0][0][0][0].item<float>(), 1.0f);
}

TEST(Infer, FoldedChannelsLastMatchesThePlainModel) {
  torch::manual_seed(11);
  for (const char* arch : {"ir_18", "iresnet18", "mobilefacenet"}) {
    auto plain = qb::make_backbone(arch);
    qt::randomize_bn_stats(*plain);
    plain->eval();
    torch::Tensor x = torch::randn({2, 3, 112, 112});
    torch::NoGradGuard g;
    auto [e0, n0] = plain->forward(x);
    auto fast = qb::make_backbone(arch);
    qface::io::load_state_dict(*fast, qb::state_dict(*plain), "memory");
    qf::prepare_for_inference(*fast, qf::InferenceOptions());
    EXPECT_TRUE(fast->folded());
    qf::Embeddings e1 = qf::embed(*fast, x, qf::InferenceOptions());
    EXPECT_GT((e0 * e1.embeddings).sum(1).min().item<double>(), 0.99999) << arch;
    EXPECT_LT(((n0.squeeze(1) - e1.norms).abs() / e1.norms).max().item<double>(), 1e-4) << arch;
  }
}

// load_for_inference reads the file on a second thread while the network is
// built: the result must be the by-hand load bit for bit, every time.
TEST(Infer, LoadingForInferenceIsBitwiseStable) {
  qt::TempDir tmp;
  torch::manual_seed(12);
  auto saved = qb::make_backbone("ir_18");
  qt::randomize_bn_stats(*saved);
  qface::io::save_checkpoint(tmp / "ir18.pt", *saved, "ir_18");
  auto by_hand = qb::make_backbone("ir_18");
  qface::io::load_weights(*by_hand, tmp / "ir18.pt");
  qf::prepare_for_inference(*by_hand, qf::InferenceOptions().threads(1));
  torch::Tensor x = torch::randn({3, 3, 112, 112});
  const qf::Embeddings want = qf::embed(*by_hand, x, qf::InferenceOptions());
  for (int i = 0; i < 2; ++i) {
    qf::LoadedModel m = qf::load_for_inference({"ir_18", tmp / "ir18.pt", false, qf::Precision::kFp32, 1, "test"});
    EXPECT_TRUE(m.model->folded());
    const qf::Embeddings got = qf::embed(*m.model, x, m.options);
    EXPECT_TRUE(torch::equal(got.embeddings, want.embeddings)) << i;
    EXPECT_TRUE(torch::equal(got.norms, want.norms)) << i;
    // The folded weights are kept with the model: a second pass over the same
    // batch (cached oneDNN primitives, no refolding) gives the same bits.
    EXPECT_TRUE(torch::equal(qf::embed(*m.model, x, m.options).embeddings, got.embeddings)) << i;
  }
  // A file that is not a checkpoint fails on the reading thread; the error arrives here.
  qface::write_file_atomic(tmp / "bad.pt", "not a checkpoint");
  EXPECT_THROW(qf::load_for_inference({"ir_18", tmp / "bad.pt", false, qf::Precision::kFp32, 1, "test"}),
               qface::Error);
}

TEST(Infer, WinogradEmbeddingsMatchDirectConvolutions) {
  // fp32 inference runs the 3x3 stride-1 convolutions through Winograd by
  // default; the embeddings and norms (the quality score) stay those of the
  // direct convolutions to within float rounding.
  torch::manual_seed(13);
  auto m = qb::make_backbone("ir_18");
  qt::randomize_bn_stats(*m);
  const qf::InferenceOptions winograd = qf::InferenceOptions().threads(1);
  ASSERT_TRUE(winograd.winograd());
  qf::prepare_for_inference(*m, winograd);
  const torch::Tensor x = torch::randn({3, 3, 112, 112});
  const qf::Embeddings w = qf::embed(*m, x, winograd);
  const qf::Embeddings d = qf::embed(*m, x, qf::InferenceOptions(winograd).winograd(false));
  EXPECT_GT((w.embeddings * d.embeddings).sum(1).min().item<float>(), 0.99999f);
  EXPECT_LT(((w.norms - d.norms).abs() / d.norms).max().item<float>(), 1e-4f);
#ifdef __AVX512F__
  EXPECT_FALSE(torch::equal(w.embeddings, d.embeddings)) << "Winograd should have served on AVX-512";
#endif
}

TEST(Infer, FlipFusionWeightsByNorm) {
  // Hand-made: e = (1,0), n = 3; e_f = (0,1), n_f = 4 -> f = (3,4), norm 5.
  qf::Embeddings a{torch::tensor({{1.0f, 0.0f}}), torch::tensor({3.0f})};
  qf::Embeddings b{torch::tensor({{0.0f, 1.0f}}), torch::tensor({4.0f})};
  qf::Embeddings f = qf::fuse_flip(a, b);
  EXPECT_NEAR(f.embeddings[0][0].item<float>(), 0.6f, 1e-6);
  EXPECT_NEAR(f.embeddings[0][1].item<float>(), 0.8f, 1e-6);
  EXPECT_NEAR(f.norms[0].item<float>(), 5.0f, 1e-6);
  // Through a model: equals fusing two separate passes.
  torch::manual_seed(12);
  auto m = qb::make_backbone("mobilefacenet");
  qf::prepare_for_inference(*m, qf::InferenceOptions());
  torch::Tensor x = torch::randn({2, 3, 112, 112});
  qf::Embeddings fused = qf::embed_flip_fused(*m, x, {});
  qf::Embeddings manual = qf::fuse_flip(qf::embed(*m, x, {}), qf::embed(*m, x.flip({3}), {}));
  EXPECT_TRUE(torch::allclose(fused.embeddings, manual.embeddings, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(fused.norms, manual.norms, 1e-4, 1e-4));
}

TEST(Infer, Bf16StaysCloseToFp32) {
  torch::manual_seed(13);
  auto m = qb::make_backbone("ir_18");
  qt::randomize_bn_stats(*m);
  qf::prepare_for_inference(*m, qf::InferenceOptions());
  torch::Tensor x = qf::preprocess({random_face(1), random_face(2)}, m->preprocessing());
  qf::InferenceOptions bf16;
  bf16.bf16(true);
  const qf::GuardResult g = qf::accuracy_guard(qf::embed(*m, x, {}), qf::embed(*m, x, bf16));
  EXPECT_GT(g.min_cosine, 0.99);  // the precision guard's bound
  EXPECT_LE(g.min_cosine, 1.0 + 1e-6);
  EXPECT_LT(g.max_norm_error, 0.02);
}

TEST(Infer, EmbedCommandWritesAlignedOutputs) {
  qt::TempDir tmp;
  const fs::path imgs = tmp / "imgs";
  fs::create_directories(imgs);
  for (int i = 0; i < 3; ++i) cv::imwrite((imgs / ("face" + std::to_string(i) + ".png")).string(), random_face(i));
  qface::write_file_atomic(imgs / "broken.jpg", "not a jpeg");
  torch::manual_seed(14);
  auto model = qb::make_backbone("mobilefacenet");
  qt::randomize_bn_stats(*model);
  qface::io::save_checkpoint(tmp / "mfn.pt", *model, "mobilefacenet");

  auto r = qt::run_qface({"embed", "--arch", "mobilefacenet", "--weights", (tmp / "mfn.pt").string(), "--images",
                          imgs.string(), "--out", (tmp / "out").string(), "--batch", "2", "--threads", "1",
                          "--no-flip-fuse"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(qface::eval::load_features(tmp / "out").mode, "plain");
  torch::Tensor e = qface::read_npy(tmp / "out" / "embeddings.npy"), n = qface::read_npy(tmp / "out" / "norms.npy");
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{3, 512}));
  EXPECT_EQ(e.scalar_type(), torch::kFloat32);
  EXPECT_EQ(n.sizes(), (std::vector<int64_t>{3}));
  EXPECT_TRUE(torch::allclose(e.norm(2, 1), torch::ones({3}), 1e-5, 1e-5));
  EXPECT_EQ(qface::read_file(tmp / "out" / "files.txt"),
            (imgs / "face0.png").string() + "\n" + (imgs / "face1.png").string() + "\n" +
                (imgs / "face2.png").string() + "\n");
  EXPECT_EQ(qface::read_file(tmp / "out" / "skipped.txt"), (imgs / "broken.jpg").string() + "\n");

  // Same numbers as the library on the plain (unfolded, NCHW) model.
  model->eval();
  torch::NoGradGuard g;
  auto [pe, pn] = model->forward(qf::preprocess({random_face(0), random_face(1), random_face(2)}, model->preprocessing()));
  EXPECT_GT((pe * e).sum(1).min().item<double>(), 0.99999);
  EXPECT_LT(((pn.squeeze(1) - n).abs() / n).max().item<double>(), 1e-4);

  // Flip fusion (the default, as --flip-fuse) gives different, still normalized embeddings.
  r = qt::run_qface({"embed", "--arch", "mobilefacenet", "--weights", (tmp / "mfn.pt").string(), "--images",
                     imgs.string(), "--out", (tmp / "flip").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(qface::eval::load_features(tmp / "flip").mode, "flip_fused");
  r = qt::run_qface({"embed", "--arch", "mobilefacenet", "--weights", (tmp / "mfn.pt").string(), "--images",
                     imgs.string(), "--out", (tmp / "flip2").string(), "--flip-fuse"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(torch::equal(qface::read_npy(tmp / "flip2" / "embeddings.npy"), qface::read_npy(tmp / "flip" / "embeddings.npy")));
  torch::Tensor ef = qface::read_npy(tmp / "flip" / "embeddings.npy"), nf = qface::read_npy(tmp / "flip" / "norms.npy");
  EXPECT_TRUE(torch::allclose(ef.norm(2, 1), torch::ones({3}), 1e-5, 1e-5));
  torch::Tensor x = qf::preprocess({random_face(0), random_face(1), random_face(2)}, model->preprocessing());
  auto [fe, fn] = model->forward(x.flip({3}));
  qf::Embeddings expect = qf::fuse_flip({pe, pn.squeeze(1)}, {fe, fn.squeeze(1)});
  EXPECT_GT((expect.embeddings * ef).sum(1).min().item<double>(), 0.99999);
  EXPECT_LT(((expect.norms - nf).abs() / nf).max().item<double>(), 1e-4);

  // --strict: the unreadable file is fatal and named.
  r = qt::run_qface({"embed", "--arch", "mobilefacenet", "--weights", (tmp / "mfn.pt").string(), "--images",
                     imgs.string(), "--out", (tmp / "strict").string(), "--strict"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("broken.jpg"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "strict" / "embeddings.npy"));
}

TEST(Infer, EmbedRejectsOtherSizesUnlessResize) {
  qt::TempDir tmp;
  const fs::path imgs = tmp / "imgs";
  fs::create_directories(imgs);
  cv::imwrite((imgs / "big.png").string(), random_face(5, 150));
  torch::manual_seed(15);
  auto model = qb::make_backbone("mobilefacenet");
  qface::io::save_checkpoint(tmp / "mfn.pt", *model, "mobilefacenet");
  // A list file as input.
  qface::write_file_atomic(tmp / "list.txt", (imgs / "big.png").string() + "\n");
  auto r = qt::run_qface({"embed", "--arch", "mobilefacenet", "--weights", (tmp / "mfn.pt").string(), "--images",
                          (tmp / "list.txt").string(), "--out", (tmp / "out").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("150x150"), std::string::npos) << r.err;
  // A photo is to be aligned, not squashed (issue #39 item 7): the error says so first.
  EXPECT_NE(r.err.find("align photos first (`qface align"), std::string::npos) << r.err;
  r = qt::run_qface({"embed", "--arch", "mobilefacenet", "--weights", (tmp / "mfn.pt").string(), "--images",
                     (tmp / "list.txt").string(), "--out", (tmp / "out").string(), "--resize"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(qface::read_npy(tmp / "out" / "embeddings.npy").size(0), 1);
  // Weights of another architecture: one clear line.
  r = qt::run_qface({"embed", "--arch", "ir_18", "--weights", (tmp / "mfn.pt").string(), "--images",
                     (tmp / "list.txt").string(), "--out", (tmp / "out2").string(), "--resize"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'mobilefacenet'"), std::string::npos) << r.err;
}

// One photo where a folder or list is expected (issue #39, item 1): every
// command's input goes through list_images, which takes an image file as
// itself, by its content (a JPEG named .dat too); a binary file that is no
// image is refused naming the line, instead of being read as paths.
TEST(Infer, OneImageFileIsItselfAndABinaryFileIsNoList) {
  qt::TempDir tmp;
  cv::imwrite((tmp / "one.png").string(), random_face(1));
  std::vector<uchar> jpg;
  cv::imencode(".jpg", random_face(2), jpg);
  qface::write_file_atomic(tmp / "photo.dat", std::string(jpg.begin(), jpg.end()));
  EXPECT_EQ(qf::list_images(tmp / "one.png"), (std::vector<std::string>{(tmp / "one.png").string()}));
  EXPECT_EQ(qf::list_images(tmp / "photo.dat"), (std::vector<std::string>{(tmp / "photo.dat").string()}));
  // A list whose first path begins like a BMP's magic is still a list.
  qface::write_file_atomic(tmp / "list.txt", "BMW/a.png\r\n\nb.png\n");
  EXPECT_EQ(qf::list_images(tmp / "list.txt"), (std::vector<std::string>{"BMW/a.png", "b.png"}));
  qface::write_file_atomic(tmp / "model.bin", std::string("abc\ndef\0\x01\xff", 10));
  try {
    qf::list_images(tmp / "model.bin");
    ADD_FAILURE() << "a binary file was read as a list";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.bin: line 2 is not a path"), std::string::npos) << e.what();
  }
  // The command: one photo in, one embedding out.
  torch::manual_seed(16);
  auto model = qb::make_backbone("mobilefacenet");
  qface::io::save_checkpoint(tmp / "mfn.pt", *model, "mobilefacenet");
  auto r = qt::run_qface({"embed", "--arch", "mobilefacenet", "--weights", (tmp / "mfn.pt").string(), "--images",
                          (tmp / "one.png").string(), "--out", (tmp / "out").string(), "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(qface::read_npy(tmp / "out" / "embeddings.npy").size(0), 1);
}

TEST(Infer, BenchInferReportsSpeedAndFlops) {
  qt::TempDir tmp;
  auto r = qt::run_qface({"bench", "infer", "--arch", "mobilefacenet", "--batch", "2", "--iters", "1", "--warmup", "0",
                          "--threads", "1", "--no-python", "--no-plain", "--json", (tmp / "b.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("img/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GFLOP/s"), std::string::npos) << r.out;
  const std::string json = qface::read_file(tmp / "b.json");
  EXPECT_NE(json.find("\"qface fast fp32 (BN folded, NHWC)\""), std::string::npos) << json;
  // GFLOP per image = 2 x MACs, as the backbone counts them.
  EXPECT_NE(json.find(fmt::format("{}", 2 * qb::macs_per_image("mobilefacenet") / 1e9).substr(0, 5)), std::string::npos)
      << json;
}
