// Paired bootstrap intervals (against the normal approximation, coverage of a
// known difference, determinism) and the claims' verdict rules.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>

#include <cmath>

#include "qface/core/error.h"
#include "qface/eval/bootstrap.h"
#include "qface/eval/claims.h"
#include "qface/eval/cluster.h"

namespace qe = qface::eval;

namespace {

// Per-item 0/1 correctness of two systems; b is right on `b_right` items, a on
// those and `extra` more.
void correctness(int n, int b_right, int extra, std::vector<double>& a, std::vector<double>& b) {
  a.assign(n, 0);
  b.assign(n, 0);
  for (int i = 0; i < n; ++i) {
    const int k = (i * 7) % n;  // spread over the items
    b[k] = i < b_right;
    a[k] = i < b_right + extra;
  }
}

}  // namespace

TEST(Bootstrap, PairedDifferenceMatchesTheNormalApproximation) {
  // d_i = a_i - b_i is 1 on 300 of 3000 items, else 0: mean 0.1, sd of the
  // mean sqrt(0.1 * 0.9 / 3000) = 0.005477, so the 95 % interval is about
  // 0.1 -+ 1.96 * 0.005477 = [0.0893, 0.1107].
  std::vector<double> a, b;
  correctness(3000, 2000, 300, a, b);
  const qe::Interval ci = qe::paired_mean_difference(a, b, {.resamples = 4000, .seed = 7});
  EXPECT_DOUBLE_EQ(ci.estimate, 0.1);
  EXPECT_NEAR(ci.lo, 0.0893, 0.0025);
  EXPECT_NEAR(ci.hi, 0.1107, 0.0025);
  EXPECT_FALSE(ci.contains(0.0));
  EXPECT_EQ(ci.items, 3000);
  EXPECT_EQ(ci.resamples, 4000);
}

TEST(Bootstrap, NoDifferenceCoversZeroAndPairingRemovesSharedVariation) {
  // The two systems differ on 40 items, 20 each way: the interval covers 0.
  std::vector<double> a(2000), b(2000);
  for (int i = 0; i < 2000; ++i) a[i] = b[i] = (i % 3) != 0;
  for (int i = 0; i < 20; ++i) a[i * 50] = 1 - a[i * 50], b[i * 50 + 1] = 1 - b[i * 50 + 1];
  const qe::Interval ci = qe::paired_mean_difference(a, b);
  EXPECT_TRUE(ci.contains(0.0)) << ci.lo << " " << ci.hi;
  // Paired: only the 40 disagreements vary, so the interval is far narrower
  // than that of two independent accuracies (+- 1.96 sqrt(2 p (1-p) / n) = +-0.029).
  EXPECT_LT(ci.hi - ci.lo, 0.015);
}

TEST(Bootstrap, DeterministicForASeedWhateverTheThreads) {
  std::vector<double> a(500), b(500);
  for (int i = 0; i < 500; ++i) a[i] = std::sin(i * 0.37) + 0.05, b[i] = std::cos(i * 0.11);  // continuous values
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const qe::Interval one = qe::paired_mean_difference(a, b, {.seed = 3});
  at::set_num_threads(2);
  const qe::Interval two = qe::paired_mean_difference(a, b, {.seed = 3});
  at::set_num_threads(threads);
  EXPECT_EQ(one.lo, two.lo);
  EXPECT_EQ(one.hi, two.hi);
  const qe::Interval other = qe::paired_mean_difference(a, b, {.seed = 4});
  EXPECT_NE(one.lo, other.lo);  // another seed, another draw
}

TEST(Bootstrap, SpearmanIntervalAroundAKnownCorrelation) {
  // y = x + noise with a known rank correlation: x uniform ranks, y mixes x
  // with an independent permutation; the estimate is the exact Spearman.
  const int n = 1000;
  std::vector<double> x(n), y(n), z(n);
  for (int i = 0; i < n; ++i) {
    x[i] = i;
    y[i] = i;
    z[i] = (i * 613) % n;
  }
  const qe::Interval perfect = qe::spearman_interval(x, y, {.resamples = 200});
  EXPECT_DOUBLE_EQ(perfect.estimate, 1.0);
  EXPECT_DOUBLE_EQ(perfect.lo, 1.0);
  const qe::Interval none = qe::spearman_interval(x, z, {.resamples = 300});
  EXPECT_LT(std::abs(none.estimate), 0.1);
  EXPECT_TRUE(none.contains(0.0)) << none.lo << " " << none.hi;
  EXPECT_NEAR(none.hi - none.lo, 2 * 1.96 / std::sqrt(n - 1.0), 0.03);  // ~ the Fisher-z width near 0
}

