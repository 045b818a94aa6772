// IJB-S-style surveillance identification (eval/ijbs.h): the three protocols
// on a hand-made set whose ranks and TPIR are worked out below, the three
// fusion modes against hand-computed templates, open-set probes, malformed
// meta files (one-line errors naming file:line), paired bootstraps, and the
// `qface eval ijbs` / `qface report` command lines.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <fstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/eval/ijbs.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
namespace qe = qface::eval;
using nlohmann::json;
using qface::testing::run_qface;
using qface::testing::TempDir;
using qface::testing::write_text;

namespace {

// Subjects A = 1, B = 2, C = 3 (enrolled), X = 9 and Y = 8 (seen only in videos).
// Templates (4-d features; every frame of a template points the same way, so
// any fusion gives that direction):
//   single    1 A e1,  2 B e2,  3 C e3
//   booking  11 A two photos (.6, +-.8, 0, 0) -> e1,  12 B e2 (x2),
//            13 C two photos (0, 0, +-.6, .8) -> e4 (C's booking differs from C's single photo)
//   video    21 A (.8, .6, 0, 0)   22 A (.6, .8, 0, 0)   23 B (0, .28, .96, 0)
//            24 C (0, 0, .6, .8)   25 C (.36, 0, .48, .8)
//            26 X (.5, 0, 0, .866) 27 X (0, .7, 0, .714) 28 Y (0, 0, .1, .995)
//            31 A e1 (gallery video), 32 B e2 (gallery video)
struct Frame {
  int64_t tmpl, subject;
  const char* media;
  std::array<float, 4> f;
  float norm;
};

std::vector<Frame> hand_frames() {
  const float s75 = std::sqrt(0.75f), s51 = std::sqrt(0.51f), s99 = std::sqrt(0.99f);
  return {
      {1, 1, "single", {1, 0, 0, 0}, 20},
      {2, 2, "single", {0, 1, 0, 0}, 20},
      {3, 3, "single", {0, 0, 1, 0}, 20},
      {11, 1, "booking", {0.6f, 0.8f, 0, 0}, 15},
      {11, 1, "booking", {0.6f, -0.8f, 0, 0}, 15},
      {12, 2, "booking", {0, 1, 0, 0}, 12},
      {12, 2, "booking", {0, 1, 0, 0}, 18},
      {13, 3, "booking", {0, 0, 0.6f, 0.8f}, 15},
      {13, 3, "booking", {0, 0, -0.6f, 0.8f}, 15},
      {21, 1, "video", {0.8f, 0.6f, 0, 0}, 5},
      {21, 1, "video", {0.8f, 0.6f, 0, 0}, 1},
      {22, 1, "video", {0.6f, 0.8f, 0, 0}, 3},
      {23, 2, "video", {0, 0.28f, 0.96f, 0}, 4},
      {23, 2, "video", {0, 0.28f, 0.96f, 0}, 2},
      {24, 3, "video", {0, 0, 0.6f, 0.8f}, 6},
      {25, 3, "video", {0.36f, 0, 0.48f, 0.8f}, 6},
      {26, 9, "video", {0.5f, 0, 0, s75}, 7},
      {27, 9, "video", {0, 0.7f, 0, s51}, 7},
      {27, 9, "video", {0, 0.7f, 0, s51}, 2},
      {28, 8, "video", {0, 0, 0.1f, s99}, 3},
      {31, 1, "video", {1, 0, 0, 0}, 9},
      {32, 2, "video", {0, 1, 0, 0}, 9},
  };
}

const char* kS2Single = "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n21,1;2;3\n22,1;2;3\n23,1;2;3\n24,1;2;3\n25,1;2;3\n"
                        "26,1;2;3\n27,1;2;3\n28,1;2;3\n";
const char* kS2Booking = "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n21,11;12;13\n22,11;12;13\n23,11;12;13\n24,11;12;13\n"
                         "25,11;12;13\n26,11;12;13\n27,11;12;13\n28,11;12;13\n";
// Per-row galleries: 23 is searched against B's video only; C (24) has no gallery video: non-mated.
const char* kS2S = "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n21,31;32\n23,32\n24,31;32\n27,31;32\n";

struct HandSet {
  fs::path meta;
  torch::Tensor features, norms;
  std::vector<std::string> files;
};

// Writes the meta folder; feature rows are in reverse templates.csv order and
// named with a prefix, as `qface embed` run elsewhere would name them.
HandSet write_hand_set(const fs::path& dir) {
  HandSet h;
  h.meta = dir / "meta";
  const auto frames = hand_frames();
  std::string csv = "TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n";
  for (size_t i = 0; i < frames.size(); ++i)
    csv += fmt::format("{},{},images/{}_{}.jpg,{}\n", frames[i].tmpl, frames[i].subject, frames[i].tmpl, i,
                       frames[i].media);
  write_text(h.meta / "templates.csv", csv);
  write_text(h.meta / "surveillance_to_single.csv", kS2Single);
  write_text(h.meta / "surveillance_to_booking.csv", kS2Booking);
  write_text(h.meta / "surveillance_to_surveillance.csv", kS2S);
  const int64_t n = static_cast<int64_t>(frames.size());
  h.features = torch::zeros({n, 4});
  h.norms = torch::zeros({n});
  for (int64_t r = 0; r < n; ++r) {
    const Frame& f = frames[static_cast<size_t>(n - 1 - r)];
    for (int d = 0; d < 4; ++d) h.features[r][d] = f.f[static_cast<size_t>(d)];
    h.norms[r] = f.norm;
    h.files.push_back(fmt::format("/data/run/meta/images/{}_{}.jpg", f.tmpl, n - 1 - r));
  }
  h.features = h.features / h.features.norm(2, 1, true);
  return h;
}

qe::IjbsOptions hand_options(const std::string& fusion = "mean") {
  qe::IjbsOptions o;
  o.fusion = qe::parse_fusion(fusion);
  o.ks = {1, 5};
  o.fpirs = {0.01, 0.34, 0.7};
  return o;
}

double tpir(const qe::IjbsProtocolResult& p, size_t i) { return p.summary.tpir_at_fpir.at(i).tpir; }

}  // namespace

