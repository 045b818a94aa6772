// AdaFace's stats_init and fixed_z options and the z distribution the trainer
// logs, against hand-derived values (docs/method.md, "Margin heads").
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "qface/core/error.h"
#include "qface/heads/adaface.h"
#include "qface/heads/arcface.h"
#include "qface/heads/factory.h"
#include "tests/heads/two_class.h"

namespace qh = qface::heads;
using qface::testing::set_kernel;
using qface::testing::unit_rows;

namespace {



double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double unbiased_std(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

const std::vector<double> kPhis = {0.3, 0.5, 0.7, 0.9, 1.1};

}  // namespace

// first_batch: step 1's z is the batch's own standardized norms times h.
TEST(AdaFaceOptions, FirstBatchStartsAtTheBatchStatisticsThenFollowsTheEma) {
  qh::AdaFace head(qh::AdaFaceOptions(2, 2).stats_init("first_batch"));
  set_kernel(*head, torch::eye(2));
  const torch::Tensor x = unit_rows(kPhis), labels = torch::zeros({5}, torch::kInt64);
  // 120 is clamped to 100 before the statistics (safe_n).
  const std::vector<double> safe1 = {12, 18, 25, 31, 100};
  head->forward(x, torch::tensor({12.0f, 18.0f, 25.0f, 31.0f, 120.0f}), labels);
  const double mean1 = mean_of(safe1), std1 = unbiased_std(safe1);  // 37.2, 35.5...
  EXPECT_NEAR(head->batch_mean.item<double>(), mean1, 1e-4);
  EXPECT_NEAR(head->batch_std.item<double>(), std1, 1e-4);
  EXPECT_TRUE(head->stats_initialized());
  torch::Tensor z = head->last_terms().at("z");
  for (int i = 0; i < 5; ++i)
    EXPECT_NEAR(z[i].item<double>(), std::clamp(0.333 * (safe1[i] - mean1) / (std1 + 1e-3), -1.0, 1.0), 1e-6) << i;

  // Batch 2: the usual EMA (t_alpha 0.01) from batch 1's statistics.
  const std::vector<double> safe2 = {20, 22, 24, 26, 28};
  head->forward(x, torch::tensor({20.0f, 22.0f, 24.0f, 26.0f, 28.0f}), labels);
  const double mean2 = 0.01 * mean_of(safe2) + 0.99 * mean1, std2 = 0.01 * unbiased_std(safe2) + 0.99 * std1;
  EXPECT_NEAR(head->batch_mean.item<double>(), mean2, 1e-4);
  EXPECT_NEAR(head->batch_std.item<double>(), std2, 1e-4);
  z = head->last_terms().at("z");
  EXPECT_NEAR(z[0].item<double>(), std::clamp(0.333 * (20 - mean2) / (std2 + 1e-3), -1.0, 1.0), 1e-6);
}

// official: 20 / 100 then the EMA, exactly the official code's buffers.
TEST(AdaFaceOptions, OfficialStartReproducesTheOfficialBuffers) {
  qh::AdaFace head(qh::AdaFaceOptions(2, 2).stats_init("official"));
  set_kernel(*head, torch::eye(2));
  EXPECT_TRUE(head->stats_initialized());
  std::vector<std::string> names;
  for (const auto& b : head->named_buffers()) names.push_back(b.key());
  EXPECT_EQ(names, (std::vector<std::string>{"batch_mean", "batch_std"}));
  const std::vector<double> safe = {12, 18, 25, 31, 100};
  double mean = 20, std = 100;
  for (int step = 0; step < 3; ++step) {
    head->forward(unit_rows(kPhis), torch::tensor({12.0f, 18.0f, 25.0f, 31.0f, 120.0f}),
                  torch::zeros({5}, torch::kInt64));
    mean = 0.01 * mean_of(safe) + 0.99 * mean;
    std = 0.01 * unbiased_std(safe) + 0.99 * std;
    EXPECT_NEAR(head->batch_mean.item<double>(), mean, 1e-4) << step;
    EXPECT_NEAR(head->batch_std.item<double>(), std, 1e-4) << step;
  }
  // The factory default is the official start.
  auto made = qh::make_head({.name = "adaface", .embedding_size = 2, .num_classes = 2});
  EXPECT_EQ(dynamic_cast<qh::AdaFaceImpl*>(made.get())->options.stats_init(), "official");
  EXPECT_EQ(made->named_buffers().size(), 2u);
}

// The "initialized" state is a buffer: a restored head does not re-initialize.
TEST(AdaFaceOptions, FirstBatchStateSurvivesSaveAndLoad) {
  qh::AdaFace head(qh::AdaFaceOptions(2, 2).stats_init("first_batch"));
  std::vector<std::string> names;
  for (const auto& b : head->named_buffers()) names.push_back(b.key());
  EXPECT_EQ(names, (std::vector<std::string>{"batch_mean", "batch_std", "stats_initialized"}));
  EXPECT_FALSE(head->stats_initialized());
  head->forward(unit_rows(kPhis), torch::tensor({12.0f, 18.0f, 25.0f, 31.0f, 44.0f}), torch::zeros({5}, torch::kInt64));
  std::stringstream stream;
  torch::save(head, stream);

  qh::AdaFace restored(qh::AdaFaceOptions(2, 2).stats_init("first_batch"));
  torch::load(restored, stream);
  EXPECT_TRUE(restored->stats_initialized());
  const double mean1 = restored->batch_mean.item<double>(), std1 = restored->batch_std.item<double>();
  EXPECT_DOUBLE_EQ(mean1, head->batch_mean.item<double>());
  // The next batch is an EMA step, not a second initialization.
  restored->forward(unit_rows(kPhis), torch::tensor({20.0f, 22.0f, 24.0f, 26.0f, 28.0f}),
                    torch::zeros({5}, torch::kInt64));
  EXPECT_NEAR(restored->batch_mean.item<double>(), 0.01 * 24 + 0.99 * mean1, 1e-4);
  EXPECT_NEAR(restored->batch_std.item<double>(), 0.01 * unbiased_std({20, 22, 24, 26, 28}) + 0.99 * std1, 1e-4);

  // A head restored before its first batch initializes on it.
  qh::AdaFace fresh(qh::AdaFaceOptions(2, 2).stats_init("first_batch"));
  std::stringstream s2;
  torch::save(fresh, s2);
  qh::AdaFace fresh2(qh::AdaFaceOptions(2, 2).stats_init("first_batch"));
  torch::load(fresh2, s2);
  EXPECT_FALSE(fresh2->stats_initialized());
}

// The global-batch reducer is what initializes the statistics too.
TEST(AdaFaceOptions, FirstBatchUsesTheNormStatsReducer) {
  qh::AdaFace head(qh::AdaFaceOptions(2, 2).stats_init("first_batch"));
  head->set_norm_stats([](const torch::Tensor&) {
    return std::make_pair(torch::tensor(33.0f), torch::tensor(7.0f));
  });
  head->forward(unit_rows(kPhis), torch::tensor({12.0f, 18.0f, 25.0f, 31.0f, 44.0f}), torch::zeros({5}, torch::kInt64));
  EXPECT_FLOAT_EQ(head->batch_mean.item<float>(), 33.0f);
  EXPECT_FLOAT_EQ(head->batch_std.item<float>(), 7.0f);
}

TEST(AdaFaceOptions, BadValuesAreErrors) {
  EXPECT_THROW(qh::AdaFace(qh::AdaFaceOptions(2, 2).stats_init("zero")), qface::Error);
  EXPECT_THROW(qh::AdaFace(qh::AdaFaceOptions(2, 2).fixed_z(1.5)), qface::Error);
  EXPECT_THROW(qh::AdaFace(qh::AdaFaceOptions(2, 2).fixed_z(-1.01)), qface::Error);
  qh::HeadConfig c{.name = "arcface", .embedding_size = 2, .num_classes = 2};
  c.fixed_z = 0.0;
  EXPECT_THROW(qh::make_head(c), qface::Error);
  c.fixed_z.reset();
  c.stats_init = "first_batch";
  EXPECT_THROW(qh::make_head(c), qface::Error);
}

// fixed_z = -1, 0, +1 give ArcFace m 0.4, CosFace m 0.4 and s (cos(theta - m) - 2m):
// logits and the gradients w.r.t. the embeddings and the kernel, to float rounding.
TEST(AdaFaceOptions, FixedZEqualsArcFaceCosFaceAndTheHardEndpoint) {
  const double m = 0.4, s = 64;
  torch::manual_seed(3);
  const int64_t batch = 8, dim = 6, classes = 5;
  torch::Tensor raw = torch::randn({batch, dim});
  torch::Tensor x_hat0 = (raw / raw.norm(2, 1, true)).detach();
  torch::Tensor norms = torch::linspace(5, 60, batch);  // the margin ignores them when z is fixed
  torch::Tensor labels = torch::tensor({0, 1, 2, 3, 4, 0, 1, 2}, torch::kInt64);
  torch::Tensor kernel = qh::init_kernel(dim, classes);

  struct Out {
    torch::Tensor logits, d_x, d_w;
  };
  auto run = [&](qh::HeadImpl& head) {
    set_kernel(head, kernel);
    torch::Tensor x = x_hat0.clone().requires_grad_(true);
    auto o = head.loss(x, norms, labels);
    o.loss.backward();
    return Out{o.logits.detach(), x.grad().clone(), head.kernel.grad().clone()};
  };
  auto ada = [&](double z) {
    qh::AdaFace h(qh::AdaFaceOptions(dim, classes).fixed_z(z));
    Out o = run(*h);
    EXPECT_TRUE(torch::all(h->last_terms().at("z").eq(static_cast<float>(z))).item<bool>());
    return o;
  };
  auto expect_close = [](const Out& a, const Out& b, const std::string& what) {
    EXPECT_TRUE(torch::allclose(a.logits, b.logits, 1e-5, 1e-4)) << what << " logits";
    EXPECT_TRUE(torch::allclose(a.d_x, b.d_x, 1e-4, 1e-6)) << what << " d/dx";
    EXPECT_TRUE(torch::allclose(a.d_w, b.d_w, 1e-4, 1e-6)) << what << " d/dW";
  };
  // The same cosine clamp (AdaFace's eps 1e-3) on both sides; no cosine here comes near it.
  qh::ArcFace arc(qh::FixedMarginOptions(dim, classes, m).eps(1e-3));
  expect_close(ada(-1), run(*arc), "z = -1 vs ArcFace m 0.4");
  qh::CosFace cos(qh::FixedMarginOptions(dim, classes, m).eps(1e-3));
  expect_close(ada(0), run(*cos), "z = 0 vs CosFace m 0.4");

  // z = +1: the target logit s (cos(theta - m) - 2m), from the cosines by hand
  // (every target angle here exceeds m, so the theta clamp does not bind).
  const Out plus = ada(1);
  torch::Tensor cosine = torch::mm(x_hat0, kernel / kernel.norm(2, 0, true));
  for (int64_t i = 0; i < batch; ++i) {
    const int64_t y = labels[i].item<int64_t>();
    const double theta = std::acos(cosine[i][y].item<double>());
    ASSERT_GT(theta, m + 1e-3);
    EXPECT_NEAR(plus.logits[i][y].item<double>(), s * (std::cos(theta - m) - 2 * m), 2e-4) << i;
    for (int64_t j = 0; j < classes; ++j) {
      if (j == y) continue;
      EXPECT_NEAR(plus.logits[i][j].item<double>(), s * cosine[i][j].item<double>(), 2e-4);
    }
  }
  // Its gradient: that of the same logits built from differentiable cosines.
  torch::Tensor x = x_hat0.clone().requires_grad_(true);
  torch::Tensor w = kernel.clone().requires_grad_(true);
  torch::Tensor c = torch::mm(x, w / w.norm(2, 0, true));
  torch::Tensor onehot = torch::zeros({batch, classes}).scatter(1, labels.unsqueeze(1), 1.0);
  torch::Tensor target = ((c.clamp(-1 + 1e-3, 1 - 1e-3).acos() - m).cos() - 2 * m);
  torch::Tensor logits = s * (onehot * target + (1 - onehot) * c);
  torch::nn::functional::cross_entropy(logits, labels).backward();
  expect_close(plus, Out{logits.detach(), x.grad(), w.grad()}, "z = +1 vs s (cos(theta - m) - 2m)");
}

TEST(AdaFaceOptions, FixedZKeepsUpdatingTheStatistics) {
  qh::AdaFace head(qh::AdaFaceOptions(2, 2).fixed_z(0.0));
  head->forward(unit_rows(kPhis), torch::tensor({12.0f, 18.0f, 25.0f, 31.0f, 44.0f}), torch::zeros({5}, torch::kInt64));
  EXPECT_NEAR(head->batch_mean.item<double>(), 0.01 * 26 + 0.99 * 20, 1e-4);
}

// Quantiles with linear interpolation at p (N - 1), shares of clipped and near-zero z.
TEST(AdaFaceOptions, ZDistributionByHand) {
  // Sorted: -1, -1, -0.5, -0.1, 0, 0.15, 0.3, 0.6, 1, 1, 1 (N = 11, positions p * 10).
  torch::Tensor z = torch::tensor({0.3f, -1.0f, 1.0f, 0.0f, -0.5f, 1.0f, 0.15f, -1.0f, 0.6f, -0.1f, 1.0f});
  auto d = qh::z_distribution(z);
  std::vector<std::string> keys;
  for (const auto& [k, v] : d) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"z_q05", "z_q25", "z_q50", "z_q75", "z_q95", "z_clip_lo", "z_clip_hi",
                                            "z_abs_lt_0.2"}));
  auto at = [&](const std::string& k) {
    for (const auto& [kk, v] : d)
      if (kk == k) return v;
    return std::nan("");
  };
  EXPECT_NEAR(at("z_q05"), -1.0, 1e-7);                   // position 0.5: between -1 and -1
  EXPECT_NEAR(at("z_q25"), -0.5 + 0.5 * 0.4, 1e-7);       // position 2.5: -0.5 .. -0.1
  EXPECT_NEAR(at("z_q50"), 0.15, 1e-7);                   // position 5
  EXPECT_NEAR(at("z_q75"), 0.6 + 0.5 * 0.4, 1e-7);        // position 7.5: 0.6 .. 1
  EXPECT_NEAR(at("z_q95"), 1.0, 1e-7);                    // position 9.5
  EXPECT_NEAR(at("z_clip_lo"), 2.0 / 11, 1e-12);
  EXPECT_NEAR(at("z_clip_hi"), 3.0 / 11, 1e-12);
  EXPECT_NEAR(at("z_abs_lt_0.2"), 3.0 / 11, 1e-12);       // -0.1, 0, 0.15
  EXPECT_THROW(qh::z_distribution(torch::zeros({0})), qface::Error);
}
