// qface demo: the main job (see README and qface/pipeline/main_job.h).
#include <spdlog/spdlog.h>

#include <iostream>

#include "apps/qface/command.h"
#include "qface/pipeline/main_job.h"

namespace qface::cli {
namespace {

int run_demo(const pipeline::MainJobOptions& o) {
  pipeline::MainJobResult r = pipeline::run_main_job(o);
  if (r.interrupted) return 130;
  std::cout << "\n" << r.table << "\n";
  for (const auto& line : r.comparison["findings"]) std::cout << "- " << line.get<std::string>() << "\n";
  std::cout << "\nTable: " << (o.out / "comparison.md").string() << "  Report: " << r.report.string() << "\n";
  return 0;
}

Runner setup(CLI::App& app) {
  auto o = std::make_shared<pipeline::MainJobOptions>();
  app.add_option("--out", o->out, "output folder (data/, one run folder per head, comparison.md, report.html)")
      ->capture_default_str();
  app.add_option("--config", o->config, "training recipe (default: configs/synth_demo.toml)");
  app.add_option("--preset", o->preset, "qface synth preset for the data")->capture_default_str();
  app.add_option("--heads", o->heads, "heads to train and compare")->capture_default_str();
  app.add_option("--set", o->overrides, "override a config key for every run (see qface train --help)");
  app.add_option("--threads", o->threads, "threads (0: every core)")->capture_default_str();
  app.footer(
      "Generates the synthetic set, trains each head with the same backbone, data and steps, evaluates them on the "
      "high / mixed / low quality verification sets, prints the comparison and writes report.html. Run it again "
      "after an interruption (Ctrl-C) to resume.");
  return [o] { return run_demo(*o); };
}

const Registrar registrar{{"demo", "The main job: synth data -> train AdaFace and ArcFace -> evaluate -> report", setup}};

}  // namespace
}  // namespace qface::cli
