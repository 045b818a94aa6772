// Small helpers between tensors, text and JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

namespace qface {

// "(3, 4)" style text of a shape, for messages.
std::string shape_string(c10::IntArrayRef sizes);

// A 0-D or 1-D tensor as a JSON number or array (doubles, or integers for integer dtypes).
nlohmann::json to_json(const torch::Tensor& t);

// A 1-D tensor as a std::vector<double>.
std::vector<double> to_vector(const torch::Tensor& t);

}  // namespace qface
