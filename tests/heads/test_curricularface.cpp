// CurricularFace against hand-derived logits (docs/method.md, "Margin heads"):
// two classes in D = 2 with centres e1, e2, so a sample at angle phi from e1
// has cos_0 = cos(phi) and cos_1 = sin(phi).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "qface/core/error.h"
#include "qface/heads/curricularface.h"
#include "qface/heads/factory.h"
#include "tests/heads/two_class.h"

namespace qh = qface::heads;
using qface::testing::set_kernel;
using qface::testing::unit_rows;

namespace {


qh::CurricularFace two_class_head(double t0 = 0.0) {
  qh::CurricularFace head(qh::CurricularFaceOptions(2, 2));
  torch::NoGradGuard g;
  head->kernel.copy_(torch::eye(2));
  head->t.fill_(t0);
  return head;
}

constexpr double kM = 0.5, kS = 64;

}  // namespace

TEST(CurricularFace, FactoryDefaultsAndOptions) {
  auto h = qh::make_head({.name = "curricularface", .embedding_size = 8, .num_classes = 3});
  auto* c = dynamic_cast<qh::CurricularFaceImpl*>(h.get());
  ASSERT_NE(c, nullptr);
  EXPECT_DOUBLE_EQ(c->options.m(), 0.5);
  EXPECT_DOUBLE_EQ(c->options.s(), 64);
  EXPECT_DOUBLE_EQ(c->options.t_alpha(), 0.01);
  EXPECT_FLOAT_EQ(c->t.item<float>(), 0.0f);
  std::vector<std::string> names;
  for (const auto& b : h->named_buffers()) names.push_back(b.key());
  EXPECT_EQ(names, std::vector<std::string>{"t"});
  qh::HeadConfig bad{.name = "curricularface", .embedding_size = 8, .num_classes = 3};
  bad.h = 0.3;
  EXPECT_THROW(qh::make_head(bad), qface::Error);
  qh::HeadConfig set{.name = "curricularface", .embedding_size = 8, .num_classes = 3};
  set.m = 0.3;
  set.s = 32;
  set.t_alpha = 0.1;
  auto made = qh::make_head(set);
  auto* c2 = dynamic_cast<qh::CurricularFaceImpl*>(made.get());
  ASSERT_NE(c2, nullptr);
  EXPECT_DOUBLE_EQ(c2->options.m(), 0.3);
  EXPECT_DOUBLE_EQ(c2->options.t_alpha(), 0.1);
}

// Row 0 (phi 0.9): sin 0.9 = 0.783 > cos(0.9 + m) = 0.170, a hard negative.
// Row 1 (phi 0.3): sin 0.3 = 0.296 < cos(0.8) = 0.697, an easy one.
// Row 2 (phi 2.8 > pi - m): the fallback target cos(2.8) - m sin(pi - m); its
// negative sin 2.8 = 0.335 > cos(3.3) = -0.988 is hard.
// t is updated before use: t1 = 0.01 * mean(cos_y) + 0.99 * t0.
TEST(CurricularFace, HandDerivedLogitsHardEasyAndFallback) {
  const std::vector<double> phis = {0.9, 0.3, 2.8};
  const double t0 = 0.25;
  auto head = two_class_head(t0);
  auto out = head->forward(unit_rows(phis), torch::ones({3}), torch::zeros({3}, torch::kInt64));
  const double mean_cos = (std::cos(0.9) + std::cos(0.3) + std::cos(2.8)) / 3;
  const double t1 = 0.01 * mean_cos + 0.99 * t0;
  EXPECT_NEAR(head->t.item<double>(), t1, 1e-7);

  EXPECT_NEAR(out.logits[0][0].item<double>(), kS * std::cos(0.9 + kM), 2e-4);
  EXPECT_NEAR(out.logits[0][1].item<double>(), kS * std::sin(0.9) * (t1 + std::sin(0.9)), 2e-4);  // hard
  EXPECT_NEAR(out.logits[1][0].item<double>(), kS * std::cos(0.3 + kM), 2e-4);
  EXPECT_NEAR(out.logits[1][1].item<double>(), kS * std::sin(0.3), 2e-4);                         // easy
  EXPECT_NEAR(out.logits[2][0].item<double>(), kS * (std::cos(2.8) - kM * std::sin(M_PI - kM)), 2e-4);  // fallback
  EXPECT_NEAR(out.logits[2][1].item<double>(), kS * std::sin(2.8) * (t1 + std::sin(2.8)), 2e-4);  // hard
  EXPECT_EQ(head->last_terms().at("hard_negatives")[0].item<float>(), 1.0f);
  EXPECT_EQ(head->last_terms().at("hard_negatives")[1].item<float>(), 0.0f);

  // A second call moves t again before using it.
  out = head->forward(unit_rows(phis), torch::ones({3}), torch::zeros({3}, torch::kInt64));
  const double t2 = 0.01 * mean_cos + 0.99 * t1;
  EXPECT_NEAR(head->t.item<double>(), t2, 1e-7);
  EXPECT_NEAR(out.logits[0][1].item<double>(), kS * std::sin(0.9) * (t2 + std::sin(0.9)), 2e-4);
}

