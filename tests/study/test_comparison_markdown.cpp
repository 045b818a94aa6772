// comparison.md rendered from fixed results (one seed, and two seeds), byte
// for byte against the files in tests/study/golden/: every section of the
// main job's Markdown without running the main job. After an intended change
// to the rendering, the new text is in test-output/ to review and copy.
#include <gtest/gtest.h>

#include <cmath>

#include "qface/core/fs.h"
#include "qface/study/comparison_markdown.h"
#include "tests/support/testing.h"

namespace qs = qface::study;
using nlohmann::json;

namespace {

const std::vector<std::string> kHeads = {"adaface", "arcface", "magface"};
const std::vector<std::string> kStrata = {"val_high", "val_low"};
const std::vector<std::string> kProtocols = {"surveillance_to_single", "surveillance_to_booking"};

// A value that differs per head, seed and use, and is exact in binary.
double value(std::size_t head, uint64_t seed, int k) { return 0.5 + 0.0625 * head + 0.03125 * seed + 0.0078125 * k; }

json interval(double estimate) { return {{"estimate", estimate}, {"lo", estimate - 0.125}, {"hi", estimate + 0.25}}; }

qface::eval::IjbsResult ijbs_result(std::size_t h, uint64_t seed, int fusion) {
  qface::eval::IjbsResult r{.frames = 960, .templates = 48};
  for (const std::string& p : kProtocols) {
    qface::eval::IjbsProtocolResult pr{.protocol = p};
    pr.summary.gallery_templates = 12;
    pr.summary.mated_probes = 30;
    pr.summary.nonmated_probes = 6;
    pr.summary.cmc = {{1, value(h, seed, fusion)}, {5, value(h, seed, fusion + 1)}};
    // FPIR 1 % is not resolved by 6 non-mated probes.
    pr.summary.tpir_at_fpir = {{0.01, std::nan(""), 0}, {0.1, value(h, seed, fusion + 2), 0.5}};
    r.protocols.push_back(pr);
  }
  return r;
}

qs::ModelEval model_eval(std::size_t h, uint64_t seed) {
  qs::ModelEval m{.name = kHeads[h]};
  for (std::size_t s = 0; s < kStrata.size(); ++s) {
    qs::StratumResult r{.name = kStrata[s], .acc = value(h, seed, 1 + s), .acc_std = 0.015625};
    if (s == 0) r.acc_flip = value(h, seed, 3);
    r.tar = {{"0.01", value(h, seed, 4)}, {"0.001", nullptr}};
    r.norm = {10.0 + s, 12.0 + s};
    r.spearman_gt = value(h, seed, 5 + s) - 0.25;
    r.spearman_recog = value(h, seed, 6 + s) - 0.25;
    for (const char* score : {"norm", "brisque", "gt"})
      r.quality[score] = {{"pauc", value(h, seed, 7 + s) / 8}, {"fnmr0", value(h, seed, 8) / 4}};
    m.strata.push_back(r);
  }
  int k = 9;
  for (const char* score : {"norm", "brisque", "gt", "random"}) {
    m.quality[score] = {{"pauc", value(h, seed, k) / 8}, {"fnmr0", value(h, seed, k + 1) / 4}};
    if (std::string(score) != "random")
      m.quality[score]["fmr_1e-2"] = {{"pauc", value(h, seed, k + 2) / 16}, {"fnmr0", value(h, seed, k + 3) / 8}};
    k += 4;
  }
  m.cluster = {{"plain", {{"nmi", value(h, seed, 30)}, {"bcubed", {{"f", value(h, seed, 31)}}}}},
               {"quality_ordered", {{"nmi", value(h, seed, 32)}, {"bcubed", {{"f", value(h, seed, 33)}}}}},
               {"sweep", {{{"plain_bcubed_f", value(h, seed, 34)}, {"quality_bcubed_f", value(h, seed, 35)}}}}};
  for (std::size_t f = 0; f < qs::kSurveillanceFusions.size(); ++f)
    m.ijbs[qs::kSurveillanceFusions[f]] = ijbs_result(h, seed, static_cast<int>(40 + 3 * f));
  m.protocols.cross = {{"pairs", 40}, {"impostors", 400}, {"tar", {{"0.001", nullptr}, {"0.01", value(h, seed, 50)}, {"0.1", value(h, seed, 51)}}}};
  m.protocols.tinyface = {{"probes", 20}, {"gallery", 10}, {"distractors", 100},
                          {"rank", {{"1", value(h, seed, 52)}, {"5", value(h, seed, 53)}, {"20", value(h, seed, 54)}}}};
  m.protocols.tail = {{"chance", 0.03125}, {"free_rank1", value(h, seed, 55)}, {"ordinary_rank1", value(h, seed, 56)}};
  if (h != 1) m.protocols.tail["train_free_rank1"] = value(h, seed, 57);
  return m;
}

qs::ClaimsResult claims(uint64_t seed) {
  qs::ClaimsResult c;
  qface::eval::Claim holds{.paper = "AdaFace", .statement = "AdaFace beats ArcFace on low quality",
                           .measure = "accuracy AdaFace - ArcFace, val_low", .display_scale = 100, .unit = "points"};
  holds.interval = {.estimate = 0.03 + 0.01 * seed, .lo = 0.01, .hi = 0.05 + 0.01 * seed, .items = 40, .resamples = 200};
  qface::eval::Claim open{.paper = "MagFace", .statement = "the norm ranks quality",
                          .measure = "Spearman(norm, recognizability)", .kind = qface::eval::ClaimKind::kNotWorse,
                          .margin = 0.01, .predicted = qface::eval::Verdict::kNotResolved};
  open.interval = {.estimate = 0.25 - 0.5 * seed, .lo = -0.25, .hi = 0.5, .items = 40, .resamples = 200};
  c.ids = {"adaface_low", "magface_norm"};
  c.claims = {holds, open};
  for (std::size_t h = 0; h < kHeads.size(); ++h) {
    if (kHeads[h] != "arcface") {
      for (const std::string& s : kStrata) {
        c.differences[kHeads[h]][s]["acc"] = interval(value(h, seed, 60) - 0.5);
        if (s == "val_high") c.differences[kHeads[h]][s]["acc_flip"] = interval(value(h, seed, 61) - 0.5);
      }
      c.differences[kHeads[h]]["all"]["acc"] = interval(value(h, seed, 62) - 0.5);
      for (const std::string& p : kProtocols) {
        c.surveillance["vs_arcface"][kHeads[h]][p]["rank1"] = interval(value(h, seed, 63) - 0.5);
        if (h == 0) c.surveillance["vs_arcface"][kHeads[h]][p]["tpir_fpir_0.1"] = interval(value(h, seed, 64) - 0.5);
      }
    }
    for (const std::string& p : kProtocols) {
      c.surveillance["fusion"][kHeads[h]][p]["norm_minus_mean"] = interval(value(h, seed, 65) - 0.5);
      if (h != 2) c.surveillance["fusion"][kHeads[h]][p]["topk_minus_mean"] = interval(value(h, seed, 66) - 0.5);
    }
    c.recognizability[kHeads[h]] = {{"spearman_norm_gt", value(h, seed, 67) - 0.25},
                                    {"spearman_norm_recognizability", value(h, seed, 68) - 0.25}};
    if (h == 2) c.within_strata[kHeads[h]]["val_low"] = interval(value(h, seed, 69) / 64);
  }
  c.recognizability["spearman_gt_vs_recognizability"] = value(0, seed, 70) - 0.125;
  c.recognizability["definition"] = "the share of the ensemble's models that recognize the image";
  return c;
}

// The results of `seeds` as the main job has them when it writes comparison.md.
std::string render(const std::vector<uint64_t>& seed_ids) {
  qs::MainJobOptions o;
  o.heads = kHeads;
  o.seeds = seed_ids;
  o.resamples = 200;
  qs::EvalData data;
  for (const std::string& s : kStrata) data.strata.push_back({.name = s, .issame = std::vector<uint8_t>(12, 1)});
  data.ijbs = qface::eval::IjbsMeta{};
  json cmp = {{"seconds", 754.5}};
  std::vector<qs::SeedResult> seeds;
  for (uint64_t seed : seed_ids) {
    qs::SeedResult s{.seed = seed, .claims = claims(seed)};
    for (std::size_t h = 0; h < kHeads.size(); ++h) {
      s.runs[kHeads[h]] = {.head = kHeads[h], .seed = seed, .train_seconds = 90 + 30.0 * h, .images_per_second = 55.5,
                           .steps = 120};
      s.evals[kHeads[h]] = model_eval(h, seed);
      json& run = cmp["runs"][std::to_string(seed)][kHeads[h]];
      run["steps"] = 120;
      if (kHeads[h] == "adaface") {
        const json part = {{"near_zero", value(h, seed, 80)}, {"clip_lo", value(h, seed, 81) / 8},
                           {"clip_hi", value(h, seed, 82) / 8}, {"spread_5_95", value(h, seed, 83) + 1}};
        run["z"] = {{"early", part}, {"all", part}};
        run["z"]["all"]["near_zero"] = value(h, seed, 84);
      }
    }
    seeds.push_back(std::move(s));
  }
  return qs::comparison_markdown(o, seeds, data, cmp);
}

void expect_golden(const std::string& text, const std::string& name) {
  const std::filesystem::path golden = std::filesystem::path(QFACE_SOURCE_DIR) / "tests/study/golden" / name;
  const std::string expected = std::filesystem::exists(golden) ? qface::read_file(golden) : std::string();
  if (text == expected) return;
  const std::filesystem::path got = std::filesystem::path(QFACE_TEST_OUTPUT) / "comparison_markdown" / name;
  qface::testing::write_text(got, text);
  ADD_FAILURE() << "the rendering differs from " << golden.string() << ": see " << got.string();
}

}  // namespace

TEST(ComparisonMarkdown, OneSeedAsBefore) { expect_golden(render({0}), "one_seed.md"); }

TEST(ComparisonMarkdown, TwoSeedsAsBefore) { expect_golden(render({0, 1}), "two_seeds.md"); }
