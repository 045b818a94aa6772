// The training loop: backbone -> margin head -> loss -> backward -> SGD step,
// data parallel over c10d when WORLD_SIZE > 1, with crash-safe checkpoints,
// metrics.jsonl and a progress bar.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <utility>

#include "qface/backbones/backbone.h"
#include "qface/train/config.h"
#include "qface/train/distributed.h"

namespace qface::train {

// The backbone's forward as training runs it: under CPU bf16 autocast when
// `bf16` (the margin head and the loss stay fp32), (x_hat, norm) in fp32.
// `qface bench train` times this same call.
std::pair<torch::Tensor, torch::Tensor> forward_backbone(backbones::BackboneImpl& model, const torch::Tensor& images,
                                                         bool bf16);

struct TrainSummary {
  int64_t steps = 0;
  int64_t steps_this_run = 0;  // fewer than `steps` when resumed
  double last_loss = 0;
  double images_per_second = 0;
  std::filesystem::path checkpoint;  // the last one written
  std::filesystem::path model;       // <out_dir>/model.pt: the trained backbone (rank 0, finished runs)
  bool interrupted = false;
  nlohmann::json validation;  // the last validation result (null when none ran)
};

// Runs training as configured. `resume`: continue from the newest checkpoint
// in <out_dir>/checkpoints (error if none; with several ranks, the newest step
// that every rank has). SIGINT/SIGTERM stop after the current step with a
// checkpoint (summary.interrupted); with several ranks, a signal to any rank
// stops every rank after the same step. Validation on config.validation.sets
// runs every validation.every steps (0: at each epoch end), split across the
// ranks, and rank 0 appends {"step", "epoch", "val": {...}} lines to
// metrics.jsonl.
TrainSummary train(const TrainConfig& config, const std::shared_ptr<Dist>& dist, bool resume);

}  // namespace qface::train