TEST(Bootstrap, BadInputIsAnError) {
  std::vector<double> a{1, 0, 1}, b{1, 0};
  EXPECT_THROW(qe::paired_mean_difference(a, b), qface::Error);
  std::vector<double> one{1};
  EXPECT_THROW(qe::paired_mean_difference(one, one), qface::Error);
  std::vector<double> nan{1, std::nan("")};
  EXPECT_THROW(qe::paired_mean_difference(nan, nan), qface::Error);
  EXPECT_THROW(qe::paired_mean_difference(a, a, {.resamples = 2}), qface::Error);
}

TEST(Claims, VerdictsFollowTheInterval) {
  qe::Claim c;
  c.interval = {.estimate = 0.03, .lo = 0.01, .hi = 0.05};
  EXPECT_EQ(qe::verdict(c), qe::Verdict::kHolds);
  c.interval = {.estimate = 0.01, .lo = -0.01, .hi = 0.03};
  EXPECT_EQ(qe::verdict(c), qe::Verdict::kNotResolved);
  c.interval = {.estimate = -0.03, .lo = -0.05, .hi = -0.01};
  EXPECT_EQ(qe::verdict(c), qe::Verdict::kDoesNotHold);
  // Non-inferiority with a 1-point margin: a small loss whose interval stays
  // above -1 point holds; one entirely below -1 point does not.
  c.kind = qe::ClaimKind::kNotWorse;
  c.margin = 0.01;
  c.interval = {.estimate = -0.002, .lo = -0.008, .hi = 0.004};
  EXPECT_EQ(qe::verdict(c), qe::Verdict::kHolds);
  c.interval = {.estimate = -0.01, .lo = -0.02, .hi = 0.0};
  EXPECT_EQ(qe::verdict(c), qe::Verdict::kNotResolved);
  c.interval = {.estimate = -0.03, .lo = -0.04, .hi = -0.02};
  EXPECT_EQ(qe::verdict(c), qe::Verdict::kDoesNotHold);
  c.paper = "AdaFace";
  c.statement = "no loss on high quality";
  c.measure = "accuracy AdaFace - ArcFace, val_high";
  c.display_scale = 100;
  c.unit = "points";
  const std::string md = qe::claims_markdown({c});
  EXPECT_NE(md.find("| AdaFace | no loss on high quality |"), std::string::npos) << md;
  EXPECT_NE(md.find("-3.00 [-4.00, -2.00] points"), std::string::npos) << md;
  EXPECT_NE(md.find("margin 1 points"), std::string::npos) << md;
  EXPECT_NE(md.find("**does not hold**"), std::string::npos) << md;
  // A tiny unitless difference keeps two significant digits of its interval's width.
  qe::Claim tiny = c;
  tiny.display_scale = 1;
  tiny.unit = "";
  tiny.interval.estimate = 0.00024;
  tiny.interval.lo = 0.00003;
  tiny.interval.hi = 0.0005;
  EXPECT_NE(qe::claims_markdown({tiny}).find("+0.00024 [+0.00003, +0.00050]"), std::string::npos)
      << qe::claims_markdown({tiny});
  EXPECT_EQ(qe::to_json(c)["verdict"], "does not hold");
}

TEST(Bootstrap, BCubedFOfADrawFromPerItemValues) {
  // Items 0-3 truth {0,0,1,1}, predicted {0,0,0,1}: BCubed precision per item
  // 2/3, 2/3, 1/3, 1 and recall 1, 1, 1/2, 1/2 (hand-computed).
  const std::vector<int64_t> pred{0, 0, 0, 1}, truth{0, 0, 1, 1};
  const qe::ClusterMetrics m = qe::cluster_metrics(pred, truth);
  ASSERT_EQ(m.bcubed_item_precision.size(), 4u);
  EXPECT_NEAR(m.bcubed_item_precision[2], 1.0 / 3, 1e-12);
  EXPECT_NEAR(m.bcubed_item_recall[2], 0.5, 1e-12);
  const std::vector<int64_t> all{0, 1, 2, 3};
  EXPECT_NEAR(qe::bcubed_f(m, all), m.bcubed_f, 1e-12);
  // Draw {3, 3}: P = R = ... item 3 has precision 1 and recall 1/2, so F = 2/3.
  const std::vector<int64_t> twice{3, 3};
  EXPECT_NEAR(qe::bcubed_f(m, twice), 2.0 / 3, 1e-12);
}

