// qface._torch: the margin heads for Python's torch (qface.heads wraps them
// as torch.nn.Modules). Debian's python3-torch runs on the same LibTorch 1.13
// shared libraries as qface, so tensors cross without a copy (the same
// TensorImpl, THPVariable_Wrap / Unpack) and autograd runs through the C++
// head: the loss and its gradients are the ones `qface margin` computes.
#include <torch/extension.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "qface/core/error.h"
#include "qface/heads/factory.h"
#include "qface/heads/head.h"

namespace py = pybind11;
using qface::heads::HeadImpl;

namespace {

qface::heads::HeadConfig config_of(const std::string& name, int64_t embedding_size, int64_t num_classes,
                                   const py::dict& options) {
  qface::heads::HeadConfig c;
  c.name = name;
  c.embedding_size = embedding_size;
  c.num_classes = num_classes;
  for (const auto& [key, value] : options) {
    const std::string k = py::str(key);
    bool known = false;
    std::vector<std::string> keys;
    qface::heads::for_each_head_option([&](const qface::heads::HeadOptionInfo& o, auto member) {
      keys.emplace_back(o.key);
      if (k != o.key) return;
      known = true;
      using T = typename std::remove_reference_t<decltype(c.*member)>::value_type;
      c.*member = value.cast<T>();
    });
    qface::require(known, "head option '{}' is unknown ({})", k, fmt::join(keys, ", "));
  }
  return c;
}

}  // namespace

PYBIND11_MODULE(_torch, m) {
  m.doc() = "qface's margin heads on torch tensors (use qface.heads)";
  // The same qface.Error as the main module.
  static py::object error = py::module_::import("qface._qface").attr("Error");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const qface::Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });

  py::class_<HeadImpl, std::shared_ptr<HeadImpl>>(m, "Head")
      .def_property_readonly("name", &HeadImpl::name)
      .def_property_readonly("num_classes", &HeadImpl::num_classes)
      .def_property_readonly("embedding_size", &HeadImpl::embedding_size)
      .def("kernel", [](const HeadImpl& h) { return h.kernel; })
      .def("set_kernel",
           [](HeadImpl& h, const torch::Tensor& k) {
             qface::require(k.sizes() == h.kernel.sizes() && k.scalar_type() == torch::kFloat32,
                            "kernel: expected float32 [{}, {}]", h.embedding_size(), h.num_classes());
             h.kernel = k;  // the Python Parameter itself: its .grad receives the C++ head's gradient
           })
      .def("set_training", [](HeadImpl& h, bool on) { h.train(on); })
      .def("loss",
           [](HeadImpl& h, const torch::Tensor& x_hat, const torch::Tensor& norms, const torch::Tensor& labels) {
             qface::heads::LossOutput o = h.loss(x_hat, norms, labels);
             return py::make_tuple(o.loss, o.logits, o.ce, o.reg);
           })
      .def("terms", [](const HeadImpl& h) {
        py::dict d;
        for (const auto& [k, v] : h.last_terms()) d[py::str(k)] = v;
        for (const auto& b : h.named_buffers()) d[py::str(b.key())] = b.value();
        return d;
      });
  m.def(
      "make_head",
      [](const std::string& name, int64_t embedding_size, int64_t num_classes, const py::dict& options) {
        return qface::heads::make_head(config_of(name, embedding_size, num_classes, options)).ptr();
      },
      py::arg("name"), py::arg("embedding_size"), py::arg("num_classes"), py::arg("options") = py::dict());
}
