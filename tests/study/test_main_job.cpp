// The main job end to end on the tiny synthetic preset: data, four trainings
// (AdaFace, ArcFace, MagFace and the CurricularFace control), evaluation per
// quality stratum and on the low-quality protocols, the claims table with
// identity-bootstrap intervals, predictions and verdicts, comparison files and
// report; a second run reuses every finished stage, a changed setting retrains.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>

#include "qface/core/fs.h"
#include "qface/eval/bootstrap.h"
#include "tests/support/testing.h"

using qface::testing::run_qface;
using qface::testing::TempDir;
namespace fs = std::filesystem;

TEST(MainJob, FourHeadsClaimsWithIntervalsThenReuseAndRetrain) {
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
    for (const char* f : {"model.pt", "metrics.jsonl", "eval/verify.json", "eval/quality.json", "eval/cluster.json",
                          "model.verify.json", "model.quality.json"})
      EXPECT_TRUE(fs::exists(dir / "demo" / head / f)) << head << " " << f;
  }
  {
    // Issue #39: the deployment calibrations beside each model, checked against
    // the stored evaluation, then the README's quickstart `verify` line run as
    // written (no --arch, no --calibration) against the tiny job's AdaFace.
    const fs::path run = dir / "demo" / "adaface";
    const auto vcal = nlohmann::json::parse(qface::read_file(run / "model.verify.json"));
    const auto qcal = nlohmann::json::parse(qface::read_file(run / "model.quality.json"));
    const auto e = nlohmann::json::parse(qface::read_file(run / "eval" / "model_eval.json"))["eval"];
    std::vector<double> norms;
    int64_t pairs = 0;
    for (const auto& s : e["strata"]) {
      for (double n : s["norm"].get<std::vector<double>>()) norms.push_back(n);
      pairs += static_cast<int64_t>(s["correct"].size());
    }
    // The main job evaluates plain features (the study also flip-fused ones):
    // verify then compares plain features, as the calibration was made with them.
    EXPECT_EQ(vcal["mode"], "plain");
    EXPECT_EQ(vcal["impostors"].get<int64_t>() + vcal["genuine"].get<int64_t>(), pairs);
    const auto q = qcal["quantiles"].get<std::vector<double>>();
    ASSERT_EQ(q.size(), 101u);
    EXPECT_DOUBLE_EQ(q.front(), *std::min_element(norms.begin(), norms.end()));
    EXPECT_DOUBLE_EQ(q.back(), *std::max_element(norms.begin(), norms.end()));
    const std::string readme = qface::read_file(fs::path(QFACE_SOURCE_DIR) / "README.md");
    const std::size_t at = readme.find("\nbuild/qface verify ");
    ASSERT_NE(at, std::string::npos) << "README lost its quickstart";
    std::istringstream line(readme.substr(at + 1, readme.find('\n', at + 1) - at - 1));
    std::vector<std::string> quick;
    std::vector<fs::path> photos;
    for (const auto& f : fs::directory_iterator(dir / "demo" / "data" / "tinyface" / "gallery")) photos.push_back(f.path());
    std::sort(photos.begin(), photos.end());
    ASSERT_GE(photos.size(), 2u);
    for (std::string w; line >> w;) {
      if (w == "build/qface") continue;
      quick.push_back(w == "runs/demo/adaface/model.pt" ? (run / "model.pt").string()
                      : w == "photo1.jpg"               ? photos[0].string()
                      : w == "photo2.jpg"               ? photos[1].string()
                                                        : w);
    }
    auto v = run_qface(quick);
    ASSERT_EQ(v.exit_code, 0) << v.err;
    // The tiny sets' few impostors resolve FAR 1e-1 only: the decision says so.
    ASSERT_EQ(vcal["thresholds"].size(), 1u) << vcal;
    EXPECT_NE(v.out.find(fmt::format("decision at FAR 0.1 (threshold {:.4f}): ",
                                     vcal["thresholds"][0]["threshold"].get<double>())),
              std::string::npos)
        << v.out;
    EXPECT_NE(v.err.find("deciding at FAR 0.1"), std::string::npos) << v.err;
  }
  // Every claim of the two papers, each with the verdict its interval gives
  // (eval/claims.h rules) and the verdict predicted before the results.
  const auto& claims = cmp["claims"]["0"];
  std::vector<std::string> ids;
  for (const auto& c : claims) {
    ids.push_back(c["id"]);
    const auto& i = c["interval"];
    const double lo = i["lo"], hi = i["hi"], bound = c["kind"] == "not_worse" ? -c["margin"].get<double>() : 0.0;
    const std::string expect = lo > bound ? "holds" : hi < bound ? "does not hold" : "not resolved";
    EXPECT_EQ(c["verdict"], expect) << c.dump();
    EXPECT_EQ(c["as_predicted"].get<bool>(), c["verdict"] == c["predicted"]) << c.dump();
    EXPECT_FALSE(c["prediction"].get<std::string>().empty()) << c.dump();
  }
  EXPECT_EQ(ids, (std::vector<std::string>{
                     "adaface_tinyface_rank1_vs_arcface", "adaface_tinyface_rank5_vs_arcface",
                     "adaface_high_vs_arcface", "adaface_tinyface_rank1_vs_curricularface",
                     "adaface_tinyface_rank5_vs_curricularface", "adaface_high_vs_curricularface", "adaface_low", "adaface_norm", "tail_identity_free", "tail_ordinary", "magface_norm", "magface_vs_brisque",
                     "magface_recognition", "magface_cluster", "adaface_surveillance_to_single",
                     "adaface_surveillance_to_booking", "adaface_surveillance_to_surveillance", "adaface_fusion",
                     "magface_fusion"}));
  auto claim = [&](const std::string& id) -> const nlohmann::json& {
    for (const auto& c : claims)
      if (c["id"] == id) return c;
    ADD_FAILURE() << "no claim " << id;
    return claims[0];
  };
  // "No loss on val_high": the estimate is the difference of the two models'
  // stored per-pair outcomes, and the interval is the identity bootstrap over
  // val_high's pairs (cluster = the first image's identity) with the job's seed
  // and resamples, recomputed here.
  auto per_pair = [&](const char* head, const char* stratum) {
    const auto e = nlohmann::json::parse(qface::read_file(dir / "demo" / head / "eval" / "model_eval.json"));
    for (const auto& s : e["eval"]["strata"])
      if (s["name"] == stratum) return s["correct"].get<std::vector<double>>();
    ADD_FAILURE() << "no " << stratum;
    return std::vector<double>();
  };
  const std::vector<double> ca = per_pair("adaface", "val_high"), cb = per_pair("arcface", "val_high");
  ASSERT_EQ(ca.size(), cb.size());
  double diff = 0;
  for (std::size_t p = 0; p < ca.size(); ++p) diff += (ca[p] - cb[p]) / static_cast<double>(ca.size());
  const nlohmann::json& high = claim("adaface_high_vs_arcface");
  EXPECT_NEAR(high["interval"]["estimate"].get<double>(), diff, 1e-12);
  std::vector<int64_t> pair_ids;
  const nlohmann::json high_side = nlohmann::json::parse(qface::read_file(dir / "demo" / "data" / "val_high.json"));
  for (const auto& p : high_side["identity"]) pair_ids.push_back(p[0].get<int64_t>());
  const qface::eval::Interval again_ci = qface::eval::clustered_mean_difference(ca, cb, pair_ids,
                                                                                 {.resamples = 200, .seed = 0});
  EXPECT_EQ(high["interval"]["lo"].get<double>(), again_ci.lo);
  EXPECT_EQ(high["interval"]["hi"].get<double>(), again_ci.hi);
  EXPECT_EQ(high["interval"]["items"].get<int64_t>(), again_ci.items);  // identities, not pairs
  EXPECT_LT(again_ci.items, static_cast<int64_t>(ca.size()));
  EXPECT_EQ(high["interval_over"], "identities");
  // TinyFace-style rank-1: the claim is the difference of the stored rates.
  auto rate = [&](const char* head, const char* k) {
    return cmp["runs"]["0"][head]["protocols"]["tinyface"]["rank"][k].get<double>();
  };
  EXPECT_NEAR(claim("adaface_tinyface_rank1_vs_arcface")["interval"]["estimate"].get<double>(),
              rate("adaface", "1") - rate("arcface", "1"), 1e-12);
  EXPECT_NEAR(claim("adaface_tinyface_rank5_vs_arcface")["interval"]["estimate"].get<double>(),
              rate("adaface", "5") - rate("arcface", "5"), 1e-12);
  EXPECT_EQ(cmp["runs"]["0"]["adaface"]["protocols"]["tinyface"]["probes"].get<int>(), 8);  // 4 identities x 2
  // The surveillance claims are the paired differences of the stored per-model rank-1 rates.
  auto rank1 = [&](const char* head, const char* fusion, std::size_t protocol) {
    const auto& p = cmp["runs"]["0"][head]["ijbs"][fusion]["protocols"][protocol];
    return p["cmc"]["top1"].get<double>();
  };
  for (const auto& c : claims) {
    if (c["id"] == "adaface_surveillance_to_single") {
      EXPECT_NEAR(c["interval"]["estimate"].get<double>(), rank1("adaface", "norm", 0) - rank1("arcface", "norm", 0), 1e-12);
    }
    if (c["id"] == "magface_fusion") {
      EXPECT_NEAR(c["interval"]["estimate"].get<double>(), rank1("magface", "norm", 0) - rank1("magface", "mean", 0), 1e-12);
    }
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