TEST(EvalIjbs, ThreeProtocolsOnAHandMadeSet) {
  TempDir tmp;
  HandSet h = write_hand_set(tmp.path());
  const qe::IjbsMeta meta = qe::load_ijbs_meta(h.meta);
  ASSERT_EQ(meta.protocols.size(), 3u);
  const qe::IjbsResult r = qe::evaluate_ijbs(meta, h.features, h.norms, h.files, hand_options());
  EXPECT_EQ(r.frames, 22);
  EXPECT_EQ(r.templates, 16);
  ASSERT_EQ(r.protocols.size(), 3u);

  // Surveillance-to-single, gallery e1 (A), e2 (B), e3 (C):
  //   21 A: A .8 B .6 -> rank 1, top .8     22 A: A .6 B .8 -> rank 2
  //   23 B: B .28 C .96 -> rank 2           24 C: C .6 -> rank 1    25 C: A .36 C .48 -> rank 1
  //   non-mated tops: 26 X .5, 27 X .7, 28 Y .1
  // rank-1 = 3/5, rank-5 = 1. Thresholds (k = floor(FPIR * 3)-th highest non-mated top):
  // FPIR .01 and .34 -> .7 and .5 (k = 0, 1), .7 -> .1; rank-1 mates above: {21}, {21, 24}, {21, 24, 25}.
  const qe::IjbsProtocolResult& single = *r.find("surveillance_to_single");
  EXPECT_EQ(single.summary.mated_probes, 5);
  EXPECT_EQ(single.summary.nonmated_probes, 3);
  EXPECT_EQ(single.summary.gallery_templates, 3);
  EXPECT_DOUBLE_EQ(single.summary.cmc[0].second, 0.6);
  EXPECT_DOUBLE_EQ(single.summary.cmc[1].second, 1.0);
  // FPIR .01 needs 100 non-mated probes: not reported (NaN), though computable.
  EXPECT_TRUE(std::isnan(single.summary.tpir_at_fpir[0].threshold));
  EXPECT_TRUE(std::isnan(tpir(single, 0)));
  double t = 0;
  EXPECT_DOUBLE_EQ(qe::open_set_tpir(single.outcomes, 0.01, {}, &t), 0.2);
  EXPECT_NEAR(t, 0.7, 1e-6);
  EXPECT_NEAR(single.summary.tpir_at_fpir[1].threshold, 0.5, 1e-6);
  EXPECT_NEAR(single.summary.tpir_at_fpir[2].threshold, 0.1, 1e-6);
  EXPECT_DOUBLE_EQ(tpir(single, 1), 0.4);
  EXPECT_DOUBLE_EQ(tpir(single, 2), 0.6);
  EXPECT_EQ(single.probe_template, (std::vector<int64_t>{21, 22, 23, 24, 25, 26, 27, 28}));
  EXPECT_EQ(single.outcomes.rank, (std::vector<int64_t>{1, 2, 2, 1, 1, 0, 0, 0}));
  EXPECT_EQ(single.hits_at_rank(1), (std::vector<double>{1, 0, 0, 1, 1}));
  EXPECT_EQ(single.open_set_hits(0.34), (std::vector<double>{1, 0, 0, 1, 0}));
  EXPECT_NEAR(single.outcomes.top_score[6], 0.7, 1e-6);

  // Surveillance-to-booking: booking templates fuse to e1 (A), e2 (B), e4 (C).
  //   21 rank 1 (.8), 22 rank 2, 23 B .28 rank 1, 24 C .8 rank 1, 25 C .8 rank 1 -> rank-1 4/5
  //   non-mated tops: 26 .866 (C), 27 .714 (C), 28 .995 (C)
  // Thresholds .995, .866, .714: no mate above the first two; 21, 24, 25 (.8) above .714 -> 3/5.
  const qe::IjbsProtocolResult& booking = *r.find("surveillance_to_booking");
  EXPECT_DOUBLE_EQ(booking.summary.cmc[0].second, 0.8);
  EXPECT_EQ(booking.outcomes.rank, (std::vector<int64_t>{1, 2, 1, 1, 1, 0, 0, 0}));
  EXPECT_DOUBLE_EQ(qe::open_set_tpir(booking.outcomes, 0.01), 0.0);
  EXPECT_DOUBLE_EQ(tpir(booking, 1), 0.0);
  EXPECT_DOUBLE_EQ(tpir(booking, 2), 0.6);

  // Surveillance-to-surveillance with per-row galleries (videos 31 = A, 32 = B):
  //   21 A vs {31, 32}: rank 1, .8     23 B vs {32}: rank 1, .28
  //   24 C vs {31, 32}: non-mated (C has no gallery video), top 0     27 X: non-mated, top .7
  // Thresholds: FPIR .01, .34 -> .7 (k = 0) -> {21}: 1/2; FPIR .7 -> 0 (k = 1) -> {21, 23}: 1.
  const qe::IjbsProtocolResult& s2s = *r.find("surveillance_to_surveillance");
  EXPECT_EQ(s2s.summary.mated_probes, 2);
  EXPECT_EQ(s2s.summary.nonmated_probes, 2);
  EXPECT_EQ(s2s.summary.gallery_templates, 2);
  EXPECT_EQ(s2s.outcomes.mated, (std::vector<uint8_t>{1, 1, 0, 0}));
  EXPECT_DOUBLE_EQ(s2s.summary.cmc[0].second, 1.0);
  EXPECT_DOUBLE_EQ(qe::open_set_tpir(s2s.outcomes, 0.01), 0.5);
  EXPECT_TRUE(std::isnan(tpir(s2s, 1)));  // 2 non-mated probes cannot resolve FPIR .34
  EXPECT_DOUBLE_EQ(qe::open_set_tpir(s2s.outcomes, 0.34), 0.5);
  EXPECT_DOUBLE_EQ(tpir(s2s, 2), 1.0);
  EXPECT_NEAR(s2s.outcomes.top_score[2], 0.0, 1e-6);

  const json j = qe::to_json(r, true);
  EXPECT_EQ(j["protocols"][0]["protocol"], "surveillance_to_single");
  EXPECT_DOUBLE_EQ(j["protocols"][0]["cmc"]["top1"].get<double>(), 0.6);
  EXPECT_EQ(j["protocols"][2]["per_probe"]["rank"], json({1, 1, 0, 0}));
  EXPECT_TRUE(j["protocols"][2]["per_probe"]["mate_score"][2].is_null());
}

