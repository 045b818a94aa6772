// Every head on CUDA equals the same head on the CPU: loss, and the gradients
// of the embeddings, the norms and the class centres, within 1e-4 relative
// (issue #38). Runs where a CUDA device is visible; skipped elsewhere.
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include "qface/heads/factory.h"

namespace {

double relative(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.cpu().to(torch::kFloat64), y = b.cpu().to(torch::kFloat64);
  return ((x - y).norm() / y.norm().clamp_min(1e-12)).item<double>();
}

}  // namespace

TEST(HeadsOnCuda, LossAndGradientsEqualTheCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const torch::Device gpu(torch::kCUDA, 0);
  for (const std::string& name : qface::heads::head_names()) {
    SCOPED_TRACE(name);
    torch::manual_seed(3);
    qface::heads::HeadConfig hc;
    hc.name = name;
    hc.embedding_size = 32;
    hc.num_classes = 50;
    auto cpu_head = qface::heads::make_head(hc);
    auto gpu_head = qface::heads::make_head(hc);
    {
      torch::NoGradGuard no_grad;
      gpu_head->kernel.copy_(cpu_head->kernel);
    }
    gpu_head->to(gpu);
    const torch::Tensor features = torch::randn({24, 32}) * 20;
    const torch::Tensor labels = torch::randint(0, 50, {24}, torch::kInt64);
    auto run = [&](qface::heads::HeadImpl& head, const torch::Device& device) {
      torch::Tensor f = features.to(device).requires_grad_(true);
      torch::Tensor norm = f.norm(2, 1, true);
      torch::Tensor x_hat = f / norm;
      // Two steps, so that running statistics (AdaFace, CurricularFace) are used after an update.
      head.loss(x_hat, norm, labels.to(device));
      qface::heads::LossOutput out = head.loss(x_hat, norm, labels.to(device));
      out.loss.backward();
      return std::make_tuple(out.loss.detach().cpu(), f.grad().cpu(), head.kernel.grad().cpu());
    };
    auto [loss_c, gf_c, gk_c] = run(*cpu_head, torch::kCPU);
    auto [loss_g, gf_g, gk_g] = run(*gpu_head, gpu);
    EXPECT_LE(relative(loss_g, loss_c), 1e-4);
    EXPECT_LE(relative(gf_g, gf_c), 1e-4);
    EXPECT_LE(relative(gk_g, gk_c), 1e-4);
  }
}
