// Metric functions of qface::eval on hand-built score sets with known answers.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "qface/core/error.h"
#include "qface/eval/cluster.h"
#include "qface/eval/features.h"
#include "qface/eval/ijb.h"
#include "qface/eval/quality.h"
#include "qface/eval/rank.h"
#include "qface/eval/roc.h"
#include "qface/eval/verify.h"
#include "qface/core/fs.h"
#include "tests/support/testing.h"

namespace qe = qface::eval;

namespace {

// Full-sort reference of the read-out rule (sklearn roc_curve without
// dropping points + np.argmin), written independently of roc_at_far.
std::vector<double> naive_tar(const std::vector<float>& s, const std::vector<uint8_t>& y, const std::vector<double>& fars) {
  std::vector<size_t> o(s.size());
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(), [&](size_t a, size_t b) { return s[a] > s[b]; });
  double P = 0, N = 0;
  for (auto v : y) (v ? P : N) += 1;
  std::vector<double> fpr{0}, tpr{0};
  double tp = 0, fp = 0;
  for (size_t i = 0; i < o.size(); ++i) {
    (y[o[i]] ? tp : fp) += 1;
    if (i + 1 == o.size() || s[o[i + 1]] != s[o[i]]) {
      fpr.push_back(fp / N);
      tpr.push_back(tp / P);
    }
  }
  std::vector<double> out;
  for (double f : fars) {
    size_t best = 0;
    for (size_t i = 1; i < fpr.size(); ++i)
      if (std::abs(fpr[i] - f) < std::abs(fpr[best] - f)) best = i;
    out.push_back(tpr[best]);
  }
  return out;
}

}  // namespace

TEST(EvalRoc, KnownSmallRoc) {
  // genuine 0.9 0.8 0.7 0.4; impostor 0.85 0.5 0.3 0.2 0.1
  std::vector<float> s{0.9f, 0.85f, 0.8f, 0.7f, 0.5f, 0.4f, 0.3f, 0.2f, 0.1f};
  std::vector<uint8_t> y{1, 0, 1, 1, 0, 1, 0, 0, 0};
  std::vector<double> fars{0.01, 0.2, 0.3, 0.4, 1.0};
  qe::RocResult r = qe::roc_at_far(s, y, fars);
  ASSERT_EQ(r.genuine, 4);
  ASSERT_EQ(r.impostor, 5);
  EXPECT_DOUBLE_EQ(r.tar_at_far[0].tar, 0.0);   // nearest point is the start (0, 0)
  EXPECT_DOUBLE_EQ(r.tar_at_far[1].tar, 0.25);  // one impostor accepted at 0.85: only 0.9 is above
  EXPECT_DOUBLE_EQ(r.tar_at_far[1].threshold, 0.85f);
  EXPECT_DOUBLE_EQ(r.tar_at_far[2].tar, 0.25);  // FPR 0.2 and 0.4 equally near 0.3: the first (0.2)
  EXPECT_DOUBLE_EQ(r.tar_at_far[3].tar, 0.75);  // threshold 0.5: 0.9 0.8 0.7
  EXPECT_DOUBLE_EQ(r.tar_at_far[4].tar, 1.0);
  EXPECT_DOUBLE_EQ(r.tar_at_far[4].fpr, 1.0);
}

TEST(EvalRoc, TiesAcrossClassesCountTogether) {
  std::vector<float> s{0.5f, 0.5f, 0.5f, 0.1f};
  std::vector<uint8_t> y{1, 1, 0, 0};
  std::vector<double> fars{0.5};
  qe::RocResult r = qe::roc_at_far(s, y, fars);
  EXPECT_DOUBLE_EQ(r.tar_at_far[0].tar, 1.0);
  EXPECT_DOUBLE_EQ(r.tar_at_far[0].fpr, 0.5);
}

TEST(EvalRoc, PerfectSeparation) {
  std::vector<float> s;
  std::vector<uint8_t> y;
  for (int i = 0; i < 1000; ++i) s.push_back(-1.0f + 0.001f * i), y.push_back(0);
  for (int i = 0; i < 50; ++i) s.push_back(0.5f + 0.001f * i), y.push_back(1);
  std::vector<double> fars{1e-4, 1e-3, 1e-2};
  qe::RocResult r = qe::roc_at_far(s, y, fars);
  EXPECT_DOUBLE_EQ(r.tar_at_far[0].tar, 0.0);  // FPR 0 is nearest: the start point
  EXPECT_DOUBLE_EQ(r.tar_at_far[1].tar, 1.0);
  EXPECT_DOUBLE_EQ(r.tar_at_far[2].tar, 1.0);
  EXPECT_FALSE(r.curve.empty());
}

