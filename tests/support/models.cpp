#include "tests/support/models.h"

#include <torch/torch.h>

namespace qface::testing {

void randomize_bn_stats(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& kv : m.named_buffers()) {
    if (kv.key().ends_with("running_mean")) kv.value().copy_(torch::randn_like(kv.value()) * 0.1);
    if (kv.key().ends_with("running_var")) kv.value().copy_(torch::rand_like(kv.value()) * 0.5 + 0.75);
  }
}

}  // namespace qface::testing
