// The main job (`qface demo`, `make run`) and the longer study (`qface
// study`): generate a `qface synth` set, train AdaFace, MagFace and ArcFace
// with the same backbone, data, seed and steps (for each seed), evaluate
// every model on the quality strata (study/model_eval.h), measure the
// papers' claims with paired-bootstrap intervals (study/claims.h), and
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

#include "qface/study/model_eval.h"
#include "qface/synth/generate.h"

namespace qface::study {

struct MainJobOptions {
  std::filesystem::path out = "runs/demo";
  std::filesystem::path config;            // training recipe; empty: configs/synth_demo.toml of the source tree
  // qface synth preset: "main" trains few identities for several epochs so
  // that the heads get near a fit within the job's budget (docs/study.md).
  std::string preset = "main";
  // Share of identity-free training images (synth::SynthOptions::identity_free):
  // the tail AdaFace's argument is about; 0 gives the preset's original data.
  double identity_free = synth::kStudyIdentityFree;
  // The papers' heads and one control: CurricularFace, the AdaFace paper's
  // main baseline (hard samples emphasised everywhere).
  std::vector<std::string> heads = {"adaface", "arcface", "magface", "curricularface"};
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

// The training overrides of a run name: a head ("arcface"), a fixed-z control
// of AdaFace ("adaface_z-1", "adaface_z0", "adaface_z+1": head.fixed_z) or
// AdaFace with the official statistics start ("adaface_official").
std::vector<std::string> run_overrides(const std::string& run);

// The recipes the demo and the study train with by default.
std::filesystem::path default_demo_config();
std::filesystem::path default_study_config();

// The study's options: preset full, configs/synth_study.toml, seeds 0-3, the
// heads and controls each question needs.
MainJobOptions study_options();

}  // namespace qface::study
