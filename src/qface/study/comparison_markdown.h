// comparison.md of the main job and the study: the claims, then per section
// the measurements behind them, rendered from the finished runs' results.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qface/study/claims.h"
#include "qface/study/main_job.h"
#include "qface/study/model_eval.h"

namespace qface::study {

// One training of the main job: a head (or control) and a seed.
struct RunResult {
  std::string head;
  uint64_t seed = 0;
  std::filesystem::path dir, model;
  double train_seconds = 0, images_per_second = 0;
  int64_t steps = 0;
  bool interrupted = false;
};

// Everything of one seed: per head its training and evaluation, and the claims measured on them.
struct SeedResult {
  uint64_t seed = 0;
  std::map<std::string, RunResult> runs;
  std::map<std::string, ModelEval> evals;
  ClaimsResult claims;
};

// The Markdown of comparison.md. `cmp` is comparison.json as the main job
// writes it (its "runs" of every seed and head, "seconds").
std::string comparison_markdown(const MainJobOptions& o, const std::vector<SeedResult>& seeds, const EvalData& data,
                                const nlohmann::json& cmp);

}  // namespace qface::study
