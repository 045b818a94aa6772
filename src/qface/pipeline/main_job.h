// The main job (`qface demo`, `make run`) and the longer study (`qface
// study`): generate a `qface synth` set, train AdaFace, MagFace and ArcFace
// with the same backbone, data, seed and steps (for each seed), evaluate
// every model on the quality strata (pipeline/model_eval.h), measure the
// papers' claims with paired-bootstrap intervals (pipeline/claims.h), and
// write comparison.md / .json and report.html.
// Every stage is resumable and reused only when its fingerprint (resolved
// config, data options, model file) matches: a changed --set retrains, an
// interrupted training continues from its newest checkpoint.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "qface/pipeline/model_eval.h"

namespace qface::pipeline {

struct MainJobOptions {
  std::filesystem::path out = "runs/demo";
  std::filesystem::path config;            // training recipe; empty: configs/synth_demo.toml of the source tree
  std::string preset = "demo";             // qface synth preset
  std::vector<std::string> heads = {"adaface", "magface", "arcface"};
  std::vector<uint64_t> seeds = {0};       // training seeds (one run folder per head and seed)
  bool seed_dirs = false;                  // runs in <out>/seed<k>/<head> (the study: seeds can run as separate processes)
  std::vector<std::string> overrides;      // --set key=value for every run
  int threads = 0;                         // 0: every core
  EvalSettings eval{.flip = false};        // the demo skips the flip-fused protocol (time budget); the study runs it
  int resamples = 2000;                    // bootstrap resamples per interval
  std::string title = "qface demo";
};

struct MainJobResult {
  nlohmann::json comparison;  // also written to <out>/comparison.json
  std::string table;          // also written to <out>/comparison.md
  std::filesystem::path report;
  bool interrupted = false;
};

MainJobResult run_main_job(const MainJobOptions& options);

// The recipes the demo and the study train with by default.
std::filesystem::path default_demo_config();
std::filesystem::path default_study_config();

// The study's options: preset full, configs/synth_study.toml, seeds 0, 1, 2.
MainJobOptions study_options();

}  // namespace qface::pipeline
