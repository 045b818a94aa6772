// The face detector's options, declared once for every command that detects
// faces (align, verify, quality, search, serve).
#pragma once

#include <CLI/CLI.hpp>

#include "qface/deploy/align.h"

namespace qface::cli {

// --detector --detector-weights --detect-min-score --detect-scan
// --detect-scan-max-pixels --upsample --detect-max-pixels --landmark-model.
void add_detector_options(CLI::App& app, deploy::DetectorOptions& o);

}  // namespace qface::cli
