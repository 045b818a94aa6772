// Crash-safe training checkpoints: one LibTorch archive per save holding the
// backbone, the head (with its buffers: AdaFace's EMA), the optimizer (SGD
// momentum), the step, the loader position (epoch, batch) and the RNG state.
// Written atomically (temp + fsync + rename); the newest `keep` are kept.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "qface/train/distributed.h"

namespace qface::train {

struct TrainPosition {
  int64_t step = 0;   // optimizer steps done
  int64_t epoch = 0;  // epoch of the next batch
  int64_t batch = 0;  // batch number (within the epoch) of the next batch
};

// File name of the checkpoint after `step` steps (per rank when the head is sharded).
std::filesystem::path checkpoint_path(const std::filesystem::path& dir, int64_t step, int rank, bool per_rank);

void save_checkpoint(const std::filesystem::path& path, torch::nn::Module& backbone, torch::nn::Module& head,
                     torch::optim::Optimizer& optimizer, const TrainPosition& position);

// Restores everything save_checkpoint wrote; throws qface::Error naming the
// file and the reason when it cannot (truncated, corrupt, another model).
TrainPosition load_checkpoint(const std::filesystem::path& path, torch::nn::Module& backbone, torch::nn::Module& head,
                              torch::optim::Optimizer& optimizer);

// Checkpoints of `dir` for this rank, oldest first.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir, int rank, bool per_rank);

// Removes all but the newest `keep`.
void prune_checkpoints(const std::filesystem::path& dir, int rank, bool per_rank, int64_t keep);

// The step in a checkpoint's file name (ckpt-<step>[.rank<r>].pt).
int64_t checkpoint_step(const std::filesystem::path& path);

// The newest step that is in every rank's list (`steps[r]`: rank r's
// checkpoint steps, any order), or -1 when no step is in all of them.
int64_t newest_common_step(const std::vector<std::vector<int64_t>>& steps);

// --resume with several ranks: each rank lists its checkpoints, the lists are
// all-gathered and every rank takes the newest step that every rank has (with
// a per-rank sharded head, a crash between two ranks' writes leaves one rank a
// checkpoint ahead). Checkpoints newer than that step, written by the crashed
// run past the point every rank reached, are removed by the rank that wrote
// them. Throws qface::Error on every rank alike when no step is common.
struct ResumePoint {
  int64_t step = -1;
  std::filesystem::path path;                // this rank's checkpoint of `step`
  std::vector<std::vector<int64_t>> steps;   // every rank's steps, as listed
};
ResumePoint agree_resume_point(Dist& dist, const std::filesystem::path& dir, bool per_rank);

}  // namespace qface::train
