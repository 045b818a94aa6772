// Small helpers between tensors, text and JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <utility>
#include <vector>

namespace qface {

// "(3, 4)" style text of a shape, for messages.
std::string shape_string(c10::IntArrayRef sizes);

// A 0-D or 1-D tensor as a JSON number or array (doubles, or integers for integer dtypes).
nlohmann::json to_json(const torch::Tensor& t);

// A 1-D tensor as a std::vector<double>.
std::vector<double> to_vector(const torch::Tensor& t);

// AdaFace's norm-weighted flip fusion (docs/method.md, Flip fusion):
// f = e * n + e_f * n_f over rows of normalized features e, e_f with norms n,
// n_f; returns f / ||f|| (rows) and ||f||. The one implementation: embed, eval,
// validation, the main job and the deployment path all call it.
std::pair<torch::Tensor, torch::Tensor> fuse_flip(const torch::Tensor& e, const torch::Tensor& n,
                                                  const torch::Tensor& e_flip, const torch::Tensor& n_flip);

}  // namespace qface
