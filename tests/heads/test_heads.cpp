// Analytic identities of the margin heads (docs/method.md, Margin heads).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <sstream>

#include "qface/core/error.h"
#include "qface/heads/adaface.h"
#include "qface/heads/arcface.h"
#include "qface/heads/factory.h"
#include "qface/heads/magface.h"
#include "tests/heads/two_class.h"

namespace qh = qface::heads;
using qface::testing::set_kernel;
using qface::testing::unit_rows;

namespace {

// Embeddings whose cosine to class 0 is known: D = 2, centres e1 (class 0) and
// e2 (class 1), x_hat = (cos phi, sin phi).
struct TwoClass {
  torch::Tensor x_hat, kernel;
  explicit TwoClass(const std::vector<double>& phis) {
    std::vector<float> xs;
    for (double p : phis) {
      xs.push_back(static_cast<float>(std::cos(p)));
      xs.push_back(static_cast<float>(std::sin(p)));
    }
    x_hat = torch::tensor(xs).reshape({static_cast<int64_t>(phis.size()), 2});
    kernel = torch::eye(2);
  }
};


torch::Tensor zeros_labels(int64_t n) { return torch::zeros({n}, torch::kInt64); }

}  // namespace

TEST(Heads, KernelInitHasUnitColumns) {
  torch::manual_seed(0);
  torch::Tensor w = qh::init_kernel(512, 100);
  EXPECT_EQ(w.sizes(), torch::IntArrayRef({512, 100}));
  torch::Tensor norms = w.norm(2, 0);
  EXPECT_NEAR(norms.min().item<float>(), 1.0f, 1e-4);
  EXPECT_NEAR(norms.max().item<float>(), 1.0f, 1e-4);
}

TEST(Heads, FactoryDefaultsFollowThePapers) {
  auto ada = qh::make_head({.name = "adaface", .embedding_size = 8, .num_classes = 3});
  auto* a = dynamic_cast<qh::AdaFaceImpl*>(ada.get());
  ASSERT_NE(a, nullptr);
  EXPECT_DOUBLE_EQ(a->options.m(), 0.4);
  EXPECT_DOUBLE_EQ(a->options.h(), 0.333);
  EXPECT_DOUBLE_EQ(a->options.s(), 64.0);
  EXPECT_DOUBLE_EQ(a->options.t_alpha(), 0.01);
  EXPECT_DOUBLE_EQ(a->options.eps(), 1e-3);
  EXPECT_FLOAT_EQ(a->batch_mean.item<float>(), 20.0f);
  EXPECT_FLOAT_EQ(a->batch_std.item<float>(), 100.0f);

  auto mag = qh::make_head({.name = "magface", .embedding_size = 8, .num_classes = 3});
  auto* m = dynamic_cast<qh::MagFaceImpl*>(mag.get());
  ASSERT_NE(m, nullptr);
  EXPECT_DOUBLE_EQ(m->options.l_a(), 10);
  EXPECT_DOUBLE_EQ(m->options.u_a(), 110);
  EXPECT_DOUBLE_EQ(m->options.l_m(), 0.45);
  EXPECT_DOUBLE_EQ(m->options.u_m(), 0.8);
  EXPECT_DOUBLE_EQ(m->options.lambda_g(), 35);
  EXPECT_TRUE(m->options.easy_margin());
  EXPECT_FALSE(m->options.additive());

  auto magcos = qh::make_head({.name = "magface-cos", .embedding_size = 8, .num_classes = 3});
  auto* mc = dynamic_cast<qh::MagFaceImpl*>(magcos.get());
  ASSERT_NE(mc, nullptr);
  EXPECT_DOUBLE_EQ(mc->options.l_m(), 0.35);
  EXPECT_DOUBLE_EQ(mc->options.lambda_g(), 150);
  EXPECT_TRUE(mc->options.additive());

  auto arc = qh::make_head({.name = "arcface", .embedding_size = 8, .num_classes = 3});
  EXPECT_DOUBLE_EQ(dynamic_cast<qh::ArcFaceImpl*>(arc.get())->options.m(), 0.5);
  EXPECT_DOUBLE_EQ(dynamic_cast<qh::ArcFaceImpl*>(arc.get())->options.eps(), 1e-4);
  auto cos = qh::make_head({.name = "cosface", .embedding_size = 8, .num_classes = 3});
  EXPECT_DOUBLE_EQ(dynamic_cast<qh::CosFaceImpl*>(cos.get())->options.m(), 0.35);
}

