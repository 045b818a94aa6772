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

}  // namespace qface
