// The margin-head flags shared by every command that builds a head.
#pragma once

#include <CLI/CLI.hpp>

#include "qface/heads/factory.h"

namespace qface::cli {

// --head and one flag per head option (QFACE_HEAD_OPTIONS in
// heads/head_config.h: --m, --s, --t-alpha, ..., --hard-margin), each help
// listing the heads that take it with their defaults. Flags left out keep the
// chosen head's paper defaults.
void add_head_options(CLI::App& app, heads::HeadConfig& config);

}  // namespace qface::cli