TEST(EvalIjbs, OpenSetProbesNeverCountAsHits) {
  // Non-mated probes that score higher than any mate: they fill the top of the
  // non-mated list (raising the threshold) and never enter the CMC or TPIR numerators.
  TempDir tmp;
  write_text(tmp / "m/templates.csv",
             "TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n1,1,a.jpg,single\n2,2,b.jpg,single\n"
             "5,7,p.jpg,video\n6,8,q.jpg,video\n7,1,r.jpg,video\n");
  write_text(tmp / "m/surveillance_to_single.csv", "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n5,1;2\n6,1;2\n");
  const qe::IjbsMeta meta = qe::load_ijbs_meta(tmp / "m");
  // 5 and 6 are identical to gallery templates 1 and 2 (score 1) but belong to other subjects.
  torch::Tensor f = torch::tensor({{1.f, 0.f}, {0.f, 1.f}, {1.f, 0.f}, {0.f, 1.f}, {1.f, 0.f}});
  const std::vector<std::string> files{"a.jpg", "b.jpg", "p.jpg", "q.jpg", "r.jpg"};
  qe::IjbsOptions two;  // FPIRs that 2 non-mated probes resolve
  two.fpirs = {0.5, 1.0};
  qe::IjbsResult r = qe::evaluate_ijbs(meta, f, torch::ones({5}), files, two);
  const auto& p = r.protocols.at(0);
  EXPECT_EQ(p.summary.mated_probes, 0);
  EXPECT_EQ(p.summary.nonmated_probes, 2);
  for (auto [k, v] : p.summary.cmc) EXPECT_EQ(v, 0.0) << k;
  for (const auto& t : p.summary.tpir_at_fpir) EXPECT_EQ(t.tpir, 0.0);
  EXPECT_TRUE(p.hits_at_rank(1).empty());
  EXPECT_EQ(p.outcomes.rank, (std::vector<int64_t>{0, 0}));
  // The same perfect scores, now with a mate (7 = subject 1): rank 1, but no
  // TPIR at FPIR 1 %: the non-mated probes' top score (1.0) is the threshold.
  write_text(tmp / "m/surveillance_to_single.csv", "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n5,1;2\n6,1;2\n7,1;2\n");
  r = qe::evaluate_ijbs(qe::load_ijbs_meta(tmp / "m"), f, torch::ones({5}), files);
  EXPECT_DOUBLE_EQ(r.protocols[0].summary.cmc[0].second, 1.0);
  EXPECT_DOUBLE_EQ(qe::open_set_tpir(r.protocols[0].outcomes, 0.01), 0.0);
}

