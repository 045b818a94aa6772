// The one precision switch of the inference commands (infer/precision.h):
// --precision auto|fp32|bf16|int8, with --bf16 kept as an alias.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace qface::cli {

inline void add_precision_option(CLI::App& app, std::string& precision) {
  app.add_option("--precision", precision,
                 "fp32; bf16; int8 (weights from `qface quantize`); auto: the fastest that passes the accuracy guard "
                 "against fp32 on this CPU (measured once per model and machine, cached in $XDG_CACHE_HOME/qface)")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "int8"}))
      ->capture_default_str();
  app.add_flag_callback("--bf16", [&precision] { precision = "bf16"; }, "the same as --precision bf16");
}

}  // namespace qface::cli