TEST(Bootstrap, ClusterBootstrapOfSingletonClustersIsThePlainBootstrap) {
  // One item per cluster, clusters in item order: the same draws as bootstrap().
  std::vector<double> a(300), b(300);
  std::vector<int64_t> cluster(300);
  for (int i = 0; i < 300; ++i) a[i] = std::sin(i * 0.3), b[i] = std::cos(i * 0.7), cluster[i] = 1000 + i;
  const qe::Interval plain = qe::paired_mean_difference(a, b, {.resamples = 500, .seed = 9});
  const qe::Interval clustered = qe::clustered_mean_difference(a, b, cluster, {.resamples = 500, .seed = 9});
  EXPECT_DOUBLE_EQ(clustered.estimate, plain.estimate);
  EXPECT_DOUBLE_EQ(clustered.lo, plain.lo);
  EXPECT_DOUBLE_EQ(clustered.hi, plain.hi);
  EXPECT_EQ(clustered.items, 300);
}

TEST(Bootstrap, ClusterBootstrapCountsClustersNotItems) {
  // 20 identities of 50 pairs each; the 50 pairs of an identity share one
  // outcome (d = 1 on 10 identities, 0 on 10). Independent units: 20, so the
  // interval is about 0.5 -+ 1.96 sqrt(0.25 / 20) = [0.28, 0.72]; resampling
  // the 1000 pairs as if independent gives 0.5 -+ 0.031.
  std::vector<double> a(1000), b(1000, 0.0);
  std::vector<int64_t> cluster(1000);
  for (int i = 0; i < 1000; ++i) cluster[i] = (i * 7) % 20, a[i] = cluster[i] < 10;
  const qe::Interval c = qe::clustered_mean_difference(a, b, cluster, {.resamples = 4000, .seed = 1});
  EXPECT_DOUBLE_EQ(c.estimate, 0.5);
  EXPECT_EQ(c.items, 20);
  EXPECT_NEAR(c.lo, 0.5 - 1.96 * std::sqrt(0.25 / 20), 0.04);
  EXPECT_NEAR(c.hi, 0.5 + 1.96 * std::sqrt(0.25 / 20), 0.04);
  const qe::Interval p = qe::paired_mean_difference(a, b, {.resamples = 4000, .seed = 1});
  EXPECT_LT(p.hi - p.lo, 0.08);
  const std::vector<int64_t> one(1000, 5);
  EXPECT_THROW(qe::clustered_mean_difference(a, b, one), qface::Error);  // a single cluster resamples nothing
}

TEST(Bootstrap, StudentTQuantilesMatchTheTables) {
  // Two-sided 95 % critical values (any statistics table).
  EXPECT_NEAR(qe::student_t_quantile(0.975, 1), 12.7062047, 1e-5);
  EXPECT_NEAR(qe::student_t_quantile(0.975, 3), 3.1824463, 1e-6);
  EXPECT_NEAR(qe::student_t_quantile(0.975, 10), 2.2281389, 1e-6);
  EXPECT_NEAR(qe::student_t_quantile(0.995, 4), 4.6040949, 1e-6);
  EXPECT_NEAR(qe::student_t_quantile(0.5, 7), 0.0, 1e-9);
  EXPECT_NEAR(qe::student_t_quantile(0.025, 3), -3.1824463, 1e-6);
}

TEST(Bootstrap, SeedIntervalIsStudentsT) {
  // 1, 2, 3, 4: mean 2.5, sd sqrt(5/3), se sd/2 = 0.645497, t(0.975, 3) = 3.182446:
  // 2.5 -+ 2.054254.
  const std::vector<double> d{1, 2, 3, 4};
  const qe::Interval i = qe::seed_interval(d);
  EXPECT_DOUBLE_EQ(i.estimate, 2.5);
  EXPECT_NEAR(i.lo, 0.445746, 1e-5);
  EXPECT_NEAR(i.hi, 4.554254, 1e-5);
  EXPECT_EQ(i.items, 4);
  EXPECT_THROW(qe::seed_interval(std::vector<double>{1.0}), qface::Error);
}