TEST(EvalIjbs, FusionModesAgainstHandComputedTemplates) {
  // One template of three frames: e1 (norm 3), e2 (norm 1), (e1 + e3)/sqrt 2 (norm 2).
  const float r = 1.f / std::sqrt(2.f);
  torch::Tensor f = torch::tensor({{1.f, 0.f, 0.f}, {0.f, 1.f, 0.f}, {r, 0.f, r}, {0.f, 0.f, 1.f}});
  torch::Tensor n = torch::tensor({3.f, 1.f, 2.f, 7.f});
  const std::vector<int64_t> rows{0, 1, 2, 3}, tid{5, 5, 5, 6};
  auto unit = [](std::vector<float> v) {
    float s = 0;
    for (float x : v) s += x * x;
    for (float& x : v) x /= std::sqrt(s);
    return v;
  };
  auto check = [&](const std::string& fusion, const std::vector<float>& want) {
    const qe::Templates t = qe::fuse_templates(f, n, rows, tid, qe::parse_fusion(fusion));
    ASSERT_EQ(t.ids, (std::vector<int64_t>{5, 6})) << fusion;
    const torch::Tensor row = t.features[t.row(5)];
    for (int d = 0; d < 3; ++d) EXPECT_NEAR(row[d].item<float>(), want[static_cast<size_t>(d)], 1e-6) << fusion << " d" << d;
    EXPECT_NEAR(t.features[t.row(6)][2].item<float>(), 1.f, 1e-6) << fusion;  // a one-frame template is its frame
  };
  check("mean", unit({1 + r, 1, r}));              // e1 + e2 + (e1 + e3)/sqrt 2
  check("norm", unit({3 + 2 * r, 1, 2 * r}));      // 3 e1 + 1 e2 + 2 (e1 + e3)/sqrt 2
  check("topk:1", {1, 0, 0});                      // the norm-3 frame
  check("topk:2", unit({1 + r, 0, r}));            // norms 3 and 2
  check("topk:9", unit({1 + r, 1, r}));            // fewer frames than K: all, = mean
  EXPECT_EQ(qe::parse_fusion("topk:4").name(), "topk:4");
  EXPECT_EQ(qe::parse_fusion("norm").name(), "norm");
  for (const char* bad : {"topk:0", "topk:", "topk:x", "median", "topk:3x"})
    EXPECT_THROW(qe::parse_fusion(bad), qface::Error) << bad;
}

