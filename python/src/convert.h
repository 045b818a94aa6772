// Conversions between numpy arrays and the library's types for the Python
// module: tensors (zero-copy both ways where the layout allows), images
// (H x W x 3 uint8, RGB unless bgr) and JSON results (plain dicts).
#pragma once

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace qface::py {
namespace pyb = pybind11;

// A float32 C-contiguous view of `a` (converted when it is not) as a tensor
// sharing its memory; `keep` holds the array the tensor points into.
// `what` names the argument in errors; `dims` (when > 0) is required.
torch::Tensor float_tensor(const pyb::handle& a, const std::string& what, int dims, pyb::object& keep);

// An N x D float32 array over the tensor's memory (kept alive by the array).
pyb::array_t<float> to_numpy(const torch::Tensor& t);

// One image (H x W x 3 uint8) or a batch (N x H x W x 3) as BGR mats. RGB
// input (the default, as PIL and torchvision give it) is converted; BGR
// input is wrapped without a copy when C-contiguous.
std::vector<cv::Mat> images_from_numpy(const pyb::handle& a, bool bgr, const std::string& what);
// A BGR mat as an H x W x 3 uint8 array, RGB unless bgr.
pyb::array_t<uint8_t> image_to_numpy(const cv::Mat& bgr_image, bool bgr);

// The JSON value as Python objects (dict, list, float, int, str, bool, None).
pyb::object to_python(const nlohmann::json& j);

// A 1-d array of 0/1 (bool or integer) as bytes; `what` names it in errors.
std::vector<uint8_t> flags_from_numpy(const pyb::handle& a, const std::string& what);

}  // namespace qface::py
