// The main job (`qface demo`, `make run`): generate the synthetic `demo` set,
// train AdaFace and ArcFace with the same backbone, data and steps, evaluate
// both on the quality strata (val_high, val_mixed, val_low: 1:1 accuracy,
// TAR@FAR, feature norm vs ground-truth quality), print a comparison table and
// write the HTML report. Every stage is resumable: finished stages are kept,
// an interrupted training continues from its newest checkpoint.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace qface::pipeline {

struct MainJobOptions {
  std::filesystem::path out = "runs/demo";
  std::filesystem::path config;            // training recipe; empty: configs/synth_demo.toml of the source tree
  std::string preset = "demo";             // qface synth preset
  std::vector<std::string> heads = {"adaface", "arcface"};
  std::vector<std::string> overrides;      // --set key=value for every run
  int threads = 0;                         // 0: every core
};

struct MainJobResult {
  nlohmann::json comparison;  // also written to <out>/comparison.json
  std::string table;          // also written to <out>/comparison.md
  std::filesystem::path report;
  bool interrupted = false;
};

MainJobResult run_main_job(const MainJobOptions& options);

// The recipe the demo trains with by default.
std::filesystem::path default_demo_config();

}  // namespace qface::pipeline