TEST(EvalIjbs, FusionChangesTheOutcomeAsHandComputed) {
  // Probe video of subject 1: a sharp frame near g1 (high norm) and a blurred
  // frame near g2 (low norm). Mean fusion: normalize(f1 + f2) with f1 = (.8, .6),
  // f2 = (0, 1): (.8, 1.6) -> closer to g2 -> rank 2. Norm fusion: 10 f1 + 1 f2
  // = (8, 7) -> g1 -> rank 1. topk:1 keeps f1 -> rank 1.
  TempDir tmp;
  write_text(tmp / "m/templates.csv",
             "TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n1,1,g1.jpg,single\n2,2,g2.jpg,single\n"
             "3,1,v/1.jpg,video\n3,1,v/2.jpg,video\n");
  write_text(tmp / "m/surveillance_to_single.csv", "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n3,1;2\n");
  const qe::IjbsMeta meta = qe::load_ijbs_meta(tmp / "m");
  torch::Tensor f = torch::tensor({{1.f, 0.f}, {0.f, 1.f}, {0.8f, 0.6f}, {0.f, 1.f}});
  torch::Tensor n = torch::tensor({20.f, 20.f, 10.f, 1.f});
  const std::vector<std::string> files{"g1.jpg", "g2.jpg", "v/1.jpg", "v/2.jpg"};
  for (auto [fusion, rank] : std::vector<std::pair<std::string, int64_t>>{{"mean", 2}, {"norm", 1}, {"topk:1", 1}}) {
    qe::IjbsOptions o;
    o.fusion = qe::parse_fusion(fusion);
    const qe::IjbsResult r = qe::evaluate_ijbs(meta, f, n, files, o);
    EXPECT_EQ(r.fusion, fusion);
    EXPECT_EQ(r.protocols[0].outcomes.rank[0], rank) << fusion;
  }
}

