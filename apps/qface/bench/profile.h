// Operator profile of one call (LibTorch's profiler): self CPU time per
// operator, the same measure as Python's `torch.autograd.profiler` key
// averages, so qface's and Python's steps can be put side by side.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace qface::cli {

// {"wall_ms": w, "ops": {name: {"self_ms": s, "calls": c}}} for one call of f.
// Time outside any operator (autograd engine, our own code) is wall_ms minus
// the sum of self_ms.
nlohmann::json profile_ops(const std::function<void()>& f);

// Prints the `top` operators by qface self time, with Python's time for the
// same operator when `python` has it, then the totals.
void print_profile(const nlohmann::json& qface, const nlohmann::json& python, int top);

}  // namespace qface::cli
