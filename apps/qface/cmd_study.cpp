// qface study: the main job at a scale that resolves the papers' claims
// (preset study, configs/synth_study.toml, six heads, seeds 0-3); resumable
// stage by stage.
#include "apps/qface/command.h"
#include "apps/qface/main_job_options.h"

namespace qface::cli {
namespace {

Runner setup(CLI::App& app) {
  auto o = std::make_shared<study::MainJobOptions>(study::study_options());
  add_main_job_options(app, *o, "configs/synth_study.toml");
  return [o] { return run_main_job_command(*o); };
}

const Registrar registrar{{"study", "The fair test at study scale: preset study, 14 epochs, six heads, seeds 0-3 (~7 h on 2 cores, resumable)", setup}};

}  // namespace
}  // namespace qface::cli
