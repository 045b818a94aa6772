// AdaFace's z distribution in metrics.jsonl (trainer: the samples of each log
// window), the first-batch start of its statistics end to end, and the z
// chart of `qface report`.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qface/core/fs.h"
#include "tests/support/testing.h"
#include "tests/train/train_cli_helpers.h"

using qface::testing::run_qface;
using qface::testing::TempDir;
using namespace qface::testing::train;
namespace fs = std::filesystem;

namespace {

const char* const kZKeys[] = {"z_q05", "z_q25", "z_q50", "z_q75", "z_q95", "z_clip_lo", "z_clip_hi", "z_abs_lt_0.2"};

std::vector<nlohmann::json> train_lines(const fs::path& metrics) {
  std::vector<nlohmann::json> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j);
  }
  return out;
}

}  // namespace

// synth_tiny.toml starts the statistics at the first batch: at step 1 they
// are that batch's mean and unbiased std of the norms (the norms of the
// untrained network stay under the clamp at 100, so they equal the logged
// norm_mean / norm_std), and z = h (n - mean) / std of a batch of 8 is at most
// h (8 - 1) / sqrt(8) = 0.82 in size: nothing is clipped.
TEST(TrainZMetrics, FirstBatchStatisticsAndTheZKeys) {
  TempDir dir;
  auto args = train_args(dir / "run", 3);
  add_sets(args, {"log_every=1"});
  auto r = run_qface(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = train_lines(dir / "run" / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 3u);
  const auto& first = lines[0];
  ASSERT_LT(first["norm_mean"].get<double>() + 3 * first["norm_std"].get<double>(), 100.0);
  EXPECT_NEAR(first["batch_mean"].get<double>(), first["norm_mean"].get<double>(), 1e-4);
  EXPECT_NEAR(first["batch_std"].get<double>(), first["norm_std"].get<double>(), 1e-4);
  EXPECT_EQ(first["z_clip_lo"].get<double>(), 0.0);
  EXPECT_EQ(first["z_clip_hi"].get<double>(), 0.0);
  for (const auto& j : lines) {
    for (const char* key : kZKeys) ASSERT_TRUE(j.contains(key) && j[key].is_number()) << key << " in " << j.dump();
    EXPECT_LE(j["z_q05"].get<double>(), j["z_q25"].get<double>());
    EXPECT_LE(j["z_q25"].get<double>(), j["z_q50"].get<double>());
    EXPECT_LE(j["z_q50"].get<double>(), j["z_q75"].get<double>());
    EXPECT_LE(j["z_q75"].get<double>(), j["z_q95"].get<double>());
    EXPECT_GE(j["z_q05"].get<double>(), -1.0);
    EXPECT_LE(j["z_q95"].get<double>(), 1.0);
    for (const char* share : {"z_clip_lo", "z_clip_hi", "z_abs_lt_0.2"}) {
      EXPECT_GE(j[share].get<double>(), 0.0);
      EXPECT_LE(j[share].get<double>(), 1.0);
    }
  }
  // Step 2 is an EMA step from step 1's statistics (not a second start).
  EXPECT_NEAR(lines[1]["batch_mean"].get<double>(),
              0.01 * lines[1]["norm_mean"].get<double>() + 0.99 * first["batch_mean"].get<double>(), 1e-4);
  const std::string config = qface::read_file(dir / "run" / "config.toml");
  EXPECT_NE(config.find("stats_init"), std::string::npos) << config;
  EXPECT_NE(config.find("first_batch"), std::string::npos) << config;
}

// fixed_z = -1 over a window of two steps (16 samples): every quantile -1, all
// clipped low; the report draws the z chart. Other heads log no z.
TEST(TrainZMetrics, FixedZWindowAndReportChart) {
  TempDir dir;
  auto args = train_args(dir / "ada", 2);
  add_sets(args, {"log_every=2", "head.fixed_z=-1"});
  auto r = run_qface(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = train_lines(dir / "ada" / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  for (const char* q : {"z_q05", "z_q25", "z_q50", "z_q75", "z_q95"}) EXPECT_EQ(lines[0][q].get<double>(), -1.0) << q;
  EXPECT_EQ(lines[0]["z_clip_lo"].get<double>(), 1.0);
  EXPECT_EQ(lines[0]["z_clip_hi"].get<double>(), 0.0);
  EXPECT_EQ(lines[0]["z_abs_lt_0.2"].get<double>(), 0.0);

  r = run_qface({"report", "--runs", (dir / "ada").string(), "--out", (dir / "report.html").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(qface::read_file(dir / "report.html").find("AdaFace z (5 / 50 / 95 % quantiles)"), std::string::npos);

  // synth_tiny's stats_init is ignored for another head, which logs no z.
  auto arc = train_args(dir / "arc", 1);
  add_sets(arc, {"head.name=arcface"});
  r = run_qface(arc);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto arc_lines = train_lines(dir / "arc" / "metrics.jsonl");
  ASSERT_EQ(arc_lines.size(), 1u);
  EXPECT_FALSE(arc_lines[0].contains("z_q50"));
  EXPECT_FALSE(arc_lines[0].contains("batch_mean"));
}
