// The main job end to end on the tiny synthetic preset: data, three trainings
// (AdaFace, MagFace, ArcFace), evaluation per quality stratum, the claims
// table with intervals and verdicts, comparison files and report; a second run
// reuses every finished stage, a changed setting retrains.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "qface/core/fs.h"
#include "tests/support/testing.h"

using qface::testing::run_qface;
using qface::testing::TempDir;
namespace fs = std::filesystem;

TEST(MainJob, ThreeHeadsClaimsWithIntervalsThenReuseAndRetrain) {
  TempDir dir;
  std::vector<std::string> args = {"demo",  "--preset", "tiny",         "--out",
                                   (dir / "demo").string(), "--threads", "1", "--resamples", "200",
                                   "--set", "max_steps=2",  "--set",     "batch_size=8",
                                   "--set", "checkpoint_every=1", "--set", "data.loader_threads=1",
                                   "--set", "bf16=false"};
  auto r = run_qface(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| val_low | accuracy %"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("## The papers' claims"), std::string::npos) << r.out;
  auto cmp = nlohmann::json::parse(qface::read_file(dir / "demo" / "comparison.json"));
  for (const char* head : {"adaface", "magface", "arcface"}) {
    const auto& run = cmp["runs"]["0"][head];
    EXPECT_EQ(run["steps"].get<int>(), 2) << head;
    for (const char* s : {"val_high", "val_mixed", "val_low"}) {
      const auto& e = run["eval"][s];
      EXPECT_GE(e["acc"].get<double>(), 0.0);
      EXPECT_LE(e["acc"].get<double>(), 1.0);
      EXPECT_TRUE(e["spearman_norm_gt"].is_number());
      // 12 pairs per set: no FAR is resolved by ~1 impostor per fold.
      EXPECT_TRUE(e["tar_at_far"]["0.001"].is_null());
      EXPECT_TRUE(e["tar_at_far"]["0.01"].is_null());
    }
    for (const char* score : {"norm", "brisque", "gt", "random"})
      EXPECT_TRUE(run["quality"][score]["pauc"].is_number()) << head << " " << score;
    EXPECT_TRUE(run["cluster"]["quality_ordered"]["bcubed"]["f"].is_number());
    for (const char* f : {"model.pt", "metrics.jsonl", "eval/verify.json", "eval/quality.json", "eval/cluster.json"})
      EXPECT_TRUE(fs::exists(dir / "demo" / head / f)) << head << " " << f;
  }
  // Every claim of the two papers, each with an interval around its estimate and a verdict.
  const auto& claims = cmp["claims"]["0"];
  std::vector<std::string> ids;
  for (const auto& c : claims) {
    ids.push_back(c["id"]);
    const auto& i = c["interval"];
    EXPECT_LE(i["lo"].get<double>(), i["hi"].get<double>()) << c.dump();
    const std::string v = c["verdict"];
    EXPECT_TRUE(v == "holds" || v == "does not hold" || v == "not resolved") << v;
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"adaface_low", "adaface_high", "adaface_norm", "magface_norm",
                                           "magface_vs_brisque", "magface_recognition", "magface_cluster",
                                           "adaface_surveillance_to_single", "adaface_surveillance_to_booking",
                                           "adaface_surveillance_to_surveillance", "adaface_fusion", "magface_fusion"}));
  // The surveillance claims are the paired differences of the stored per-model rank-1 rates.
  auto rank1 = [&](const char* head, const char* fusion, std::size_t protocol) {
    const auto& p = cmp["runs"]["0"][head]["ijbs"][fusion]["protocols"][protocol];
    return p["cmc"]["top1"].get<double>();
  };
  for (const auto& c : claims) {
    if (c["id"] == "adaface_surveillance_to_single")
      EXPECT_NEAR(c["interval"]["estimate"].get<double>(), rank1("adaface", "norm", 0) - rank1("arcface", "norm", 0), 1e-12);
    if (c["id"] == "magface_fusion")
      EXPECT_NEAR(c["interval"]["estimate"].get<double>(), rank1("magface", "norm", 0) - rank1("magface", "mean", 0), 1e-12);
  }
  for (const char* head : {"adaface", "magface", "arcface"}) {
    const auto& p = cmp["runs"]["0"][head]["ijbs"]["topk:5"]["protocols"];
    ASSERT_EQ(p.size(), 3u) << head;
    EXPECT_EQ(p[0]["protocol"], "surveillance_to_single");
    // The tiny set's few non-mated probes resolve no FPIR of 1 %.
    EXPECT_TRUE(p[0]["tpir_at_fpir"][0]["tpir"].is_null()) << p[0];
    EXPECT_TRUE(fs::exists(dir / "demo" / head / "eval" / "ijbs.json")) << head;
  }
  const nlohmann::json& s2s = cmp["surveillance"]["0"]["vs_arcface"]["magface"]["surveillance_to_single"]["rank1"];
  ASSERT_TRUE(s2s["estimate"].is_number()) << cmp["surveillance"];
  EXPECT_LE(s2s["lo"].get<double>(), s2s["hi"].get<double>());
  EXPECT_TRUE(cmp["differences"]["0"]["magface"]["val_low"]["acc"]["lo"].is_number());
  EXPECT_TRUE(fs::exists(dir / "demo" / "comparison.md"));
  const std::string md = qface::read_file(dir / "demo" / "comparison.md");
  EXPECT_NE(md.find("| — |"), std::string::npos);
  // The per-stratum EDC rows: one per stratum and model, filled from the stored evaluation.
  EXPECT_NE(md.find("Within each stratum"), std::string::npos);
  const std::size_t row = md.find("| val_low | MagFace | 0.");
  ASSERT_NE(row, std::string::npos) << md;
  // ... ending in the interval of BRISQUE's pAUC minus the norm's, lo <= estimate <= hi.
  const nlohmann::json& w = cmp["within_strata"]["0"]["magface"]["val_low"];
  ASSERT_TRUE(w["estimate"].is_number()) << w;
  EXPECT_LE(w["lo"].get<double>(), w["estimate"].get<double>());
  EXPECT_GE(w["hi"].get<double>(), w["estimate"].get<double>());
  const std::string line = md.substr(row, md.find('\n', row) - row);
  EXPECT_NE(line.find(fmt::format("{:+.5f} [", w["estimate"].get<double>())), std::string::npos) << line;
  // ... and the surveillance table shows that interval in points.
  const std::size_t srow = md.find("| Surveillance-to-Single | rank-1 |");
  ASSERT_NE(srow, std::string::npos) << md;
  EXPECT_NE(md.substr(srow, md.find('\n', srow) - srow)
                .find(fmt::format("{:+.1f} [{:+.1f}, {:+.1f}]", 100 * s2s["estimate"].get<double>(),
                                  100 * s2s["lo"].get<double>(), 100 * s2s["hi"].get<double>())),
            std::string::npos)
      << md.substr(srow, 300);
  const std::string html = qface::read_file(dir / "demo" / "report.html");
  EXPECT_NE(html.find("magface"), std::string::npos);

  // Run again: data, trainings and evaluations are reused; a data folder
  // without the surveillance set (made before it existed) gets it added, the
  // same bytes, so its evaluations are reused too.
  fs::remove_all(dir / "demo" / "data" / "ijbs");
  auto again = run_qface(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("surveillance set added"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("already evaluated on the surveillance set"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("magface (seed 0) already trained"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("already evaluated"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("data already in"), std::string::npos) << again.err;
  EXPECT_EQ(nlohmann::json::parse(qface::read_file(dir / "demo" / "comparison.json"))["claims"], cmp["claims"]);

  // A changed setting is not silently reused: every head retrains.
  args.insert(args.end(), {"--set", "max_steps=3", "--heads", "arcface"});
  auto changed = run_qface(args);
  ASSERT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_NE(changed.err.find("trained with another configuration; retraining"), std::string::npos) << changed.err;
  EXPECT_EQ(nlohmann::json::parse(qface::read_file(dir / "demo" / "comparison.json"))["runs"]["0"]["arcface"]["steps"], 3);
}
