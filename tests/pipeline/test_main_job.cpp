// The main job end to end on the tiny synthetic preset: data, two trainings,
// evaluation per quality stratum, comparison table and report; a second run
// reuses every finished stage.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "qface/core/fs.h"
#include "tests/support/testing.h"

using qface::testing::run_qface;
using qface::testing::TempDir;
namespace fs = std::filesystem;

TEST(MainJob, TrainsBothHeadsEvaluatesAndReportsThenResumes) {
  TempDir dir;
  const std::vector<std::string> args = {"demo",  "--preset", "tiny",         "--out",
                                         (dir / "demo").string(), "--threads", "1",
                                         "--set", "max_steps=2",  "--set",     "batch_size=8",
                                         "--set", "checkpoint_every=1", "--set", "data.loader_threads=1",
                                         "--set", "validation.batch_size=16"};
  auto r = run_qface(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| val_low | accuracy %"), std::string::npos) << r.out;
  auto cmp = nlohmann::json::parse(qface::read_file(dir / "demo" / "comparison.json"));
  for (const char* head : {"adaface", "arcface"}) {
    const auto& run = cmp["runs"][head];
    EXPECT_EQ(run["steps"].get<int>(), 2) << head;
    for (const char* s : {"val_high", "val_mixed", "val_low"}) {
      const auto& e = run["eval"][s];
      EXPECT_GE(e["acc"].get<double>(), 0.0);
      EXPECT_LE(e["acc"].get<double>(), 1.0);
      EXPECT_GT(e["norm_mean"].get<double>(), 0.0);
      EXPECT_TRUE(e["spearman_norm_gt"].is_number());
    }
    EXPECT_TRUE(fs::exists(dir / "demo" / head / "model.pt"));
    EXPECT_TRUE(fs::exists(dir / "demo" / head / "eval" / "verify.json"));
    EXPECT_TRUE(fs::exists(dir / "demo" / head / "metrics.jsonl"));
  }
  EXPECT_EQ(cmp["findings"].size(), 4u);
  EXPECT_TRUE(fs::exists(dir / "demo" / "comparison.md"));
  const std::string html = qface::read_file(dir / "demo" / "report.html");
  EXPECT_NE(html.find("adaface"), std::string::npos);

  // Run again: data and both trainings are reused, the comparison is redone.
  auto again = run_qface(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("adaface already trained"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("synthetic data already in"), std::string::npos) << again.err;
}
