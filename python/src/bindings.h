// The parts of the Python module, one bind_*.cpp each.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

namespace qface::py {
std::string version();
void bind_model(pybind11::module_& m);    // load_model, Model (embed, align, probe)
void bind_align(pybind11::module_& m);    // align (no model), quality
void bind_data(pybind11::module_& m);     // RecordIO, RecordIOWriter, read_bin, write_bin
void bind_eval(pybind11::module_ m);      // eval.verify, rank, cluster, edc
void bind_gallery(pybind11::module_& m);  // Gallery
void bind_synth(pybind11::module_ m);     // synth.generate
}  // namespace qface::py