TEST(EvalIjbs, PairedBootstrapsBetweenFusions) {
  TempDir tmp;
  HandSet h = write_hand_set(tmp.path());
  const qe::IjbsMeta meta = qe::load_ijbs_meta(h.meta);
  const qe::IjbsResult a = qe::evaluate_ijbs(meta, h.features, h.norms, h.files, hand_options("mean"));
  const qe::IjbsResult b = qe::evaluate_ijbs(meta, h.features, h.norms, h.files, hand_options("norm"));
  // Every frame of a template points the same way: both fusions agree, the difference is exactly 0.
  const qe::Interval d1 = qe::paired_rank_difference(a.protocols[0], b.protocols[0], 1, {.resamples = 200});
  EXPECT_EQ(d1.estimate, 0.0);
  EXPECT_EQ(d1.lo, 0.0);
  EXPECT_EQ(d1.hi, 0.0);
  EXPECT_EQ(d1.items, 5);  // the mated probes
  const qe::Interval d2 = qe::paired_tpir_difference(a.protocols[0], b.protocols[0], 0.34, {.resamples = 200});
  EXPECT_EQ(d2.estimate, 0.0);
  EXPECT_EQ(d2.items, 8);  // all probes: the threshold is re-estimated per draw
  // Against a system whose rank-1 hits are all 0: the estimate is the rank-1 rate.
  qe::IjbsProtocolResult worse = a.protocols[0];
  for (auto& k : worse.outcomes.rank)
    if (k > 0) k = 3;
  const qe::Interval d3 = qe::paired_rank_difference(a.protocols[0], worse, 1, {.resamples = 200});
  EXPECT_DOUBLE_EQ(d3.estimate, 0.6);
  EXPECT_DOUBLE_EQ(qe::paired_tpir_difference(a.protocols[0], worse, 0.34, {.resamples = 200}).estimate, 0.4);
  EXPECT_THROW(qe::paired_rank_difference(a.protocols[0], a.protocols[2], 1), qface::Error);
}

