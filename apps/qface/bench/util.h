// Shared by the `qface bench ...` verbs: best-of timing and the Python eager
// side-by-side reference (/usr/bin/python3 with Debian's python3-torch).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace qface::cli {

// Best-of-iters seconds of f() after `warmup` untimed calls.
double best_seconds(const std::function<void()>& f, int warmup, int iters);

// Runs bench/python/<script> (found next to the build or in the working
// folder, or in `dir` when given) with `args` under /usr/bin/python3 and
// parses the JSON object it prints last. On failure returns null and explains
// why in `note` (no python, no torch, script failed); on success note = "torch <version>".
nlohmann::json run_python_reference(const std::string& script, const std::string& args, const std::string& dir,
                                    std::string& note);

}  // namespace qface::cli