TEST(EvalRoc, MatchesFullSortReferenceWithTies) {
  std::mt19937 rng(3);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> s;
  std::vector<uint8_t> y;
  for (int i = 0; i < 20000; ++i) {
    const bool gen = i % 7 == 0;
    float v = g(rng) + (gen ? 2.0f : 0.0f);
    s.push_back(std::round(v * 50) / 50);  // coarse: many ties
    y.push_back(gen);
  }
  std::vector<double> fars{1e-4, 1e-3, 3e-3, 1e-2, 5e-2, 1e-1};
  qe::RocResult r = qe::roc_at_far(s, y, fars);
  std::vector<double> ref = naive_tar(s, y, fars);
  for (size_t k = 0; k < fars.size(); ++k) EXPECT_DOUBLE_EQ(r.tar_at_far[k].tar, ref[k]) << fars[k];
}

TEST(EvalRoc, ThresholdAtFmr) {
  std::vector<float> imp{0.9f, 0.1f, 0.5f, 0.3f, 0.7f, 0.2f, 0.4f, 0.6f, 0.8f, 0.0f};
  EXPECT_FLOAT_EQ(qe::threshold_at_fmr(imp, 0.0), 0.9f);  // accept nothing: > max
  EXPECT_FLOAT_EQ(qe::threshold_at_fmr(imp, 0.1), 0.8f);  // one above
  EXPECT_FLOAT_EQ(qe::threshold_at_fmr(imp, 0.25), 0.7f);
  EXPECT_TRUE(std::isinf(qe::threshold_at_fmr(imp, 1.0)));
}

TEST(EvalVerify, PerfectSeparationFirstBestThreshold) {
  std::vector<double> d;
  std::vector<uint8_t> same;
  for (int i = 0; i < 100; ++i) {
    same.push_back(i % 2 == 0);
    d.push_back(i % 2 == 0 ? 0.5 : 1.5);
  }
  qe::VerifyResult r = qe::verify_distances(d, same);
  EXPECT_DOUBLE_EQ(r.accuracy_mean, 1.0);
  EXPECT_DOUBLE_EQ(r.accuracy_std, 0.0);
  ASSERT_EQ(r.fold_threshold.size(), 10u);
  for (double t : r.fold_threshold) EXPECT_NEAR(t, 0.51, 1e-12);  // first threshold with 0.5 < t
  // 50 impostors, 5 per fold: FAR 1e-3 and 1e-2 need 1000 and 100 per fold.
  ASSERT_EQ(r.val.size(), 2u);
  EXPECT_FALSE(r.val[0].resolved);
  EXPECT_EQ(r.val[0].min_fold_impostors, 5);
  EXPECT_TRUE(r.tar_json(1e-3).is_null());
  EXPECT_EQ(r.tar_text(1e-2), "—");
  for (int p = 0; p < 100; ++p) EXPECT_EQ(r.pair_correct[p], 1);
}

TEST(EvalVerify, TarAtFarIsReportedOnlyWhereTheImpostorsResolveIt) {
  // 2000 pairs, 1000 impostors, 100 per fold: FAR 1e-2 resolved, 1e-3 not.
  std::vector<double> d;
  std::vector<uint8_t> same;
  for (int i = 0; i < 2000; ++i) {
    same.push_back(i % 2 == 0);
    // Genuine pairs spread over 0.2..1.8, impostors over 1.0..2.0 (one per
    // 0.001), permuted so that every fold sees the whole spread.
    const double u = ((i / 2) * 7919 % 1000) / 1000.0;
    d.push_back(i % 2 == 0 ? 0.2 + 1.6 * u : 1.0 + u);
  }
  qe::VerifyOptions o;
  o.val_fars = {1e-3, 1e-2, 0.5};
  qe::VerifyResult r = qe::verify_distances(d, same, o);
  ASSERT_EQ(r.val.size(), 3u);
  EXPECT_FALSE(r.val[0].resolved);
  EXPECT_TRUE(r.val[1].resolved);
  EXPECT_TRUE(r.val[2].resolved);
  EXPECT_EQ(r.val[1].min_fold_impostors, 100);
  EXPECT_TRUE(r.tar_json(1e-3).is_null());
  EXPECT_FALSE(r.tar_json(1e-2).is_null());
  // FAR 0.5: the threshold where half the impostors (1.0..1.5) are accepted
  // accepts the genuine pairs below 1.5, i.e. (1.5 - 0.2) / 1.6 = 81.25 % of them.
  EXPECT_NEAR(r.val[2].tar_mean, 0.8125, 0.01);
  EXPECT_NEAR(r.val[2].far_mean, 0.5, 0.01);
  const nlohmann::json j = qe::to_json(r);
  EXPECT_TRUE(j["tar_at_far_folds"][0]["tar_mean"].is_null());
  EXPECT_FALSE(j["tar_at_far_folds"][0]["resolved"].get<bool>());
  EXPECT_TRUE(j["tar_at_far_folds"][1]["resolved"].get<bool>());
}