TEST(EvalIjbs, MatchesFilesByPathSuffix) {
  TempDir tmp;
  write_text(tmp / "m/templates.csv",
             "TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n1,1,images/v1/0001.jpg,video\n2,2,images/v2/0001.jpg,video\n"
             "3,3,images/s.jpg,single\n");
  write_text(tmp / "m/surveillance_to_single.csv", "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n1,3\n2,3\n");
  const qe::IjbsMeta meta = qe::load_ijbs_meta(tmp / "m");
  // Same base names in two folders; files.txt with an absolute prefix, or relative to images/.
  EXPECT_EQ(qe::match_files(meta, {"/x/m/images/s.jpg", "/x/m/images/v2/0001.jpg", "/x/m/images/v1/0001.jpg"}),
            (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(qe::match_files(meta, {"v1/0001.jpg", "s.jpg", "v2/0001.jpg"}), (std::vector<int64_t>{0, 2, 1}));
  try {
    qe::match_files(meta, {"v1/0001.jpg", "s.jpg"});
    ADD_FAILURE() << "missing file accepted";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("templates.csv:3: 'images/v2/0001.jpg' has no row"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(qe::match_files(meta, {"/a/images/v1/0001.jpg", "/b/images/v1/0001.jpg", "s.jpg", "v2/0001.jpg"}),
               qface::Error);  // two candidates for one FILENAME
}

TEST(EvalIjbs, MalformedFilesGiveOneLineErrorsNamingFileAndLine) {
  const std::string good_templates =
      "TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n1,1,a.jpg,single\n2,1,b.jpg,video\n3,2,c.jpg,video\n";
  const std::string good_protocol = "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n2,1\n3,1\n";
  struct Case {
    std::string templates, protocol, expect;
  };
  const std::vector<Case> cases{
      {"TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,1,a.jpg\n", good_protocol, "templates.csv:1: header must name the columns"},
      {"TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n1,1,a.jpg,single\n2,1,b.jpg,photo\n", good_protocol,
       "templates.csv:3: MEDIA 'photo' is not single, booking or video"},
      {"TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\nx,1,a.jpg,single\n", good_protocol,
       "templates.csv:2: TEMPLATE_ID 'x' is not an integer"},
      {"TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n1,1,a.jpg,single\n\n1,2,b.jpg,single\n", good_protocol,
       "templates.csv:4: template 1 has two subjects"},
      {"TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n1,1,a.jpg,single\n1,1,b.jpg,video\n", good_protocol,
       "templates.csv:3: template 1 mixes media single and video"},
      {"TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n1,1,a.jpg\n", good_protocol, "templates.csv:2: 3 fields, expected 4"},
      {good_templates, "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n2,1\n3,1;99\n",
       "surveillance_to_single.csv:3: gallery template 99 is not in templates.csv"},
      {good_templates, "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n2,1,3\n",
       "surveillance_to_single.csv:2: 3 fields, expected 2"},
      {good_templates, "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n2,1;;3\n",
       "surveillance_to_single.csv:2: empty gallery template id"},
      {good_templates, "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n2,1;2\n",
       "surveillance_to_single.csv:2: probe template 2 is in its own gallery"},
      {good_templates, "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n7,1\n",
       "surveillance_to_single.csv:2: probe template 7 is not in templates.csv"},
      {good_templates, "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n2,1;1\n",
       "surveillance_to_single.csv:2: gallery template 1 is listed twice"},
      {good_templates, "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n2,one\n",
       "surveillance_to_single.csv:2: gallery template id 'one' is not an integer"},
      {good_templates, "PROBE,GALLERY\n2,1\n", "surveillance_to_single.csv:1: header must name the columns"},
      {good_templates, "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n", "surveillance_to_single.csv: no probe rows"},
  };
  TempDir tmp;
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path m = tmp / ("m" + std::to_string(i));
    write_text(m / "templates.csv", cases[i].templates);
    write_text(m / "surveillance_to_single.csv", cases[i].protocol);
    try {
      qe::load_ijbs_meta(m);
      ADD_FAILURE() << "case " << i << " accepted";
    } catch (const qface::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(cases[i].expect), std::string::npos) << "case " << i << ": " << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
  // No protocol file at all.
  write_text(tmp / "none/templates.csv", good_templates);
  EXPECT_THROW(qe::load_ijbs_meta(tmp / "none"), qface::Error);
}

TEST(EvalIjbs, CommandLineAndReport) {
  TempDir tmp;
  HandSet h = write_hand_set(tmp.path());
  const fs::path feats = tmp / "runs/model_a/ijbs_features";
  fs::create_directories(feats);
  qface::write_npy(feats / "embeddings.npy", h.features);
  qface::write_npy(feats / "norms.npy", h.norms);
  std::string list;
  for (const auto& f : h.files) list += f + "\n";
  write_text(feats / "files.txt", list);
  const fs::path out = tmp / "runs/model_a/ijbs.json";
  auto r = run_qface({"eval", "ijbs", "--meta", h.meta.string(), "--features", feats.string(), "--fusion", "norm",
                      "--per-probe", "--name", "model_a", "--out", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(qface::read_file(out));
  EXPECT_EQ(j["kind"], "eval.ijbs");
  EXPECT_EQ(j["fusion"], "norm");
  EXPECT_EQ(j["protocols"].size(), 3u);
  EXPECT_DOUBLE_EQ(j["protocols"][0]["cmc"]["top1"].get<double>(), 0.6);
  EXPECT_EQ(j["protocols"][0]["per_probe"]["rank"].size(), 8u);
  const fs::path html = tmp / "report.html";
  r = run_qface({"report", "--runs", (tmp / "runs/model_a").string(), "--out", html.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string page = qface::read_file(html);
  EXPECT_NE(page.find("IJB-S surveillance identification"), std::string::npos);
  EXPECT_NE(page.find("surveillance_to_booking"), std::string::npos);
  EXPECT_NE(page.find("<td>60.00</td>"), std::string::npos);  // S2Single rank-1

  // Bad input: malformed protocol (file:line on stderr, exit 1), bad fusion.
  write_text(h.meta / "surveillance_to_booking.csv", "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n21,11;x\n");
  r = run_qface({"eval", "ijbs", "--meta", h.meta.string(), "--features", feats.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("surveillance_to_booking.csv:2:"), std::string::npos) << r.err;
  write_text(h.meta / "surveillance_to_booking.csv", kS2Booking);
  r = run_qface({"eval", "ijbs", "--meta", h.meta.string(), "--features", feats.string(), "--fusion", "topk:0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("topk:0"), std::string::npos) << r.err;
}
