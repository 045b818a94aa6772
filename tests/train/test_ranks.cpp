// Data-parallel ranks that always agree and never hang, end to end: 2 `qface
// train` processes on 127.0.0.1 (Gloo over TCPStore) on `qface synth --preset
// tiny` data with the sharded classifier (each rank writes its own
// checkpoints). A SIGTERM to one rank stops both after the same step; after a
// SIGKILL, --resume continues both from the newest step they both have and
// ends bitwise where an uninterrupted run ends; validation split across the
// ranks does not keep either waiting past a short Gloo timeout.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qface/core/fs.h"
#include "tests/support/testing.h"
#include "tests/train/train_cli_helpers.h"

using qface::testing::TempDir;
using namespace qface::testing::train;
namespace fs = std::filesystem;

namespace {

// Global batch 4 (2 per rank): the tiny set's 37 images make 9 steps per epoch.
std::vector<std::string> sharded_args(const fs::path& out, int64_t max_steps) {
  std::vector<std::string> a = train_args(out, max_steps);
  add_sets(a, {"batch_size=4", "head.sharded=true"});
  return a;
}

fs::path rank_ckpt(const fs::path& out, int64_t step, int rank) {
  return out / "checkpoints" / fmt::format("ckpt-{:09d}.rank{}.pt", step, rank);
}

// Steps of rank `rank`'s checkpoints, ascending.
std::vector<int64_t> rank_steps(const fs::path& out, int rank) {
  std::vector<int64_t> steps;
  const std::string suffix = ".rank" + std::to_string(rank) + ".pt";
  for (const auto& e : fs::directory_iterator(out / "checkpoints")) {
    const std::string name = e.path().filename().string();
    if (name.size() == 5 + 9 + suffix.size() && name.rfind("ckpt-", 0) == 0 && name.ends_with(suffix))
      steps.push_back(std::stoll(name.substr(5, 9)));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

}  // namespace

TEST(DistributedRanks, SigtermToOneRankStopsBothAfterTheSameStep) {
  TempDir dir;
  const fs::path out = dir / "run";
  const int64_t total = 18;  // 2 epochs: far more than run before the signal lands
  Ranks ranks(2, sharded_args(out, total), dir / "logs");
  ASSERT_TRUE(wait_for_file(rank_ckpt(out, 2, 1), std::chrono::seconds(120))) << ranks.log(1);
  ranks.signal(1, SIGTERM);
  const int c0 = ranks.wait(0, std::chrono::seconds(60)), c1 = ranks.wait(1, std::chrono::seconds(60));
  // Both interrupted (130), neither failing in a collective that the other left.
  EXPECT_EQ(c0, 130) << ranks.log(0);
  EXPECT_EQ(c1, 130) << ranks.log(1);
  const auto s0 = rank_steps(out, 0), s1 = rank_steps(out, 1);
  ASSERT_FALSE(s0.empty());
  ASSERT_FALSE(s1.empty());
  const int64_t stopped = s1.back();
  EXPECT_EQ(s0.back(), stopped) << "the ranks' last checkpoints differ";
  EXPECT_GE(stopped, 2);
  EXPECT_LT(stopped, total);
  for (int r : {0, 1}) EXPECT_EQ(checkpoint_position(rank_ckpt(out, stopped, r))[0], stopped) << "rank " << r;
  auto summary = nlohmann::json::parse(qface::read_file(out / "train_summary.json"));
  EXPECT_EQ(summary["steps"].get<int64_t>(), stopped);
  EXPECT_TRUE(summary["interrupted"].get<bool>());
  EXPECT_FALSE(fs::exists(out / "model.pt"));
}

// Rank 1 SIGKILLed mid-epoch, rank 0 then failing in its next collective; one
// more of rank 1's checkpoints removed, as when the crash lands between the
// two ranks' writes of a step. --resume of both picks the newest step that
// both have, and with frozen BatchNorm the final weights (backbone and each
// rank's head shard) are bitwise those of an uninterrupted 2-process run.
TEST(DistributedRanks, ResumeAfterSigkillOfOneRankMatchesUninterruptedRunBitwise) {
  TempDir dir;
  const int64_t total = 6;
  auto args = [&](const fs::path& out) {
    std::vector<std::string> a = sharded_args(out, total);
    add_sets(a, {"model.freeze_bn=true"});
    return a;
  };
  {
    Ranks ref(2, args(dir / "ref"), dir / "ref_logs");
    ASSERT_EQ(ref.wait(0, std::chrono::seconds(180)), 0) << ref.log(0);
    ASSERT_EQ(ref.wait(1, std::chrono::seconds(60)), 0) << ref.log(1);
  }

  const fs::path out = dir / "killed";
  {
    Ranks run(2, args(out), dir / "killed_logs");
    ASSERT_TRUE(wait_for_file(rank_ckpt(out, 3, 1), std::chrono::seconds(120))) << run.log(1);
    run.signal(1, SIGKILL);
    EXPECT_EQ(run.wait(1, std::chrono::seconds(10)), 128 + SIGKILL);
    // Rank 0 fails at the next collective (the peer's connection closed); it
    // must not finish, and it must not hang (wait() would kill it after 60 s).
    const int c0 = run.wait(0, std::chrono::seconds(60));
    EXPECT_NE(c0, 0) << run.log(0);
    EXPECT_NE(c0, -1) << "rank 0 hung after rank 1 died:\n" << run.log(0);
  }
  ASSERT_FALSE(fs::exists(rank_ckpt(out, total, 1))) << "the run finished before the kill";
  auto s0 = rank_steps(out, 0), s1 = rank_steps(out, 1);
  ASSERT_GE(s1.size(), 3u);
  while (!s1.empty() && s1.back() >= s0.back()) {
    fs::remove(rank_ckpt(out, s1.back(), 1));
    s1.pop_back();
  }
  const int64_t common = s1.back();
  ASSERT_LT(common, s0.back());

  std::vector<std::string> resume = args(out);
  resume.push_back("--resume");
  Ranks again(2, resume, dir / "resume_logs");
  ASSERT_EQ(again.wait(0, std::chrono::seconds(180)), 0) << again.log(0);
  ASSERT_EQ(again.wait(1, std::chrono::seconds(60)), 0) << again.log(1);
  for (int r : {0, 1}) {
    EXPECT_NE(again.log(r).find(fmt::format("at step {} ", common)), std::string::npos) << again.log(r);
    const auto a = model_tensors(rank_ckpt(dir / "ref", total, r));
    const auto b = model_tensors(rank_ckpt(out, total, r));
    ASSERT_EQ(a.size(), b.size());
    ASSERT_TRUE(a.count("head.head.kernel")) << "rank " << r;
    for (const auto& [name, t] : a) {
      ASSERT_TRUE(b.count(name)) << name;
      EXPECT_TRUE(torch::equal(t, b.at(name))) << "rank " << r << ": " << name;
    }
  }
}

// Validation on two ranks through the trainer: every 2 steps and the final
// model, each set's pairs counted once (the split and a slow set's timeout
// are tested in-process in test_distributed.cpp).
TEST(DistributedRanks, ValidationRunsOnItsStepsOverTwoRanks) {
  TempDir dir;
  const fs::path out = dir / "run";
  std::vector<std::string> a = sharded_args(out, 3);
  // Frozen BatchNorm: running statistics of 2-image batches would blow the
  // eval-mode features up to non-finite values this early.
  add_sets(a, {"validation.sets=[\"" + (tiny_data() / "val_high.bin").string() + "\"]", "validation.every=2",
               "model.freeze_bn=true"});
  Ranks ranks(2, a, dir / "logs");
  ASSERT_EQ(ranks.wait(0, std::chrono::seconds(120)), 0) << ranks.log(0);
  ASSERT_EQ(ranks.wait(1, std::chrono::seconds(60)), 0) << ranks.log(1);
  std::ifstream metrics(out / "metrics.jsonl");
  std::vector<int> validated;
  for (std::string line; std::getline(metrics, line);) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("val")) continue;
    validated.push_back(j["step"].get<int>());
    EXPECT_EQ(j["val"]["val_high"]["pairs"].get<int>(), 12);
  }
  EXPECT_EQ(validated, (std::vector<int>{2, 3}));  // every 2 steps, and the final model
}
