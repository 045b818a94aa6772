// Finite-difference checks of every head's gradient, in float64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "qface/heads/adaface.h"
#include "qface/heads/curricularface.h"
#include "qface/heads/factory.h"

namespace qh = qface::heads;

namespace {

class DoublePrecision : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    previous_ = torch::get_default_dtype();
    torch::set_default_dtype(caffe2::TypeMeta::Make<double>());
  }
  void TearDown() override { torch::set_default_dtype(previous_); }
  caffe2::TypeMeta previous_;
};

// Central differences of f at `x`, compared element-wise with `analytic` on
// `samples` random positions.
void check_fd(const std::function<double()>& f, torch::Tensor x, const torch::Tensor& analytic, int samples,
              const std::string& what) {
  torch::NoGradGuard g;
  const double h = 1e-6;
  auto flat = x.view({-1});
  auto grad = analytic.reshape({-1});
  torch::Tensor picks = torch::randperm(flat.numel()).slice(0, 0, std::min<int64_t>(samples, flat.numel()));
  for (int64_t k = 0; k < picks.numel(); ++k) {
    const int64_t i = picks[k].item<int64_t>();
    const double v = flat[i].item<double>();
    flat[i] = v + h;
    const double up = f();
    flat[i] = v - h;
    const double down = f();
    flat[i] = v;
    const double fd = (up - down) / (2 * h);
    const double an = grad[i].item<double>();
    EXPECT_NEAR(an, fd, 1e-6 + 1e-5 * std::abs(fd)) << what << " element " << i;
  }
}

}  // namespace

TEST_P(DoublePrecision, GradientMatchesFiniteDifferences) {
  const std::string name = GetParam();
  torch::manual_seed(7);
  const int64_t batch = 6, dim = 5, classes = 4;
  qh::HeadConfig config{.name = name, .embedding_size = dim, .num_classes = classes};
  // CurricularFace's t is a running mean of the target cosines taken without
  // gradient (as the official code), so finite differences would see it move:
  // hold it (t_alpha 0) at a value that makes the hard negatives' weight show.
  if (name == "curricularface") config.t_alpha = 0.0;
  auto head = qh::make_head(config);
  if (auto* cf = dynamic_cast<qh::CurricularFaceImpl*>(head.get())) {
    torch::NoGradGuard g;
    cf->t.fill_(0.3);
  }
  ASSERT_EQ(head->kernel.scalar_type(), torch::kFloat64);
  torch::Tensor x = torch::randn({batch, dim});
  torch::Tensor x_hat = (x / x.norm(2, 1, true)).requires_grad_(true);
  // Norms spread across AdaFace's and MagFace's working ranges.
  torch::Tensor norms = torch::tensor({12.0, 25.0, 40.0, 60.0, 85.0, 105.0}).requires_grad_(true);
  torch::Tensor labels = torch::tensor({0, 1, 2, 3, 1, 2}, torch::kInt64);

  // AdaFace's EMA changes its buffers on every call; every evaluation restores them.
  std::vector<torch::Tensor> buffers;
  for (auto& b : head->buffers()) buffers.push_back(b.clone());
  auto restore = [&] {
    torch::NoGradGuard g;
    auto bs = head->buffers();
    for (std::size_t i = 0; i < bs.size(); ++i) bs[i].copy_(buffers[i]);
  };
  auto loss_value = [&] {
    restore();
    return head->loss(x_hat, norms, labels).loss.item<double>();
  };

  restore();
  auto out = head->loss(x_hat, norms, labels);
  out.loss.backward();
  torch::Tensor g_x = x_hat.grad().clone(), g_w = head->kernel.grad().clone();
  if (name == "curricularface") {  // the case has hard negatives
    EXPECT_GT(head->last_terms().at("hard_negatives").sum().item<double>(), 0.0);
  }
  check_fd(loss_value, x_hat.detach(), g_x, 30, name + " d/d x_hat");
  check_fd(loss_value, head->kernel.detach(), g_w, 20, name + " d/d kernel");
  if (name == "magface" || name == "magface-cos") {
    // The magnitude is trained: its gradient must match too.
    check_fd(loss_value, norms.detach(), norms.grad().clone(), batch, name + " d/d norm");
  } else {
    // The margin of AdaFace uses a detached norm; ArcFace/CosFace ignore it.
    EXPECT_TRUE(!norms.grad().defined() || norms.grad().abs().max().item<double>() == 0.0) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(AllHeads, DoublePrecision,
                         ::testing::Values("adaface", "magface", "magface-cos", "arcface", "cosface",
                                           "curricularface"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });
