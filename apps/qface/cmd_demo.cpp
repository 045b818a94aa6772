// qface demo: the main job (see README and qface/study/main_job.h).
#include "apps/qface/command.h"
#include "apps/qface/main_job_options.h"

namespace qface::cli {
namespace {

Runner setup(CLI::App& app) {
  auto o = std::make_shared<study::MainJobOptions>();
  add_main_job_options(app, *o, "configs/synth_demo.toml");
  return [o] { return run_main_job_command(*o); };
}

const Registrar registrar{{"demo", "The main job: synth data -> train AdaFace, MagFace, ArcFace -> evaluate -> claims", setup}};

}  // namespace
}  // namespace qface::cli
