// qface._torch: the margin heads for Python's torch (qface.heads wraps them
// as torch.nn.Modules). Debian's python3-torch runs on the same LibTorch 1.13
// shared libraries as qface, so tensors cross without a copy (the same
// TensorImpl, THPVariable_Wrap / Unpack) and autograd runs through the C++
// head: the loss and its gradients are the ones `qface margin` computes.
#include <torch/extension.h>

#include <memory>

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
    if (k == "easy_margin") {
      c.easy_margin = value.cast<bool>();
      continue;
    }
    if (k == "stats_init") {
      c.stats_init = value.cast<std::string>();
      continue;
    }
    std::optional<double>* slot = k == "m" ? &c.m : k == "h" ? &c.h : k == "s" ? &c.s : k == "t_alpha" ? &c.t_alpha
                                : k == "eps" ? &c.eps : k == "batch_mean" ? &c.batch_mean
                                : k == "batch_std" ? &c.batch_std : k == "fixed_z" ? &c.fixed_z
                                : k == "l_a" ? &c.l_a : k == "u_a" ? &c.u_a
                                : k == "l_m" ? &c.l_m : k == "u_m" ? &c.u_m : k == "lambda_g" ? &c.lambda_g : nullptr;
    qface::require(slot != nullptr, "head option '{}' is unknown (m, h, s, t_alpha, eps, batch_mean, batch_std, "
                   "stats_init, fixed_z, l_a, u_a, l_m, u_m, lambda_g, easy_margin)", k);
    *slot = value.cast<double>();
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