// Label 1 targets column 1 (cos = sin phi); its negative column 0 is cos phi.
TEST(CurricularFace, TargetInTheSecondColumn) {
  auto head = two_class_head();
  // phi = 1.2: target cos_1 = sin 1.2 = 0.932 (theta_y = pi/2 - 1.2); negative cos 1.2 = 0.362
  // < cos(theta_y + m) = cos(0.871) = 0.644: easy.
  // phi = 0.6: target sin 0.6 = 0.565 (theta_y = 0.971); negative cos 0.6 = 0.825 > cos(1.471) = 0.100: hard.
  auto out = head->forward(unit_rows({1.2, 0.6}), torch::ones({2}), torch::ones({2}, torch::kInt64));
  const double t1 = 0.01 * (std::sin(1.2) + std::sin(0.6)) / 2;
  EXPECT_NEAR(out.logits[0][1].item<double>(), kS * std::cos(M_PI / 2 - 1.2 + kM), 2e-4);
  EXPECT_NEAR(out.logits[0][0].item<double>(), kS * std::cos(1.2), 2e-4);
  EXPECT_NEAR(out.logits[1][1].item<double>(), kS * std::cos(M_PI / 2 - 0.6 + kM), 2e-4);
  EXPECT_NEAR(out.logits[1][0].item<double>(), kS * std::cos(0.6) * (t1 + std::cos(0.6)), 2e-4);
}

// A row with label -1 has no target here: it adds nothing to t's mean and gets
// no hard negatives, unless a row reducer supplies its target cosine (the
// sharded classifier: another rank holds its class).
TEST(CurricularFace, RowsWithoutTargetAndTheRowReducer) {
  auto head = two_class_head();
  const torch::Tensor labels = torch::tensor({0, -1}, torch::kInt64);
  auto out = head->forward(unit_rows({0.3, 0.9}), torch::ones({2}), labels);
  EXPECT_NEAR(head->t.item<double>(), 0.01 * std::cos(0.3), 1e-7);
  EXPECT_NEAR(out.logits[1][0].item<double>(), kS * std::cos(0.9), 2e-4);
  EXPECT_NEAR(out.logits[1][1].item<double>(), kS * std::sin(0.9), 2e-4);

  // Another shard holds row 1's class with target cosine 0.2 (theta 1.369):
  // threshold cos(1.869) = -0.294, so both of this shard's columns are hard
  // negatives for row 1; t's mean covers both rows.
  auto sharded = two_class_head();
  const double other = 0.2;
  int call = 0;  // apply_margin reduces the target cosines first, then the has-target flags
  sharded->set_row_reducer([&](const torch::Tensor& v) {
    torch::Tensor r = v.clone();
    r[1] += call++ == 0 ? other : 1.0;  // the other shard's share: row 1 only
    return r;
  });
  out = sharded->forward(unit_rows({0.3, 0.9}), torch::ones({2}), labels);
  const double t1 = 0.01 * (std::cos(0.3) + other) / 2;
  EXPECT_NEAR(sharded->t.item<double>(), t1, 1e-7);
  EXPECT_NEAR(out.logits[1][0].item<double>(), kS * std::cos(0.9) * (t1 + std::cos(0.9)), 2e-4);
  EXPECT_NEAR(out.logits[1][1].item<double>(), kS * std::sin(0.9) * (t1 + std::sin(0.9)), 2e-4);
  EXPECT_NEAR(out.logits[0][1].item<double>(), kS * std::sin(0.3), 2e-4);  // row 0 unchanged: easy
}

// Data parallel: the mean reducer makes t follow the global batch.
TEST(CurricularFace, MeanReducerGivesTheGlobalMean) {
  auto head = two_class_head();
  // The other rank's rows: sum of target cosines 1.5 over 3 rows.
  head->set_mean_reducer([](const torch::Tensor& v) { return v + torch::tensor({1.5f, 3.0f}); });
  head->forward(unit_rows({0.3}), torch::ones({1}), torch::zeros({1}, torch::kInt64));
  EXPECT_NEAR(head->t.item<double>(), 0.01 * (std::cos(0.3) + 1.5) / 4, 1e-7);
}

// The gradient: hard negatives' d/dcos = s (t + 2 cos); easy s; target s d cos(theta + m).
TEST(CurricularFace, LogitGradientsByHand) {
  auto head = two_class_head(0.3);
  torch::Tensor cosine = torch::tensor({{std::cos(0.9), std::sin(0.9)}, {std::cos(0.3), std::sin(0.3)}},
                                       torch::kFloat32)
                             .requires_grad_(true);
  auto out = head->apply_margin(cosine, torch::ones({2}), torch::zeros({2}, torch::kInt64));
  out.logits.sum().backward();
  const double t1 = 0.01 * (std::cos(0.9) + std::cos(0.3)) / 2 + 0.99 * 0.3;
  torch::Tensor g = cosine.grad();
  EXPECT_NEAR(g[0][1].item<double>(), kS * (t1 + 2 * std::sin(0.9)), 1e-3);
  EXPECT_NEAR(g[1][1].item<double>(), kS, 1e-3);
  // d/dc [c cos m - sqrt(1 - c^2) sin m] = cos m + c sin m / sqrt(1 - c^2) = cos m + cot(theta) sin m.
  EXPECT_NEAR(g[0][0].item<double>(), kS * (std::cos(kM) + std::sin(kM) / std::tan(0.9)), 1e-3);
}
