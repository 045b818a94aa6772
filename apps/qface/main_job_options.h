// Options and runner shared by `qface demo` and `qface study`.
#pragma once

#include <CLI/CLI.hpp>

#include "qface/study/main_job.h"

namespace qface::cli {

void add_main_job_options(CLI::App& app, study::MainJobOptions& options, const char* recipe);
int run_main_job_command(const study::MainJobOptions& options);

}  // namespace qface::cli
