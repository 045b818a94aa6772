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
#include <optional>
#include <string>
#include <vector>

namespace qface::deploy {
struct Face;
}

namespace qface::py {
namespace pyb = pybind11;

// Torch tensors (when the caller's Python has imported torch; qface never
// imports it): a CPU tensor crosses as a numpy view of its memory (no copy;
// detached first), and results come back as torch tensors over the result's
// memory (torch.from_numpy, no copy) when the input was one.
bool is_torch(const pyb::handle& a);
// `a` as an array-like: a torch tensor becomes tensor.detach().cpu().numpy() (a view), anything else is returned.
pyb::object numpy_view(const pyb::handle& a);
// `result` as a torch.Tensor sharing its memory when `input` is a torch tensor, else `result` itself.
pyb::object like_input(const pyb::array& result, const pyb::handle& input);

// A float32 C-contiguous view of `a` (converted when it is not) as a tensor
// sharing its memory; `keep` holds the array the tensor points into.
// `what` names the argument in errors; `dims` (when > 0) is required.
torch::Tensor float_tensor(const pyb::handle& a, const std::string& what, int dims, pyb::object& keep);

// An N x D float32 array over the tensor's memory (kept alive by the array).
pyb::array_t<float> to_numpy(const torch::Tensor& t);

// One image (H x W x 3 uint8) or a batch (N x H x W x 3) as BGR mats; a
// torch uint8 tensor may also be C x H x W (torchvision.io.read_image) or
// N x C x H x W. RGB
// input (the default, as PIL and torchvision give it) is converted; BGR
// input is wrapped without a copy when C-contiguous.
std::vector<cv::Mat> images_from_numpy(const pyb::handle& a, bool bgr, const std::string& what);
// A BGR mat as an H x W x 3 uint8 array, RGB unless bgr.
pyb::array_t<uint8_t> image_to_numpy(const cv::Mat& bgr_image, bool bgr);

// {"crop": H x W x 3 uint8 (RGB unless bgr), "points": 5 x 2 float32 in the
// input image or None, "box": (x, y, w, h) or None, "score": detector score
// or None}: None entries when the input was taken as an aligned crop.
pyb::dict face_dict(const std::optional<deploy::Face>& face, const cv::Mat& crop, bool bgr);

// The JSON value as Python objects (dict, list, float, int, str, bool, None).
pyb::object to_python(const nlohmann::json& j);

// A 1-d array of 0/1 (bool or integer) as bytes; `what` names it in errors.
std::vector<uint8_t> flags_from_numpy(const pyb::handle& a, const std::string& what);

}  // namespace qface::py
