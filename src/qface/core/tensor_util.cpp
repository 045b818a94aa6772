#include "qface/core/tensor_util.h"

#include <torch/torch.h>

#include "qface/core/error.h"

namespace qface {

std::string shape_string(c10::IntArrayRef sizes) {
  std::string s = "(";
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(sizes[i]);
  }
  if (sizes.size() == 1) s += ",";
  return s + ")";
}

std::vector<double> to_vector(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous().reshape({-1});
  const double* p = c.data_ptr<double>();
  return std::vector<double>(p, p + c.numel());
}

nlohmann::json to_json(const torch::Tensor& t) {
  if (t.dim() > 1) fail("to_json: expected a 0-D or 1-D tensor, got shape {}", shape_string(t.sizes()));
  const bool integral = !t.is_floating_point() && t.scalar_type() != torch::kBool;
  if (integral) {
    torch::Tensor c = t.detach().to(torch::kCPU, torch::kInt64).contiguous().reshape({-1});
    const int64_t* p = c.data_ptr<int64_t>();
    if (t.dim() == 0) return p[0];
    return std::vector<int64_t>(p, p + c.numel());
  }
  std::vector<double> v = to_vector(t);
  if (t.dim() == 0) return v.at(0);
  return v;
}

std::pair<torch::Tensor, torch::Tensor> fuse_flip(const torch::Tensor& e, const torch::Tensor& n,
                                                  const torch::Tensor& e_flip, const torch::Tensor& n_flip) {
  require(e.dim() == 2 && e.sizes() == e_flip.sizes(), "flip fusion: {} vs {} in the flipped features",
          shape_string(e.sizes()), shape_string(e_flip.sizes()));
  require(n.numel() == e.size(0) && n_flip.numel() == e.size(0), "flip fusion: norm counts differ from rows");
  torch::Tensor sum = e * n.reshape({-1, 1}) + e_flip * n_flip.reshape({-1, 1});
  torch::Tensor norm = sum.norm(2, 1);
  return {(sum / norm.clamp_min(1e-12).reshape({-1, 1})).contiguous(), norm.contiguous()};
}

}  // namespace qface