TEST(Heads, FactoryRejectsUnknownNamesAndForeignOptions) {
  EXPECT_THROW(qh::make_head({.name = "sphereface", .embedding_size = 8, .num_classes = 3}), qface::Error);
  qh::HeadConfig c{.name = "arcface", .embedding_size = 8, .num_classes = 3};
  c.h = 0.5;
  try {
    qh::make_head(c);
    FAIL() << "expected an error";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'h'"), std::string::npos) << e.what();
  }
  qh::HeadConfig m{.name = "magface", .embedding_size = 8, .num_classes = 3};
  m.t_alpha = 0.1;
  EXPECT_THROW(qh::make_head(m), qface::Error);
}

// z = -1: ArcFace at margin m; z = 0: CosFace at margin m; z = +1: s (cos(theta - m) - 2m).
TEST(AdaFace, MarginIdentitiesAtZMinusOneZeroPlusOne) {
  const double m = 0.4, s = 64, phi = 0.9;
  // With h = 1, batch_mean = 50, batch_std = 1 and no EMA update, norms 10, 50
  // and 90 give z = -1, 0, +1 exactly.
  qh::AdaFace head(qh::AdaFaceOptions(2, 2).h(1.0).batch_mean(50).batch_std(1).t_alpha(0.0));
  TwoClass data({phi, phi, phi});
  set_kernel(*head, data.kernel);
  torch::Tensor norms = torch::tensor({10.0f, 50.0f, 90.0f});
  auto out = head->forward(data.x_hat, norms, zeros_labels(3));
  torch::Tensor z = head->last_terms().at("z");
  EXPECT_FLOAT_EQ(z[0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(z[1].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(z[2].item<float>(), 1.0f);

  const double c = std::cos(phi);
  EXPECT_NEAR(out.logits[0][0].item<double>(), s * std::cos(phi + m), 2e-4);         // ArcFace
  EXPECT_NEAR(out.logits[1][0].item<double>(), s * (c - m), 2e-4);                   // CosFace
  EXPECT_NEAR(out.logits[2][0].item<double>(), s * (std::cos(phi - m) - 2 * m), 2e-4);
  for (int i = 0; i < 3; ++i)  // non-target logit is always s cos(theta)
    EXPECT_NEAR(out.logits[i][1].item<double>(), s * std::sin(phi), 2e-4);
  EXPECT_NEAR(head->last_terms().at("g_ang")[0].item<double>(), m, 1e-6);
  EXPECT_NEAR(head->last_terms().at("g_add")[0].item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(head->last_terms().at("g_add")[2].item<double>(), 2 * m, 1e-6);

  // The same logits from the ArcFace and CosFace heads themselves.
  qh::ArcFace arc(qh::FixedMarginOptions(2, 2, m).eps(1e-3));
  set_kernel(*arc, data.kernel);
  EXPECT_NEAR(arc->forward(data.x_hat, norms, zeros_labels(3)).logits[0][0].item<double>(),
              out.logits[0][0].item<double>(), 1e-4);
  qh::CosFace cf(qh::FixedMarginOptions(2, 2, m).eps(1e-3));
  set_kernel(*cf, data.kernel);
  EXPECT_NEAR(cf->forward(data.x_hat, norms, zeros_labels(3)).logits[1][0].item<double>(),
              out.logits[1][0].item<double>(), 1e-4);
}

TEST(AdaFace, EmaUpdatedBeforeUseWithUnbiasedStd) {
  qh::AdaFace head(qh::AdaFaceOptions(2, 2));  // t_alpha 0.01, mean 20, std 100
  TwoClass data({0.1, 0.2, 0.3, 0.4, 0.5});
  // 150 is clamped to 100 before the statistics.
  torch::Tensor norms = torch::tensor({10.0f, 20.0f, 30.0f, 40.0f, 150.0f});
  head->forward(data.x_hat, norms, zeros_labels(5));
  const std::vector<double> safe = {10, 20, 30, 40, 100};
  double mean = 0;
  for (double v : safe) mean += v / 5;
  double var = 0;
  for (double v : safe) var += (v - mean) * (v - mean) / 4;  // n - 1
  const double ema_mean = 0.01 * mean + 0.99 * 20, ema_std = 0.01 * std::sqrt(var) + 0.99 * 100;
  EXPECT_NEAR(head->batch_mean.item<double>(), ema_mean, 1e-4);
  EXPECT_NEAR(head->batch_std.item<double>(), ema_std, 1e-4);
  // z uses the updated statistics.
  const double z0 = std::clamp(0.333 * (10 - ema_mean) / (ema_std + 1e-3), -1.0, 1.0);
  EXPECT_NEAR(head->last_terms().at("z")[0].item<double>(), z0, 1e-6);

  // A second batch moves the EMA again from the updated values.
  head->forward(data.x_hat, norms, zeros_labels(5));
  EXPECT_NEAR(head->batch_mean.item<double>(), 0.01 * mean + 0.99 * ema_mean, 1e-4);
}

TEST(AdaFace, NormIsDetachedAndBuffersAreSaved) {
  qh::AdaFace head(qh::AdaFaceOptions(4, 3));
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({6, 4});
  torch::Tensor norms = x.norm(2, 1, true).detach().requires_grad_(true);
  torch::Tensor x_hat = (x / norms.detach()).requires_grad_(true);
  auto loss = head->loss(x_hat, norms, torch::tensor({0, 1, 2, 0, 1, 2}, torch::kInt64));
  loss.loss.backward();
  EXPECT_TRUE(!norms.grad().defined() || norms.grad().abs().sum().item<double>() == 0.0);
  EXPECT_GT(x_hat.grad().abs().sum().item<double>(), 0.0);

  // The EMA values are buffers: saved and restored with the module.
  std::vector<std::string> names;
  for (const auto& b : head->named_buffers()) names.push_back(b.key());
  EXPECT_EQ(names, (std::vector<std::string>{"batch_mean", "batch_std"}));
  std::stringstream stream;
  torch::save(head, stream);
  qh::AdaFace restored(qh::AdaFaceOptions(4, 3));
  torch::load(restored, stream);
  EXPECT_FLOAT_EQ(restored->batch_mean.item<float>(), head->batch_mean.item<float>());
  EXPECT_FLOAT_EQ(restored->batch_std.item<float>(), head->batch_std.item<float>());
  EXPECT_TRUE(torch::equal(restored->kernel, head->kernel));
}

TEST(MagFace, MarginAtBoundsAndClamping) {
  qh::MagFace head(qh::MagFaceOptions(2, 2));
  torch::Tensor a = torch::tensor({10.0, 110.0, 60.0});
  torch::Tensor m = head->margin(a);
  EXPECT_NEAR(m[0].item<double>(), 0.45, 1e-7);
  EXPECT_NEAR(m[1].item<double>(), 0.8, 1e-7);
  EXPECT_NEAR(m[2].item<double>(), 0.45 + 0.35 / 100 * 50, 1e-7);

  TwoClass data({0.5, 0.5, 0.5});
  set_kernel(*head, data.kernel);
  head->forward(data.x_hat, torch::tensor({2.0f, 500.0f, 60.0f}), zeros_labels(3));
  torch::Tensor aa = head->last_terms().at("a"), mm = head->last_terms().at("margin");
  EXPECT_FLOAT_EQ(aa[0].item<float>(), 10.0f);   // clamped to l_a
  EXPECT_FLOAT_EQ(aa[1].item<float>(), 110.0f);  // clamped to u_a
  EXPECT_NEAR(mm[0].item<double>(), 0.45, 1e-6);
  EXPECT_NEAR(mm[1].item<double>(), 0.8, 1e-6);
}

TEST(MagFace, RegularizerMinimumIsAtUpperBound) {
  qh::MagFace head(qh::MagFaceOptions(2, 2));
  // g(a) = a / u_a^2 + 1 / a decreases on [l_a, u_a] and has its minimum 2 / u_a at u_a.
  torch::Tensor grid = torch::linspace(10, 110, 1001, torch::kFloat64);
  torch::Tensor g = head->regularizer(grid);
  EXPECT_EQ(g.argmin().item<int64_t>(), 1000);
  EXPECT_NEAR(g.min().item<double>(), 2.0 / 110, 1e-12);
  torch::Tensor a = torch::tensor({110.0}, torch::kFloat64).requires_grad_(true);
  head->regularizer(a).sum().backward();
  EXPECT_NEAR(a.grad().item<double>(), 0.0, 1e-12);
  // The batch regularizer is lambda_g * mean(g(a)).
  TwoClass data({0.3, 0.3});
  set_kernel(*head, data.kernel);
  auto out = head->forward(data.x_hat, torch::tensor({20.0f, 110.0f}), zeros_labels(2));
  const double expect = 35 * 0.5 * ((20.0 / 12100 + 1 / 20.0) + (110.0 / 12100 + 1 / 110.0));
  EXPECT_NEAR(out.reg.item<double>(), expect, 1e-5);
}

TEST(MagFace, TargetLogitEasyMarginAndNormGradient) {
  qh::MagFace head(qh::MagFaceOptions(2, 2));
  // phi = 0.5: cos > 0, margin applies; phi = 2.0: cos < 0, easy margin leaves it.
  TwoClass data({0.5, 2.0});
  set_kernel(*head, data.kernel);
  torch::Tensor norms = torch::tensor({60.0f, 60.0f}).requires_grad_(true);
  auto out = head->forward(data.x_hat, norms, zeros_labels(2));
  const double m = 0.45 + 0.35 / 100 * 50;
  EXPECT_NEAR(out.logits[0][0].item<double>(), 64 * std::cos(0.5 + m), 2e-4);
  EXPECT_NEAR(out.logits[1][0].item<double>(), 64 * std::cos(2.0), 2e-4);
  EXPECT_NEAR(out.logits[0][1].item<double>(), 64 * std::sin(0.5), 2e-4);
  // The magnitude is not detached: the loss reaches the norms.
  auto loss = torch::nn::functional::cross_entropy(out.logits, zeros_labels(2)) + out.reg;
  loss.backward();
  EXPECT_GT(norms.grad().abs().sum().item<double>(), 0.0);

  qh::MagFace hard(qh::MagFaceOptions(2, 2).easy_margin(false));
  set_kernel(*hard, data.kernel);
  auto hout = hard->forward(data.x_hat, torch::tensor({60.0f, 60.0f}), zeros_labels(2));
  // theta = 2.0 < pi - m: the margin applies as cos(theta + m).
  EXPECT_NEAR(hout.logits[1][0].item<double>(), 64 * std::cos(2.0 + m), 2e-4);

  qh::MagFace cosv(qh::MagFaceOptions::cosface(2, 2));
  set_kernel(*cosv, data.kernel);
  auto cout_ = cosv->forward(data.x_hat, torch::tensor({60.0f, 60.0f}), zeros_labels(2));
  const double mc = 0.35 + 0.45 / 100 * 50;
  EXPECT_NEAR(cout_.logits[0][0].item<double>(), 64 * (std::cos(0.5) - mc), 2e-4);
}

TEST(Heads, ArcFaceAndCosFaceTargetLogits) {
  TwoClass data({0.7, 1.2});
  qh::ArcFace arc(qh::ArcFaceOptions(2, 2));
  set_kernel(*arc, data.kernel);
  torch::Tensor labels = torch::tensor({0, 1}, torch::kInt64);
  auto a = arc->forward(data.x_hat, torch::ones({2}), labels);
  EXPECT_NEAR(a.logits[0][0].item<double>(), 64 * std::cos(0.7 + 0.5), 2e-4);
  EXPECT_NEAR(a.logits[0][1].item<double>(), 64 * std::sin(0.7), 2e-4);
  // Row 1's target is class 1 at angle pi/2 - 1.2.
  EXPECT_NEAR(a.logits[1][1].item<double>(), 64 * std::cos(M_PI / 2 - 1.2 + 0.5), 2e-4);
  qh::CosFace cf(qh::CosFaceOptions(2, 2));
  set_kernel(*cf, data.kernel);
  auto c = cf->forward(data.x_hat, torch::ones({2}), labels);
  EXPECT_NEAR(c.logits[0][0].item<double>(), 64 * (std::cos(0.7) - 0.35), 2e-4);
  EXPECT_NEAR(c.logits[1][0].item<double>(), 64 * std::cos(1.2), 2e-4);
}

TEST(Heads, LabelMinusOneMeansNoTargetInThisShard) {
  TwoClass data({0.7});
  for (const std::string& name : qh::head_names()) {
    auto head = qh::make_head({.name = name, .embedding_size = 2, .num_classes = 2});
    set_kernel(*head, data.kernel);
    auto out = head->forward(data.x_hat, torch::tensor({30.0f}), torch::tensor({-1}, torch::kInt64));
    EXPECT_NEAR(out.logits[0][0].item<double>(), 64 * std::cos(0.7), 2e-4) << name;
    EXPECT_NEAR(out.logits[0][1].item<double>(), 64 * std::sin(0.7), 2e-4) << name;
  }
}

TEST(Heads, BadLabelsAndShapesAreClearErrors) {
  auto head = qh::make_head({.name = "arcface", .embedding_size = 2, .num_classes = 2});
  TwoClass data({0.7});
  EXPECT_THROW(head->forward(data.x_hat, torch::ones({1}), torch::tensor({2}, torch::kInt64)), qface::Error);
  EXPECT_THROW(head->forward(data.x_hat, torch::ones({1}), torch::tensor({0}, torch::kInt32)), qface::Error);
  EXPECT_THROW(head->forward(torch::ones({1, 3}), torch::ones({1}), torch::tensor({0}, torch::kInt64)),
               qface::Error);
  EXPECT_THROW(head->forward(data.x_hat, torch::ones({2}), torch::tensor({0}, torch::kInt64)), qface::Error);
}
