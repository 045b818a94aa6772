// The Python module `qface._qface` (re-exported by qface/__init__.py): the
// C++ library's public API, numpy in and out. Each bind_*.cpp adds one part.
#include <pybind11/pybind11.h>
#include <spdlog/spdlog.h>

#include "bindings.h"
#include "qface/core/error.h"

namespace pyb = pybind11;

PYBIND11_MODULE(_qface, m) {
  m.doc() = "qface: quality-aware face recognition (AdaFace, MagFace) in C++";
  // qface's one-line errors (file and position named) as qface.Error, a ValueError.
  pyb::register_exception<qface::Error>(m, "Error", PyExc_ValueError);
  pyb::setattr(m.attr("Error"), "__doc__",
               pyb::str("An error of the qface library (a ValueError): bad input, a corrupt or missing file, a wrong "
                        "shape; the message names the file and position as the qface command's does."));
  m.attr("__version__") = qface::py::version();
  m.def(
      "set_log_level",
      [](const std::string& level) {
        const auto l = spdlog::level::from_str(level);
        qface::require(l != spdlog::level::off || level == "off",
                       "log level '{}': expected trace, debug, info, warn, error or off", level);
        spdlog::set_level(l);
      },
      pyb::arg("level"), "The library's log level (it logs to stdout, as the qface command): trace ... off.");
  qface::py::bind_model(m);
  qface::py::bind_align(m);
  qface::py::bind_data(m);
  qface::py::bind_eval(m.def_submodule("eval", "Evaluation protocols on features (docs/method.md), results as dicts"));
  qface::py::bind_gallery(m);
  qface::py::bind_synth(m.def_submodule("synth", "Synthetic identities with ground-truth quality"));
}
