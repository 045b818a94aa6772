// Shared by the `qface bench ...` verbs: best-of timing and the Python
// side-by-side references (/usr/bin/python3 with Debian's python3-torch or numpy).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>

namespace qface::cli {

// Best-of-iters seconds of f() after `warmup` untimed calls.
double best_seconds(const std::function<void()>& f, int warmup, int iters);

// The folder of bench/python/<script>: `dir` when given, else the first of
// next to the build and the working folder that holds it; empty when none does.
std::string python_script_dir(const std::string& script, const std::string& dir);

// Runs `file` with `args` under /usr/bin/python3 (with `threads` > 0 as its
// OpenMP and BLAS threads) and parses the JSON object it prints last. On
// failure returns null and explains why in `note` (no python, the script
// failed or printed no JSON); on success note = "torch <version>".
nlohmann::json run_python_script(const std::filesystem::path& file, const std::string& args, int threads,
                                 std::string& note);

// run_python_script on bench/python/<script>, found by python_script_dir;
// the notes above, or that the script was not found.
nlohmann::json run_python_reference(const std::string& script, const std::string& args, const std::string& dir,
                                    std::string& note, int threads = 0);

}  // namespace qface::cli
