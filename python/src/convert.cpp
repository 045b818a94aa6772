#include "convert.h"

#include <opencv2/imgproc.hpp>
#include <pybind11/stl.h>
#include <torch/torch.h>

#include <cstring>

#include "qface/core/error.h"
#include "qface/deploy/align.h"

namespace qface::py {

bool is_torch(const pyb::handle& a) {
  pyb::dict modules = pyb::module_::import("sys").attr("modules");
  if (!modules.contains("torch")) return false;
  return pyb::isinstance(a, modules["torch"].attr("Tensor"));
}

pyb::object numpy_view(const pyb::handle& a) {
  if (!is_torch(a)) return pyb::reinterpret_borrow<pyb::object>(a);
  return a.attr("detach")().attr("cpu")().attr("numpy")();
}

pyb::object like_input(const pyb::array& result, const pyb::handle& input) {
  if (!is_torch(input)) return result;
  return pyb::module_::import("torch").attr("from_numpy")(result);
}

torch::Tensor float_tensor(const pyb::handle& a, const std::string& what, int dims, pyb::object& keep) {
  auto arr = pyb::array_t<float, pyb::array::c_style | pyb::array::forcecast>::ensure(numpy_view(a));
  require(static_cast<bool>(arr), "{}: expected a numeric array", what);
  require(dims <= 0 || arr.ndim() == dims, "{}: expected {} dimensions, got {}", what, dims, arr.ndim());
  std::vector<int64_t> shape(arr.shape(), arr.shape() + arr.ndim());
  keep = arr;
  // from_blob does not own the memory: `keep` (the caller's) holds the array while the tensor is used.
  return torch::from_blob(const_cast<float*>(arr.data()), shape, torch::kFloat32);
}

pyb::array_t<float> to_numpy(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kFloat32).contiguous();
  auto* owner = new torch::Tensor(c);
  pyb::capsule free(owner, [](void* p) { delete static_cast<torch::Tensor*>(p); });
  std::vector<pyb::ssize_t> shape(c.sizes().begin(), c.sizes().end());
  return pyb::array_t<float>(shape, c.data_ptr<float>(), free);
}

std::vector<cv::Mat> images_from_numpy(const pyb::handle& a, bool bgr, const std::string& what) {
  pyb::object in = pyb::reinterpret_borrow<pyb::object>(a);
  if (is_torch(a)) {
    // torchvision's uint8 layout is channels first: make it H x W x 3 (one copy).
    const auto shape = a.attr("shape").cast<std::vector<int64_t>>();
    const std::size_t d = shape.size();
    if ((d == 3 || d == 4) && shape[d - 3] == 3 && shape[d - 1] != 3)
      in = a.attr("permute")(*(d == 3 ? pyb::make_tuple(1, 2, 0) : pyb::make_tuple(0, 2, 3, 1))).attr("contiguous")();
  }
  auto arr = pyb::array::ensure(numpy_view(in));
  require(static_cast<bool>(arr), "{}: expected a numpy array of images", what);
  require(arr.dtype().is(pyb::dtype::of<uint8_t>()), "{}: expected uint8 pixels, got dtype {}", what,
          std::string(pyb::str(arr.dtype())));
  require(arr.ndim() == 3 || arr.ndim() == 4, "{}: expected H x W x 3 or N x H x W x 3, got {} dimensions", what,
          arr.ndim());
  const bool batch = arr.ndim() == 4;
  const pyb::ssize_t n = batch ? arr.shape(0) : 1, h = arr.shape(batch ? 1 : 0), w = arr.shape(batch ? 2 : 1),
                     c = arr.shape(batch ? 3 : 2);
  require(c == 3, "{}: expected 3 channels (the last axis), got {}", what, c);
  require(h > 0 && w > 0, "{}: empty image ({} x {})", what, h, w);
  auto contiguous = pyb::array_t<uint8_t, pyb::array::c_style | pyb::array::forcecast>::ensure(arr);
  std::vector<cv::Mat> out;
  for (pyb::ssize_t i = 0; i < n; ++i) {
    const uint8_t* p = contiguous.data() + i * h * w * 3;
    cv::Mat view(static_cast<int>(h), static_cast<int>(w), CV_8UC3, const_cast<uint8_t*>(p));
    cv::Mat img;
    if (bgr) img = view.clone();  // owned: the GIL is released while the library works on it
    else cv::cvtColor(view, img, cv::COLOR_RGB2BGR);
    out.push_back(img);
  }
  return out;
}

pyb::array_t<uint8_t> image_to_numpy(const cv::Mat& bgr_image, bool bgr) {
  cv::Mat img;
  if (bgr) img = bgr_image.isContinuous() ? bgr_image : bgr_image.clone();
  else cv::cvtColor(bgr_image, img, cv::COLOR_BGR2RGB);
  pyb::array_t<uint8_t> out({img.rows, img.cols, 3});
  std::memcpy(out.mutable_data(), img.data, img.total() * 3);
  return out;
}

pyb::dict face_dict(const std::optional<deploy::Face>& face, const cv::Mat& crop, bool bgr) {
  pyb::dict d;
  d["crop"] = image_to_numpy(crop, bgr);
  if (face) {
    pyb::array_t<float> pts({5, 2});
    for (int i = 0; i < 5; ++i) {
      pts.mutable_at(i, 0) = static_cast<float>(face->landmarks[static_cast<std::size_t>(i)].x);
      pts.mutable_at(i, 1) = static_cast<float>(face->landmarks[static_cast<std::size_t>(i)].y);
    }
    d["points"] = pts;
    d["box"] = pyb::make_tuple(face->box.x, face->box.y, face->box.width, face->box.height);
    d["score"] = face->score;
  } else {
    d["points"] = pyb::none();  // the input was taken as an aligned crop
    d["box"] = pyb::none();
    d["score"] = pyb::none();
  }
  return d;
}

pyb::object to_python(const nlohmann::json& j) {
  // Exactly the numbers the CLI's JSON holds: through the same text.
  return pyb::module_::import("json").attr("loads")(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::vector<uint8_t> flags_from_numpy(const pyb::handle& a, const std::string& what) {
  auto arr = pyb::array_t<int64_t, pyb::array::c_style | pyb::array::forcecast>::ensure(numpy_view(a));
  require(static_cast<bool>(arr) && arr.ndim() == 1, "{}: expected a 1-d array of booleans", what);
  std::vector<uint8_t> out(static_cast<std::size_t>(arr.shape(0)));
  for (pyb::ssize_t i = 0; i < arr.shape(0); ++i) {
    const int64_t v = arr.data()[i];
    require(v == 0 || v == 1, "{}[{}] is {}, expected a boolean", what, i, v);
    out[static_cast<std::size_t>(i)] = static_cast<uint8_t>(v);
  }
  return out;
}

}  // namespace qface::py
