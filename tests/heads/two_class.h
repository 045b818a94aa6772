// Inputs whose cosines are known by hand: two classes in D = 2 with centres
// e1 (class 0) and e2 (class 1), and unit embeddings at angle phi from e1, so
// cos_0 = cos(phi) and cos_1 = sin(phi).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "qface/heads/head.h"

namespace qface::testing {

// [N, 2] rows (cos phi, sin phi).
inline torch::Tensor unit_rows(const std::vector<double>& phis) {
  std::vector<float> xs;
  for (double p : phis) {
    xs.push_back(static_cast<float>(std::cos(p)));
    xs.push_back(static_cast<float>(std::sin(p)));
  }
  return torch::tensor(xs).reshape({static_cast<int64_t>(phis.size()), 2});
}

inline void set_kernel(heads::HeadImpl& head, const torch::Tensor& k) {
  torch::NoGradGuard g;
  head.kernel.copy_(k);
}

}  // namespace qface::testing