TEST(EvalVerify, KnownFoldThresholdAndAccuracy) {
  // Every fold: same at 0.3 and 0.9, different at 0.8 and 1.2. Best accuracy
  // 3/4 is first reached at t = 0.31 (0.3 accepted, 0.8 rejected).
  std::vector<double> d;
  std::vector<uint8_t> same;
  for (int f = 0; f < 10; ++f) {
    for (auto [dist, s] : {std::pair{0.3, 1}, {0.9, 1}, {1.2, 0}, {0.8, 0}}) {
      d.push_back(dist);
      same.push_back(static_cast<uint8_t>(s));
    }
  }
  qe::VerifyResult r = qe::verify_distances(d, same);
  for (double t : r.fold_threshold) EXPECT_NEAR(t, 0.31, 1e-12);
  EXPECT_DOUBLE_EQ(r.accuracy_mean, 0.75);
}

TEST(EvalVerify, FoldsAreContiguousAndTheOddOneDiffers) {
  // 10 folds of 4 pairs; fold 9 is perfectly separable at 0.61..1.0 but the
  // nine others prefer the threshold 0.31: fold 9's test threshold is then
  // 0.31 (from the 9 others) and its accuracy 3/4, while the other folds keep 0.31.
  std::vector<double> d;
  std::vector<uint8_t> same;
  for (int f = 0; f < 10; ++f) {
    const bool odd = f == 9;
    for (auto [dist, s] : {std::pair{0.3, 1}, {odd ? 0.6 : 0.9, 1}, {1.2, 0}, {odd ? 1.0 : 0.8, 0}}) {
      d.push_back(dist);
      same.push_back(static_cast<uint8_t>(s));
    }
  }
  qe::VerifyResult r = qe::verify_distances(d, same);
  EXPECT_NEAR(r.fold_threshold[9], 0.31, 1e-12);
  EXPECT_DOUBLE_EQ(r.fold_accuracy[9], 0.75);
  for (int f = 0; f < 9; ++f) EXPECT_DOUBLE_EQ(r.fold_accuracy[f], 0.75);
}

TEST(EvalVerify, MatchesBruteForceOnRandomPairs) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> u(0, 4);
  const int n = 607;  // not a multiple of 10: folds of 61 and 60
  std::vector<double> d(n);
  std::vector<uint8_t> same(n);
  for (int i = 0; i < n; ++i) {
    same[i] = rng() % 2;
    d[i] = same[i] ? u(rng) * 0.6 : 0.8 + u(rng) * 0.8;
  }
  qe::VerifyResult r = qe::verify_distances(d, same);
  // Brute force: contiguous folds, first best threshold on the others.
  std::vector<int> starts{0};
  for (int f = 0; f < 10; ++f) starts.push_back(starts.back() + n / 10 + (f < n % 10 ? 1 : 0));
  EXPECT_EQ(starts[1], 61);
  double mean = 0;
  for (int f = 0; f < 10; ++f) {
    int best_i = 0, best_c = -1;
    for (int i = 0; i < 400; ++i) {
      const double t = i * 0.01;
      int c = 0;
      for (int p = 0; p < n; ++p)
        if (p < starts[f] || p >= starts[f + 1]) c += ((d[p] < t) == (same[p] != 0));
      if (c > best_c) best_c = c, best_i = i;
    }
    int c = 0;
    for (int p = starts[f]; p < starts[f + 1]; ++p) c += ((d[p] < best_i * 0.01) == (same[p] != 0));
    EXPECT_NEAR(r.fold_threshold[f], best_i * 0.01, 1e-12);
    EXPECT_DOUBLE_EQ(r.fold_accuracy[f], double(c) / (starts[f + 1] - starts[f]));
    mean += double(c) / (starts[f + 1] - starts[f]) / 10;
  }
  EXPECT_NEAR(r.accuracy_mean, mean, 1e-12);
}

