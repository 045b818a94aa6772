#include "qface/heads/toy_embeddings.h"

#include <torch/torch.h>

#include "qface/core/error.h"
#include "qface/heads/head.h"

namespace qface::heads {

ToyEmbeddings make_toy_embeddings(int64_t n, int64_t dim, int64_t classes, uint64_t seed) {
  require(n > 0 && dim > 1 && classes > 1, "toy embeddings: need n > 0, dim > 1, classes > 1");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  ToyEmbeddings t;
  {
    torch::Tensor w = torch::empty({dim, classes}, f32).uniform_(-1, 1, gen);
    t.kernel = w / w.norm(2, 0, true);
  }
  t.labels = torch::randint(0, classes, {n}, gen, torch::TensorOptions().dtype(torch::kInt64));
  torch::Tensor u = torch::rand({n}, gen, f32);
  t.quality = 1 - 0.9 * u.pow(3);
  torch::Tensor noise = torch::randn({n, dim}, gen, f32);
  noise = noise / noise.norm(2, 1, true);
  torch::Tensor centre = t.kernel.t().index_select(0, t.labels);
  torch::Tensor q = t.quality.unsqueeze(1);
  torch::Tensor dir = q * centre + (1 - q) * noise;
  dir = dir / dir.norm(2, 1, true);
  torch::Tensor norm = (8 + 42 * t.quality + 2 * torch::randn({n}, gen, f32)).clamp_min(1);
  t.embeddings = dir * norm.unsqueeze(1);
  return t;
}

}  // namespace qface::heads
