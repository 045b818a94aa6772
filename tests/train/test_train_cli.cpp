// qface train end to end on `qface synth --preset tiny` data: outputs,
// crash-safe resume (SIGKILL mid-epoch, then --resume gives bitwise the same
// weights as an uninterrupted run on one thread), and bad configs.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "qface/backbones/backbone.h"
#include "qface/core/device.h"
#include "qface/core/fs.h"
#include "qface/train/distributed.h"
#include "tests/support/testing.h"
#include "tests/train/train_cli_helpers.h"

using qface::testing::run_qface;
using qface::testing::TempDir;
using namespace qface::testing::train;
namespace fs = std::filesystem;

namespace {

// The data-parallel options under which ranks must equal one process: BatchNorm
// frozen (model.freeze_bn), so that each sample's forward pass does not depend
// on which rank's batch it is in, and no augmentation.
std::vector<std::string> parallel_args(const fs::path& out, int64_t steps) {
  std::vector<std::string> a = train_args(out, steps);
  for (const char* kv : {"model.freeze_bn=true", "data.crop_p=0.0", "data.low_res_p=0.0", "data.photometric_p=0.0",
                         "data.flip_p=0.0", "optimizer.lr=0.5"}) {
    a.push_back("--set");
    a.push_back(kv);
  }
  return a;
}

// The backbones of the two runs' step-`steps` checkpoints are equal up to float
// reduction order: per tensor, the difference is tiny next to what the steps
// after the first changed (measured ~1e-5 of it).
void expect_same_training(const fs::path& one, const fs::path& two, int64_t steps) {
  const std::string last = fmt::format("ckpt-{:09d}.pt", steps);
  auto a = backbone_weights(one / "checkpoints" / last);
  auto b = backbone_weights(two / "checkpoints" / last);
  auto a1 = backbone_weights(one / "checkpoints" / "ckpt-000000001.pt");
  ASSERT_EQ(a.size(), b.size());
  int moved = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!a[i].is_floating_point()) {
      EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
      continue;
    }
    const double update = (a[i] - a1[i]).norm().item<double>();
    const double diff = (a[i] - b[i]).norm().item<double>();
    EXPECT_LE(diff, 1e-3 * update + 1e-6) << "tensor " << i << ": |one - two| " << diff << ", update " << update;
    moved += update > 0;
  }
  EXPECT_GT(moved, static_cast<int>(a.size()) / 2) << "the runs did not train";
}

}  // namespace

// Data parallel: 2 processes on 127.0.0.1 (Gloo over TCPStore), each with half
// of the global batch, reach the weights of 1 process with the whole batch.
// BatchNorm is frozen (model.freeze_bn) so that each sample's forward pass does
// not depend on which rank's batch it is in; the AdaFace norm statistics are
// computed over the global batch.
TEST(TrainCli, TwoProcessesMatchOneProcessWithTheSameGlobalBatch) {
  TempDir dir;
  const int64_t steps = 3;
  auto common = [&](const fs::path& out) { return parallel_args(out, steps); };
  auto one = run_qface(common(dir / "one"));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  std::vector<std::string> launch = {"launch", "--nproc", "2", "--master-port", std::to_string(free_port()), "--"};
  for (auto& a : common(dir / "two")) launch.push_back(a);
  auto two = run_qface(launch);
  ASSERT_EQ(two.exit_code, 0) << two.err;
  auto summary = nlohmann::json::parse(qface::read_file(dir / "two" / "train_summary.json"));
  EXPECT_EQ(summary["world_size"].get<int>(), 2);

  expect_same_training(dir / "one", dir / "two", steps);
}

