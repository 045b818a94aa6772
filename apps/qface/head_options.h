// The margin-head flags shared by every command that builds a head.
#pragma once

#include <CLI/CLI.hpp>

#include "qface/heads/factory.h"

namespace qface::cli {

// --head, --m, --h, --s, --t-alpha, --batch-mean, --batch-std, --stats-init,
// --fixed-z, --eps, --l-a, --u-a, --l-m, --u-m, --lambda-g, --hard-margin. Flags left out keep
// the chosen head's paper defaults.
void add_head_options(CLI::App& app, heads::HeadConfig& config);

}  // namespace qface::cli