TEST(EvalVerify, EmbeddingsAndFlipFusion) {
  torch::manual_seed(0);
  torch::Tensor e = qe::l2_normalize(torch::randn({40, 16}));
  // Make pairs 0, 2, 4... identical (genuine) and the rest random.
  std::vector<uint8_t> same;
  for (int i = 0; i < 20; ++i) {
    same.push_back(i % 2 == 0);
    if (i % 2 == 0) e[2 * i + 1] = e[2 * i];
  }
  qe::VerifyResult r = qe::verify_embeddings(e, same);
  EXPECT_DOUBLE_EQ(r.accuracy_mean, 1.0);
  // Fusion: normalize(e n + e_f n_f); with e_f = e it returns e.
  torch::Tensor n = torch::rand({40}) + 1;
  auto [f, fn] = qface::fuse_flip(e, n, e, n);
  EXPECT_TRUE(torch::allclose(f, e, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(fn, 2 * n, 1e-5, 1e-5));
  // A heavy flip feature dominates: weights by norm.
  torch::Tensor other = qe::l2_normalize(torch::randn({40, 16}));
  auto [g, gn] = qface::fuse_flip(e, torch::full({40}, 1e-6), other, torch::ones({40}));
  EXPECT_TRUE(torch::allclose(g, other, 1e-4, 1e-5));
  EXPECT_THROW(qe::verify_embeddings(e, std::vector<uint8_t>(19, 1)), qface::Error);
}

TEST(EvalIjb, TemplatesAverageMediaThenSum) {
  // Template 7: media 1 = {a, b}, media 2 = {c}: normalize((a+b)/2 + c).
  torch::Tensor f = torch::tensor({{1.f, 0.f, 0.f}, {0.f, 1.f, 0.f}, {0.f, 0.f, 1.f}, {1.f, 0.f, 0.f}});
  torch::Tensor n = torch::tensor({1.f, 2.f, 3.f, 4.f});
  qe::Templates t = qe::build_templates(f, n, {0, 1, 2, 3}, {7, 7, 7, 9}, {1, 1, 2, 5}, {});
  ASSERT_EQ(t.ids.size(), 2u);
  torch::Tensor want = torch::tensor({0.5f, 0.5f, 1.f});
  want = want / want.norm();
  EXPECT_TRUE(torch::allclose(t.features[t.row(7)], want, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(t.features[t.row(9)], torch::tensor({1.f, 0.f, 0.f})));
  // Norm weighting: (1a + 2b)/2 + 3c.
  qe::TemplateOptions o;
  o.norm_weighted = true;
  qe::Templates tn = qe::build_templates(f, n, {0, 1, 2, 3}, {7, 7, 7, 9}, {1, 1, 2, 5}, {}, o);
  torch::Tensor w = torch::tensor({0.5f, 1.f, 3.f});
  EXPECT_TRUE(torch::allclose(tn.features[tn.row(7)], w / w.norm(), 1e-6, 1e-6));
  // Pair scores: cosine; rows looked up by id.
  std::vector<int64_t> ids{7, 9, 42};
  qe::Buffer<int32_t> rows = qe::template_rows(t, ids);
  EXPECT_EQ(rows[2], -1);
  std::vector<int32_t> r1{rows[0]}, r2{rows[1]};
  qe::Buffer<float> s = qe::pair_scores(t.features, r1, r2);
  EXPECT_NEAR(s[0], 0.5 / want.norm().item<float>() * want.norm().item<float>() * (1 / std::sqrt(1.5f)), 1e-6);
}

TEST(EvalIjb, TiledPairScoresMatchDirect) {
  torch::manual_seed(1);
  const int64_t T = 1500;
  torch::Tensor tf = qe::l2_normalize(torch::randn({T, 64}));
  std::mt19937 rng(5);
  const int64_t P = (1 << 20) + 123;  // above the tiling cut-off
  std::vector<int32_t> r1(P), r2(P);
  for (int64_t p = 0; p < P; ++p) r1[p] = rng() % T, r2[p] = rng() % T;
  qe::Buffer<float> s = qe::pair_scores(tf, r1, r2);
  const float* F = tf.data_ptr<float>();
  for (int64_t p = 0; p < P; p += 997) {
    double want = 0;
    for (int d = 0; d < 64; ++d) want += double(F[r1[p] * 64 + d]) * F[r2[p] * 64 + d];
    ASSERT_NEAR(s[p], want, 1e-5) << p;
  }
}

TEST(EvalIjb, IdentificationCmcAndTpir) {
  // Gallery: subjects 1, 2, 3 as unit axes. Probes: near 1 (rank 1), near 2
  // but closer to 3 (rank 2), subject 9 (non-mated, top score 0.6).
  torch::Tensor g = torch::eye(3);
  torch::Tensor p = torch::tensor({{0.9f, 0.1f, 0.f}, {0.f, 0.6f, 0.8f}, {0.6f, 0.f, 0.f}});
  qe::IdentificationResult r = qe::identify(p, {1, 2, 9}, g, {1, 2, 3}, {1, 2}, {0.0, 1.0});
  EXPECT_EQ(r.mated_probes, 2);
  EXPECT_EQ(r.nonmated_probes, 1);
  EXPECT_DOUBLE_EQ(r.cmc[0].second, 0.5);
  EXPECT_DOUBLE_EQ(r.cmc[1].second, 1.0);
  // FPIR 0 needs infinitely many non-mated probes: not reported.
  EXPECT_TRUE(std::isnan(r.tpir_at_fpir[0].tpir));
  EXPECT_TRUE(std::isnan(r.tpir_at_fpir[0].threshold));
  // Computed all the same by open_set_tpir: threshold = top non-mated score
  // 0.6; probe 1 (0.9 > 0.6, rank 1) counts.
  const qe::ProbeOutcomes o = qe::score_probes(p, {1, 2, 9}, g, {1, 2, 3});
  double t = 0;
  EXPECT_DOUBLE_EQ(qe::open_set_tpir(o, 0.0, {}, &t), 0.5);
  EXPECT_FLOAT_EQ(t, 0.6f);
  // FPIR 1 (one non-mated probe resolves it): no threshold; still rank 1 is
  // required: probe 2 is rank 2.
  EXPECT_DOUBLE_EQ(r.tpir_at_fpir[1].tpir, 0.5);
}

TEST(EvalRank, TinyFaceRanksWithDistractors) {
  torch::Tensor gallery = torch::eye(4).slice(0, 0, 2);  // labels a, b on axes 0, 1
  torch::Tensor distract = torch::tensor({{0.f, 0.f, 1.f, 0.f}, {0.7f, 0.7f, 0.f, 0.f}});
  torch::Tensor probe = qe::l2_normalize(torch::tensor({{1.f, 0.f, 0.f, 0.f}, {0.f, 0.6f, 0.8f, 0.f}, {0.f, 0.f, 0.f, 1.f}}));
  qe::RankResult r = qe::rank_identification(probe, {"a", "b", "z"}, gallery, {"a", "b"}, distract, {1, 2, 3});
  EXPECT_EQ(r.probes, 2);
  EXPECT_EQ(r.probes_without_mate, 1);
  // probe a: a=1.0 best -> rank 1. probe b: b=0.6, distractor axis2=0.8, mixed=0.42 -> rank 2.
  EXPECT_DOUBLE_EQ(r.rank_accuracy[0].second, 0.5);
  EXPECT_DOUBLE_EQ(r.rank_accuracy[1].second, 1.0);
}

TEST(EvalRank, ProbeBlocksDoNotChangeOutcomes) {
  // 7 probes in blocks of 3 (the last one short) against the whole set at once.
  torch::manual_seed(3);
  torch::Tensor gallery = qe::l2_normalize(torch::randn({6, 8}));
  torch::Tensor probe = qe::l2_normalize(torch::randn({7, 8}));
  const std::vector<int64_t> ps{0, 1, 2, 9, 1, 5, -1}, gs{0, 1, 2, 3, 4, 5};
  const qe::ProbeOutcomes all = qe::score_probes(probe, ps, gallery, gs);
  const qe::ProbeOutcomes blocks = qe::score_probes(probe, ps, gallery, gs, 3);
  EXPECT_EQ(blocks.mated, all.mated);
  EXPECT_EQ(blocks.rank, all.rank);
  for (int64_t p = 0; p < all.size(); ++p) {
    EXPECT_FLOAT_EQ(blocks.top_score[p], all.top_score[p]) << p;
    EXPECT_EQ(blocks.mate_score[p], all.mate_score[p]) << p;  // -inf where not mated
  }
  EXPECT_EQ(all.mated, (std::vector<uint8_t>{1, 1, 1, 0, 1, 1, 0}));
}

TEST(EvalQuality, AllPairsOfALabelledSet) {
  // Rows at 0, ~53 and 90 degrees; a, a, b: one genuine pair.
  torch::Tensor e = torch::tensor({{1.f, 0.f}, {0.6f, 0.8f}, {0.f, 1.f}});
  const qe::Comparisons c = qe::all_pair_comparisons(e, {"a", "a", "b"});
  EXPECT_EQ(c.a, (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(c.b, (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(c.genuine, (std::vector<uint8_t>{1, 0, 0}));
  ASSERT_EQ(c.score.size(), 3u);
  EXPECT_FLOAT_EQ(c.score[0], 0.6f);
  EXPECT_FLOAT_EQ(c.score[1], 0.f);
  EXPECT_FLOAT_EQ(c.score[2], 0.8f);
  EXPECT_THROW(qe::all_pair_comparisons(e, {"a", "b"}), qface::Error);
}

TEST(EvalQuality, BrisqueAsQualityIsItsNegation) {
  // BRISQUE: 0 best ... 100 worst; as a quality score higher must be better.
  EXPECT_EQ(qe::brisque_quality({12.5, 80.0, 0.0}), (std::vector<double>{-12.5, -80.0, -0.0}));
}

TEST(EvalQuality, EdcKnownCurveAndPauc) {
  // 4 genuine comparisons with pair qualities 0.1 0.2 0.3 0.4 and scores
  // 0.1 (error) 0.9 0.2 (error) 0.8; impostors at 0.0 and 0.5: threshold at
  // FMR 0 is 0.5 (accept > 0.5). FNMR: 2/4, then 1/3 (drop q 0.1), 1/2... wait
  // dropping q 0.2 (a success) leaves {0.2 err, 0.8} = 1/2, then {0.8} = 0.
  qe::Comparisons c;
  c.score = {0.1f, 0.9f, 0.2f, 0.8f, 0.0f, 0.5f};
  c.genuine = {1, 1, 1, 1, 0, 0};
  std::vector<double> pq{0.1, 0.2, 0.3, 0.4, 0.05, 0.9};
  qe::EdcResult e = qe::edc(c, pq, 0.0, 0.5);
  EXPECT_FLOAT_EQ(e.threshold, 0.5f);
  ASSERT_EQ(e.discard.size(), 5u);
  EXPECT_DOUBLE_EQ(e.fnmr[0], 0.5);
  EXPECT_DOUBLE_EQ(e.fnmr[1], 1.0 / 3);
  EXPECT_DOUBLE_EQ(e.fnmr[2], 0.5);
  EXPECT_DOUBLE_EQ(e.fnmr[3], 0.0);
  // Area to 0.5: 0.25*0.5 + 0.25*(1/3) = 0.208333
  EXPECT_NEAR(e.pauc, 0.25 * 0.5 + 0.25 / 3, 1e-12);
  // Ideal area under max(0, 0.5 - x) on [0, 0.5] = 0.125.
  EXPECT_NEAR(e.pauc_ideal, 0.125, 1e-12);
  EXPECT_NEAR(e.pauc_minus_ideal, e.pauc - 0.125, 1e-12);
}

TEST(EvalQuality, TiesAreDiscardedTogether) {
  qe::Comparisons c;
  c.score = {0.1f, 0.9f, 0.9f, 0.0f};
  c.genuine = {1, 1, 1, 0};
  std::vector<double> pq{0.2, 0.2, 0.7, 0.1};
  qe::EdcResult e = qe::edc(c, pq, 0.0);
  ASSERT_EQ(e.discard.size(), 3u);
  EXPECT_NEAR(e.discard[1], 2.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(e.fnmr[1], 0.0);
  qe::ErcResult r = qe::erc(c, pq, 0.0, 0.25, 0.5);
  // Threshold 0.0 (the only impostor): every genuine accepted. Rejecting 25 %
  // of 4 = 1 comparison removes that impostor (q 0.1): no impostors left, stop.
  ASSERT_EQ(r.fnmr.size(), 1u);
  EXPECT_DOUBLE_EQ(r.fnmr[0], 0.0);
}

TEST(EvalQuality, ErcReestimatesThreshold) {
  // Low-quality impostor with a high score: removing it lowers the threshold.
  qe::Comparisons c;
  c.score = {0.95f, 0.6f, 0.7f, 0.8f, 0.5f, 0.1f, 0.2f, 0.3f};
  c.genuine = {0, 1, 1, 1, 0, 0, 0, 0};
  std::vector<double> pq{0.1, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99};
  qe::ErcResult r = qe::erc(c, pq, 0.0, 0.125, 0.25);
  ASSERT_EQ(r.fnmr.size(), 3u);
  EXPECT_DOUBLE_EQ(r.fnmr[0], 1.0);   // threshold 0.95 rejects every genuine
  EXPECT_DOUBLE_EQ(r.fnmr[1], 0.0);   // without it, threshold 0.5: all genuine accepted
  EXPECT_FLOAT_EQ(r.threshold[1], 0.5f);
}

TEST(EvalQuality, Spearman) {
  std::vector<double> x{1, 2, 3, 4, 5}, y{10, 20, 30, 40, 50}, z{5, 4, 3, 2, 1};
  EXPECT_NEAR(qe::spearman(x, y), 1.0, 1e-12);
  EXPECT_NEAR(qe::spearman(x, z), -1.0, 1e-12);
  // With ties: x = 1 2 2 3, y = 1 3 2 4 -> ranks 1 2.5 2.5 4 vs 1 3 2 4: rho = 4.5 / sqrt(4.5 * 5)
  std::vector<double> a{1, 2, 2, 3}, b{1, 3, 2, 4};
  EXPECT_NEAR(qe::spearman(a, b), 4.5 / std::sqrt(4.5 * 5.0), 1e-12);
}

TEST(EvalCluster, KnownPairwiseBcubedNmi) {
  std::vector<int64_t> truth{0, 0, 0, 1, 1, 2}, pred{0, 0, 1, 1, 1, 2};
  qe::ClusterMetrics m = qe::cluster_metrics(pred, truth);
  EXPECT_DOUBLE_EQ(m.pairwise_precision, 0.5);
  EXPECT_DOUBLE_EQ(m.pairwise_recall, 0.5);
  EXPECT_DOUBLE_EQ(m.pairwise_f, 0.5);
  EXPECT_NEAR(m.bcubed_precision, 7.0 / 9, 1e-12);
  EXPECT_NEAR(m.bcubed_recall, 7.0 / 9, 1e-12);
  EXPECT_NEAR(m.bcubed_f, 7.0 / 9, 1e-12);
  // Hand-derived: MI = 2/3 ln 2 + 1/6 ln(2/3) + 1/6 ln 6; H = -(1/2 ln 1/2 + 1/3 ln 1/3 + 1/6 ln 1/6) for both.
  const double mi = 2.0 / 3 * std::log(2.0) + 1.0 / 6 * std::log(2.0 / 3) + 1.0 / 6 * std::log(6.0);
  const double h = -(0.5 * std::log(0.5) + 1.0 / 3 * std::log(1.0 / 3) + 1.0 / 6 * std::log(1.0 / 6));
  EXPECT_NEAR(m.nmi, mi / h, 1e-12);
  // Independent labelings: NMI 0; relabelled perfect clustering: all 1.
  std::vector<int64_t> t2{0, 0, 1, 1}, p2{5, 6, 5, 6};
  EXPECT_NEAR(qe::cluster_metrics(p2, t2).nmi, 0.0, 1e-12);
  std::vector<int64_t> p3{4, 4, 4, 9, 9, 1};
  qe::ClusterMetrics perfect = qe::cluster_metrics(p3, truth);
  EXPECT_DOUBLE_EQ(perfect.pairwise_f, 1.0);
  EXPECT_DOUBLE_EQ(perfect.bcubed_f, 1.0);
  EXPECT_NEAR(perfect.nmi, 1.0, 1e-12);
}

TEST(EvalCluster, KnnComponentsAndQualityOrderedVariant) {
  torch::manual_seed(2);
  // Two tight groups around orthogonal centres, plus one low-quality sample
  // halfway between them that links both at cosine ~0.7.
  torch::Tensor ca = torch::zeros({32}), cb = torch::zeros({32});
  ca[0] = 1;
  cb[1] = 1;
  std::vector<torch::Tensor> rows;
  std::vector<int64_t> truth;
  std::vector<double> quality;
  for (int i = 0; i < 10; ++i) {
    rows.push_back(ca + 0.05 * torch::randn({32}));
    truth.push_back(0);
    quality.push_back(10 + i);
  }
  for (int i = 0; i < 10; ++i) {
    rows.push_back(cb + 0.05 * torch::randn({32}));
    truth.push_back(1);
    quality.push_back(10 + i);
  }
  rows.push_back(ca + cb);
  truth.push_back(0);
  quality.push_back(1);  // lowest quality
  torch::Tensor e = qe::l2_normalize(torch::stack(rows));
  qe::ClusterOptions o;
  o.k = 5;
  o.threshold = 0.6f;
  std::vector<int64_t> cc = qe::cluster_knn(e, o);
  qe::ClusterMetrics m = qe::cluster_metrics(cc, truth);
  EXPECT_EQ(m.clusters, 1);  // the bridge merges the two groups
  o.quality_ordered = true;
  std::vector<int64_t> qo = qe::cluster_knn(e, o, quality);
  qe::ClusterMetrics mq = qe::cluster_metrics(qo, truth);
  EXPECT_EQ(mq.clusters, 2);
  EXPECT_GT(mq.pairwise_f, 0.9);
  EXPECT_GT(mq.nmi, m.nmi);
  o.threshold = 0.9f;
  o.quality_ordered = false;
  EXPECT_EQ(qe::cluster_metrics(qe::cluster_knn(e, o), truth).clusters, 3);  // bridge alone

  // Low-quality samples of a third identity that no core sample reaches form
  // a cluster of their own (not singletons) and still never join the others.
  torch::Tensor c3 = torch::zeros({32});
  c3[2] = 1;
  for (int i = 0; i < 4; ++i) {
    rows.push_back(c3 + 0.05 * torch::randn({32}));
    truth.push_back(2);
    quality.push_back(0.5);
  }
  torch::Tensor e3 = qe::l2_normalize(torch::stack(rows));
  o.threshold = 0.6f;
  o.quality_ordered = true;
  o.core_fraction = 20.0 / 25.0;  // the two tight groups
  const std::vector<int64_t> q3 = qe::cluster_knn(e3, o, quality);
  EXPECT_EQ(qe::cluster_metrics(q3, truth).clusters, 3);
  for (int i = 22; i < 25; ++i) EXPECT_EQ(q3[i], q3[21]);  // the third identity together
  EXPECT_NE(q3[21], q3[0]);
  EXPECT_NE(q3[21], q3[10]);
}

TEST(EvalQuality, GroundTruthFromSynthManifest) {
  // The layout qface synth writes: per set, per-pair qualities and an
  // "images" array whose entries carry their index; files keyed by "file".
  qface::testing::TempDir tmp;
  const std::string m = R"({"val_low": {"file": "val_low.bin", "quality": [[0.1, 0.2]],
      "images": [{"index": 1, "quality": 0.2, "identity": 3}, {"index": 0, "quality": 0.1, "identity": 4}]},
    "tinyface": {"files": [{"file": "tinyface/probe/0001_0.jpg", "quality": 0.7}]}})";
  qface::write_file_atomic(tmp / "manifest.json", m);
  std::vector<double> q = qe::ground_truth_quality(tmp / "manifest.json", "/x/val_low.bin", {}, 2);
  EXPECT_DOUBLE_EQ(q[0], 0.1);
  EXPECT_DOUBLE_EQ(q[1], 0.2);
  q = qe::ground_truth_quality(tmp / "manifest.json", "", {"/data/synth/tinyface/probe/0001_0.jpg"}, 1);
  EXPECT_DOUBLE_EQ(q[0], 0.7);
  EXPECT_THROW(qe::ground_truth_quality(tmp / "manifest.json", "", {"/data/other.jpg"}, 1), qface::Error);
}