// Two "nodes" on one machine (issue #38): two `qface launch` process groups
// with distinct node ranks meet at one master, train like one process with
// the whole batch, and after stopping resume to the same weights as the
// uninterrupted one-process run.
TEST(TrainCli, TwoNodesOnOneMachineTrainAndResumeLikeOneProcess) {
  TempDir dir;
  auto one = run_qface(parallel_args(dir / "one", 3));
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto nodes_of = [&](int64_t steps, bool resume) {
    const std::string port = std::to_string(free_port());
    return [&dir, port, steps, resume](int node) {
      std::vector<std::string> a = {"launch",        "--nnodes", "2",  "--node-rank", std::to_string(node),
                                    "--nproc",       "1",        "--master-port", port, "--device", "cpu",
                                    "--"};
      for (auto& x : parallel_args(dir / "two", steps)) a.push_back(x);
      if (resume) a.push_back("--resume");
      return a;
    };
  };
  {
    Ranks nodes(2, nodes_of(2, false), dir / "first");
    for (int r = 0; r < 2; ++r) ASSERT_EQ(nodes.wait(r, std::chrono::seconds(300)), 0) << nodes.log(r);
    EXPECT_NE(nodes.log(1).find("node 1 of 2"), std::string::npos) << nodes.log(1);
    EXPECT_NE(nodes.log(1).find("backend gloo"), std::string::npos) << nodes.log(1);
  }
  auto summary = nlohmann::json::parse(qface::read_file(dir / "two" / "train_summary.json"));
  EXPECT_EQ(summary["world_size"].get<int>(), 2);
  EXPECT_EQ(summary["steps"].get<int>(), 2);
  {
    Ranks nodes(2, nodes_of(3, true), dir / "second");
    for (int r = 0; r < 2; ++r) ASSERT_EQ(nodes.wait(r, std::chrono::seconds(300)), 0) << nodes.log(r);
    for (int r = 0; r < 2; ++r)
      EXPECT_NE(nodes.log(r).find("rank " + std::to_string(r) + " resumed from"), std::string::npos) << nodes.log(r);
  }
  expect_same_training(dir / "one", dir / "two", 3);
}

// --device cuda where there is no CUDA: a clear error naming the option and
// what is missing, from every door, before any worker starts or any output is
// written (issue #38).
TEST(TrainCli, CudaWithoutCudaIsAClearErrorAtEveryDoor) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible";
  TempDir dir;
  const std::string why = qface::cuda_built() ? "no CUDA device is visible" : "built against a LibTorch without CUDA";
  auto expect_refused = [&](std::vector<std::string> args, const std::string& names) {
    auto r = run_qface(args);
    EXPECT_NE(r.exit_code, 0) << names;
    EXPECT_NE(r.err.find(names), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(why), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("rendezvous"), std::string::npos) << r.err;
  };
  auto train = train_args(dir / "flag", 1);
  train.insert(train.end(), {"--device", "cuda"});
  expect_refused(train, "device cuda:");
  train = train_args(dir / "key", 1);
  add_sets(train, {"device=\"cuda:1\""});
  expect_refused(train, "device cuda:1:");
  std::vector<std::string> launch = {"launch", "--nproc", "2", "--device", "cuda", "--"};
  for (auto& a : train_args(dir / "launch", 1)) launch.push_back(a);
  expect_refused(launch, "--device cuda:");
  expect_refused({"bench", "train", "--arch", "mobilefacenet", "--batch", "2", "--classes", "10", "--iters", "1",
                  "--warmup", "0", "--no-python", "--device", "cuda:0"},
                 "--device cuda:0:");
  expect_refused({"bench", "infer", "--arch", "mobilefacenet", "--batch", "2", "--iters", "1", "--warmup", "0",
                  "--no-python", "--device", "cuda"},
                 "--device cuda:");
  qface::write_file_atomic(dir / "weights.pt", "not read");
  expect_refused({"embed", "--weights", (dir / "weights.pt").string(), "--images", dir.path().string(), "--out",
                  (dir / "emb").string(), "--device", "cuda"},
                 "--device cuda:");
  for (const char* out : {"flag", "key", "launch", "emb"}) EXPECT_FALSE(fs::exists(dir / out)) << out;
  if (!qface::train::nccl_built()) {
    launch = {"launch", "--nproc", "2", "--backend", "nccl", "--"};
    for (auto& a : train_args(dir / "nccl", 1)) launch.push_back(a);
    auto r = run_qface(launch);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("this LibTorch has no NCCL backend"), std::string::npos) << r.err;
  }
}

