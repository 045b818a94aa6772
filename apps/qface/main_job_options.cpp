#include "apps/qface/main_job_options.h"

#include <iostream>

namespace qface::cli {

int run_main_job_command(const study::MainJobOptions& o) {
  study::MainJobResult r = study::run_main_job(o);
  if (r.interrupted) return 130;
  std::cout << "\n" << r.table << "\n";
  std::cout << "Table: " << (o.out / "comparison.md").string() << "  Report: " << r.report.string() << "\n";
  return 0;
}

void add_main_job_options(CLI::App& app, study::MainJobOptions& o, const char* recipe) {
  app.add_option("--out", o.out, "output folder (data/, run folders, comparison.md/.json, report.html)")
      ->capture_default_str();
  app.add_option("--config", o.config, std::string("training recipe (default: ") + recipe + ")");
  app.add_option("--preset", o.preset, "qface synth preset for the data")->capture_default_str();
  app.add_option("--heads", o.heads,
                 "runs to train and compare: adaface, arcface, magface, cosface, curricularface, or the controls "
                 "adaface_z-1 / adaface_z0 / adaface_z+1 (z held fixed) and adaface_official (the official code's "
                 "statistics start)")
      ->capture_default_str();
  app.add_option("--identity-free", o.identity_free,
                 "share of identity-free training images (qface synth --identity-free; 0: the preset's original data)")
      ->capture_default_str()->check(CLI::Range(0.0, 0.99));
  app.add_option("--seeds", o.seeds, "training seeds (one run per head and seed)")->capture_default_str();
  app.add_option("--set", o.overrides, "override a config key for every run (see qface train --help)");
  app.add_option("--threads", o.threads, "threads (0: every core)")->capture_default_str();
  app.add_option("--resamples", o.resamples, "bootstrap resamples per confidence interval")
      ->capture_default_str()->check(CLI::Range(10, 1000000));
  app.add_flag("--flip,!--no-flip", o.eval.flip, "also evaluate flip-fused features (AdaFace's norm-weighted fusion)")
      ->capture_default_str();
  app.footer(
      "Generates the synthetic set, trains the heads with the same backbone, data, seed and steps, evaluates them on "
      "the quality strata, the cross-quality pairs (low-quality probe vs high-quality reference, TAR@FAR at one "
      "threshold), the TinyFace-style identification set and the surveillance set, measures the papers' claims with "
      "95 % identity-bootstrap intervals (across seeds: a t interval over the per-seed estimates), sets each verdict "
      "against its prediction (docs/study.md) and writes comparison.md/.json and report.html. Stages are reused only "
      "when their configuration is unchanged; run it again after an interruption (Ctrl-C) to resume.");
}

}  // namespace qface::cli
