// qface study: the main job at a scale that resolves the papers' claims
// (preset full, configs/synth_study.toml, seeds 0 1 2); resumable stage by stage.
#include "apps/qface/command.h"
#include "apps/qface/main_job_options.h"

namespace qface::cli {
namespace {

Runner setup(CLI::App& app) {
  auto o = std::make_shared<pipeline::MainJobOptions>(pipeline::study_options());
  add_main_job_options(app, *o, "configs/synth_study.toml");
  return [o] { return run_main_job_command(*o); };
}

const Registrar registrar{{"study", "The main job at study scale: preset full, 3 epochs, seeds 0 1 2 (~3 h on 2 cores)", setup}};

}  // namespace
}  // namespace qface::cli