TEST(TrainCli, ValidatesOnBinSetsPerQualityStratum) {
  TempDir dir;
  std::vector<std::string> args = train_args(dir / "run", 2);
  const std::string sets = "validation.sets=[\"" + (tiny_data() / "val_high.bin").string() + "\", \"" +
                           (tiny_data() / "val_low.bin").string() + "\"]";
  for (const std::string& kv : {sets, std::string("validation.every=2")}) {
    args.push_back("--set");
    args.push_back(kv);
  }
  auto r = run_qface(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  std::string line;
  int val_lines = 0;
  while (std::getline(metrics, line)) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("val")) continue;
    ++val_lines;
    EXPECT_EQ(j["step"].get<int>(), 2);
    for (const char* set : {"val_high", "val_low"}) {
      ASSERT_TRUE(j["val"].contains(set)) << line;
      const auto& v = j["val"][set];
      EXPECT_GE(v["acc"].get<double>(), 0.0);
      EXPECT_LE(v["acc"].get<double>(), 1.0);
      EXPECT_GT(v["norm_mean"].get<double>(), 0.0);
      EXPECT_GT(v["pairs"].get<int>(), 0);
    }
  }
  EXPECT_EQ(val_lines, 1);
  auto summary = nlohmann::json::parse(qface::read_file(dir / "run" / "train_summary.json"));
  EXPECT_TRUE(summary["validation"].contains("val_low"));
}

TEST(TrainCli, WritesMetricsCheckpointsAndSummary) {
  TempDir dir;
  auto r = run_qface(train_args(dir / "run", 3));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"].get<int>(), ++lines);
    for (const char* key : {"loss", "acc", "lr", "norm_mean", "norm_std", "batch_mean", "batch_std", "img_s"})
      EXPECT_TRUE(j.contains(key)) << key;
    EXPECT_TRUE(std::isfinite(j["loss"].get<double>()));
  }
  EXPECT_EQ(lines, 3);
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "ckpt-000000003.pt"));
  EXPECT_TRUE(fs::exists(dir / "run" / "config.toml"));
  auto summary = nlohmann::json::parse(qface::read_file(dir / "run" / "train_summary.json"));
  EXPECT_EQ(summary["steps"].get<int>(), 3);
}

