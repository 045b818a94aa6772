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

}  // namespace qface::train
