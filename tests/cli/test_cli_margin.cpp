// qface margin end to end: hand-derived numbers, outputs, and bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "tests/support/testing.h"

using qface::testing::run_qface;
using qface::testing::TempDir;
using json = nlohmann::json;

namespace {

// Three samples in 2-D with centres e1 (class 0) and e2 (class 1):
// x_i = n_i (cos phi_i, sin phi_i).
const double kPhi[] = {0.3, 1.0, 0.6};
const double kNorm[] = {10, 30, 50};
const int64_t kLabel[] = {0, 1, 0};

struct Inputs {
  std::string emb, labels, kernel;
};

Inputs write_inputs(const TempDir& dir) {
  torch::Tensor x = torch::empty({3, 2});
  for (int i = 0; i < 3; ++i) {
    x[i][0] = kNorm[i] * std::cos(kPhi[i]);
    x[i][1] = kNorm[i] * std::sin(kPhi[i]);
  }
  Inputs in{(dir / "emb.npy").string(), (dir / "labels.npy").string(), (dir / "kernel.npy").string()};
  qface::write_npy(in.emb, x);
  qface::write_npy(in.labels, torch::tensor({kLabel[0], kLabel[1], kLabel[2]}, torch::kInt64));
  qface::write_npy(in.kernel, torch::eye(2));
  return in;
}

// Angle of sample i to its target centre and cosine to the other centre.
double target_angle(int i) { return kLabel[i] == 0 ? kPhi[i] : M_PI / 2 - kPhi[i]; }
double other_cos(int i) { return kLabel[i] == 0 ? std::sin(kPhi[i]) : std::cos(kPhi[i]); }

// Mean cross-entropy of 2-class logits (target, other).
double mean_ce(const std::vector<std::pair<double, double>>& logits) {
  double sum = 0;
  for (auto [t, o] : logits) {
    double mx = std::max(t, o);
    sum += -(t - mx - std::log(std::exp(t - mx) + std::exp(o - mx)));
  }
  return sum / logits.size();
}

json run_json(const std::vector<std::string>& args) {
  auto r = run_qface(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

}  // namespace

TEST(CliMargin, ArcFaceMatchesHandDerivedLoss) {
  TempDir dir;
  Inputs in = write_inputs(dir);
  json j = run_json({"margin", "--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head",
                     "arcface"});
  std::vector<std::pair<double, double>> logits;
  for (int i = 0; i < 3; ++i) logits.push_back({64 * std::cos(target_angle(i) + 0.5), 64 * other_cos(i)});
  EXPECT_NEAR(j["loss"].get<double>(), mean_ce(logits), 1e-3);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(j["norm"][i].get<double>(), kNorm[i], 1e-4);
  EXPECT_EQ(j["head"], "arcface");
}

TEST(CliMargin, AdaFaceMarginsLossAndBuffers) {
  TempDir dir;
  Inputs in = write_inputs(dir);
  json j = run_json({"margin", "--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head",
                     "adaface", "--t-alpha", "0.5"});
  // EMA with t_alpha 0.5 from (20, 100): the batch has mean 30 and unbiased std 20.
  const double bm = 0.5 * 30 + 0.5 * 20, bs = 0.5 * 20 + 0.5 * 100;
  EXPECT_NEAR(j["batch_mean"].get<double>(), bm, 1e-4);
  EXPECT_NEAR(j["batch_std"].get<double>(), bs, 1e-4);
  std::vector<std::pair<double, double>> logits;
  for (int i = 0; i < 3; ++i) {
    const double z = std::clamp(0.333 * (kNorm[i] - bm) / (bs + 1e-3), -1.0, 1.0);
    EXPECT_NEAR(j["z"][i].get<double>(), z, 1e-6);
    EXPECT_NEAR(j["g_ang"][i].get<double>(), -0.4 * z, 1e-6);
    EXPECT_NEAR(j["g_add"][i].get<double>(), 0.4 + 0.4 * z, 1e-6);
    const double theta = std::clamp(target_angle(i) - 0.4 * z, 1e-3, M_PI - 1e-3);
    logits.push_back({64 * (std::cos(theta) - (0.4 + 0.4 * z)), 64 * other_cos(i)});
  }
  EXPECT_NEAR(j["loss"].get<double>(), mean_ce(logits), 1e-3);
}

// stats_init first_batch: the statistics are this batch's (mean 30, std 20),
// whatever t_alpha; fixed_z holds z.
TEST(CliMargin, AdaFaceFirstBatchStartAndFixedZ) {
  TempDir dir;
  Inputs in = write_inputs(dir);
  json j = run_json({"margin", "--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head",
                     "adaface", "--t-alpha", "0.5", "--stats-init", "first_batch"});
  EXPECT_NEAR(j["batch_mean"].get<double>(), 30, 1e-4);
  EXPECT_NEAR(j["batch_std"].get<double>(), 20, 1e-4);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(j["z"][i].get<double>(), 0.333 * (kNorm[i] - 30) / (20 + 1e-3), 1e-6);

  j = run_json({"margin", "--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head", "adaface",
                "--fixed-z", "1"});
  std::vector<std::pair<double, double>> logits;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(j["z"][i].get<double>(), 1.0);
    // theta - m is clamped at eps (sample 0's target angle 0.3 is below m).
    const double theta = std::clamp(target_angle(i) - 0.4, 1e-3, M_PI - 1e-3);
    logits.push_back({64 * (std::cos(theta) - 0.8), 64 * other_cos(i)});
  }
  EXPECT_NEAR(j["loss"].get<double>(), mean_ce(logits), 1e-3);
}

// CurricularFace: sample 0 (target angle 0.3, threshold cos 0.8 = 0.697, other
// cosine 0.296) has an easy negative; samples 1 (target angle pi/2 - 1,
// threshold cos(1.071) = 0.479, other cos 1 = 0.540) and 2 (0.6: threshold
// cos 1.1 = 0.454, other sin 0.6 = 0.565) hard ones, weighted by t + cos with
// t = 0.01 * mean target cosine, updated before use.
TEST(CliMargin, CurricularFaceMatchesHandDerivedLoss) {
  TempDir dir;
  Inputs in = write_inputs(dir);
  json j = run_json({"margin", "--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head",
                     "curricularface"});
  double t = 0;
  for (int i = 0; i < 3; ++i) t += 0.01 * std::cos(target_angle(i)) / 3;
  EXPECT_NEAR(j["t"].get<double>(), t, 1e-7);
  std::vector<std::pair<double, double>> logits;
  for (int i = 0; i < 3; ++i) {
    const double o = other_cos(i);
    const bool hard = o > std::cos(target_angle(i) + 0.5);
    EXPECT_EQ(hard, i != 0) << i;
    EXPECT_EQ(j["hard_negatives"][i].get<double>(), hard ? 1.0 : 0.0) << i;
    EXPECT_NEAR(j["margin"][i].get<double>(), 0.5, 1e-7);
    logits.push_back({64 * std::cos(target_angle(i) + 0.5), 64 * (hard ? o * (t + o) : o)});
  }
  EXPECT_NEAR(j["loss"].get<double>(), mean_ce(logits), 1e-3);
}

TEST(CliMargin, MagFaceLossSplitsIntoCeAndRegularizer) {
  TempDir dir;
  Inputs in = write_inputs(dir);
  json j = run_json({"margin", "--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head",
                     "magface"});
  std::vector<std::pair<double, double>> logits;
  double reg = 0;
  for (int i = 0; i < 3; ++i) {
    const double a = std::clamp(kNorm[i], 10.0, 110.0);
    const double m = 0.35 / 100 * (a - 10) + 0.45;
    EXPECT_NEAR(j["a"][i].get<double>(), a, 1e-4);
    EXPECT_NEAR(j["margin"][i].get<double>(), m, 1e-6);
    logits.push_back({64 * std::cos(target_angle(i) + m), 64 * other_cos(i)});  // every cos > 0
    reg += (a / (110.0 * 110.0) + 1 / a) / 3;
  }
  EXPECT_NEAR(j["ce"].get<double>(), mean_ce(logits), 1e-3);
  EXPECT_NEAR(j["reg"].get<double>(), 35 * reg, 1e-5);
  EXPECT_NEAR(j["loss"].get<double>(), j["ce"].get<double>() + j["reg"].get<double>(), 1e-5);
}

TEST(CliMargin, WritesGradientsPlotAndJsonFile) {
  TempDir dir;
  Inputs in = write_inputs(dir);
  auto r = run_qface({"margin", "--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head",
                      "cosface", "--m", "0.4", "--out", (dir / "r.json").string(), "--grad-out",
                      (dir / "grads").string(), "--plot", (dir / "m.svg").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(qface::read_file(dir / "r.json"));
  EXPECT_NEAR(j["margin"][0].get<double>(), 0.4, 1e-7);
  torch::Tensor de = qface::read_npy(dir / "grads" / "d_embeddings.npy");
  torch::Tensor dk = qface::read_npy(dir / "grads" / "d_kernel.npy");
  EXPECT_EQ(de.sizes(), torch::IntArrayRef({3, 2}));
  EXPECT_EQ(dk.sizes(), torch::IntArrayRef({2, 2}));
  // A loss of x / ||x|| has a gradient orthogonal to x.
  torch::Tensor x = qface::read_npy(in.emb);
  EXPECT_NEAR((de * x).sum(1).abs().max().item<double>(), 0.0, 1e-4);
  EXPECT_GT(de.abs().sum().item<double>(), 0.0);
  std::string svg = qface::read_file(dir / "m.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("polyline"), std::string::npos);
}

TEST(CliMargin, BadInputsAreRejectedWithoutOutputs) {
  TempDir dir;
  Inputs in = write_inputs(dir);
  qface::write_npy(dir / "kernel3.npy", torch::eye(3));
  qface::write_npy(dir / "labels_bad.npy", torch::tensor({0, 5, 1}, torch::kInt64));
  qface::write_npy(dir / "labels_f.npy", torch::tensor({0.0f, 1.0f, 0.0f}));
  qface::write_file_atomic(dir / "trunc.npy", qface::read_file(in.emb).substr(0, 100));
  const std::string out = (dir / "out.json").string();
  struct Case {
    std::vector<std::string> args;
    std::string mention;
  };
  std::vector<Case> cases = {
      {{"--embeddings", in.emb, "--labels", in.labels, "--kernel", (dir / "kernel3.npy").string()}, "kernel"},
      {{"--embeddings", in.emb, "--labels", (dir / "labels_bad.npy").string(), "--kernel", in.kernel}, "labels"},
      {{"--embeddings", in.emb, "--labels", (dir / "labels_f.npy").string(), "--kernel", in.kernel}, "labels_f.npy"},
      {{"--embeddings", (dir / "trunc.npy").string(), "--labels", in.labels, "--kernel", in.kernel}, "trunc.npy"},
      {{"--embeddings", in.labels, "--labels", in.labels, "--kernel", in.kernel}, "labels.npy"},
      {{"--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head", "arcface", "--h", "1"},
       "'h'"},
      {{"--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head", "arcface", "--fixed-z", "0"},
       "'fixed_z'"},
      {{"--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--fixed-z", "1.5"}, "fixed_z"},
      {{"--embeddings", in.emb, "--labels", in.labels, "--kernel", in.kernel, "--head", "curricularface",
        "--stats-init", "first_batch"},
       "'stats_init'"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"margin", "--out", out};
    args.insert(args.end(), c.args.begin(), c.args.end());
    auto r = run_qface(args);
    EXPECT_EQ(r.exit_code, 1) << c.mention << ": " << r.err;
    EXPECT_NE(r.err.find(c.mention), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out));
  }
}