// bf16 autocast of the backbone: same initial weights and batches, so the first
// step's loss differs from fp32 only by bf16 rounding in the forward pass; the
// run keeps training (finite losses, weights move) with the head in fp32.
TEST(TrainCli, Bf16AutocastTracksTheFp32Loss) {
  TempDir dir;
  auto losses = [&](const std::string& name, bool bf16) {
    auto args = train_args(dir / name, 3);
    args.insert(args.end(), {"--set", std::string("bf16=") + (bf16 ? "true" : "false")});
    auto r = run_qface(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<double> out;
    std::ifstream metrics(dir / name / "metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
    return out;
  };
  const auto fp32 = losses("fp32", false), bf16 = losses("bf16", true);
  ASSERT_EQ(fp32.size(), 3u);
  ASSERT_EQ(bf16.size(), 3u);
  EXPECT_NEAR(bf16[0], fp32[0], 0.02 * fp32[0]);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_TRUE(std::isfinite(bf16[i])) << i;
  EXPECT_NE(bf16[0], fp32[0]);  // the autocast really ran
  const auto w0 = backbone_weights(dir / "bf16" / "checkpoints" / "ckpt-000000001.pt");
  const auto w3 = backbone_weights(dir / "bf16" / "checkpoints" / "ckpt-000000003.pt");
  double moved = 0;
  for (std::size_t i = 0; i < w0.size(); ++i) moved += (w3[i] - w0[i]).abs().sum().item<double>();
  EXPECT_GT(moved, 0);
  for (const auto& t : w3) {
    if (t.is_floating_point()) {
      EXPECT_EQ(t.scalar_type(), torch::kFloat32);  // master weights stay fp32
    }
  }
}

TEST(TrainCli, ResumeAfterSigkillMatchesUninterruptedRunBitwise) {
  TempDir dir;
  const int64_t steps = 6;  // the tiny set has 4 batches of 8 per epoch: the kill lands mid-epoch 0
  auto ref = run_qface(train_args(dir / "ref", steps));
  ASSERT_EQ(ref.exit_code, 0) << ref.err;

  // Start the same run, SIGKILL it once its third checkpoint exists.
  const fs::path out = dir / "killed";
  std::vector<std::string> args = train_args(out, steps);
  std::vector<char*> argv = {const_cast<char*>(QFACE_BIN)};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, QFACE_BIN, &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  const fs::path third = out / "checkpoints" / "ckpt-000000003.pt";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!fs::exists(third) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(fs::exists(third));
  ASSERT_FALSE(fs::exists(out / "checkpoints" / "ckpt-000000006.pt")) << "the run finished before the kill";

  std::vector<std::string> resume = train_args(out, steps);
  resume.push_back("--resume");
  auto r = run_qface(resume);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto a = backbone_weights(dir / "ref" / "checkpoints" / "ckpt-000000006.pt");
  auto b = backbone_weights(out / "checkpoints" / "ckpt-000000006.pt");
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
}

TEST(TrainCli, BadConfigsAndCheckpointsAreClearErrors) {
  TempDir dir;
  qface::write_file_atomic(dir / "bad.toml", "epochs = 2\n[head]\nmargin = 0.3\n");
  auto r = run_qface({"train", "--config", (dir / "bad.toml").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("head.margin"), std::string::npos) << r.err;

  r = run_qface({"train", "--config", qface::testing::source_dir() + "/configs/synth_tiny.toml", "--set",
                 "data.train=" + (dir / "missing").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;

  // A truncated checkpoint names the file.
  auto ok = run_qface(train_args(dir / "run", 1));
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const fs::path ckpt = dir / "run" / "checkpoints" / "ckpt-000000001.pt";
  std::string bytes = qface::read_file(ckpt);
  qface::write_file_atomic(ckpt, bytes.substr(0, bytes.size() / 2));
  std::vector<std::string> resume = train_args(dir / "run", 2);
  resume.push_back("--resume");
  r = run_qface(resume);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ckpt-000000001.pt"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// `bench train --profile`: one profiled step, every convolution seen once
// forward and once backward, self times that add up to no more than the step.
TEST(TrainCli, BenchTrainProfileCountsEveryConvolution) {
  qface::testing::TempDir tmp;
  auto r = qface::testing::run_qface({"bench", "train", "--arch", "mobilefacenet", "--batch", "2", "--classes", "10",
                                      "--iters", "1", "--warmup", "0", "--threads", "1", "--no-python", "--profile",
                                      "--json", (tmp / "b.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("aten::convolution_backward"), std::string::npos) << r.out;
  const auto report = nlohmann::json::parse(qface::read_file(tmp / "b.json"));
  const auto& profile = report.at("profile");
  int64_t convs = 0;
  for (const auto& m : qface::backbones::make_backbone("mobilefacenet")->modules())
    if (m->as<torch::nn::Conv2d>()) ++convs;
  ASSERT_GT(convs, 10);
  EXPECT_EQ(profile.at("ops").at("aten::convolution").at("calls").get<int64_t>(), convs);
  EXPECT_EQ(profile.at("ops").at("aten::convolution_backward").at("calls").get<int64_t>(), convs);
  double sum = 0;
  for (const auto& [name, op] : profile.at("ops").items()) sum += op.at("self_ms").get<double>();
  EXPECT_GT(sum, 0.0);
  EXPECT_LE(sum, profile.at("wall_ms").get<double>() * 1.001);
}
