// Options shared by the deployment commands (verify, quality, search, serve):
// the backbone, its weights, flip fusion, alignment mode, detector, quality calibration.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "qface/deploy/pipeline.h"

namespace qface::cli {

struct PipelineArgs {
  deploy::PipelineOptions options;
  std::string weights, align = "auto", quality_calibration, precision = "fp32";
  bool flip_fuse = true;
  deploy::PipelineOptions resolve() const;  // the options with the strings applied
};

// Declares --arch --weights --flip-fuse/--no-flip-fuse --align, the detector's options
// (detector_options.h), --quality-calibration --threads --precision on `app`.
void add_pipeline_options(CLI::App& app, PipelineArgs& a);

}  // namespace qface::cli
