// The classifier sharded across ranks (model parallel, as arcface_torch's
// Partial FC; docs/method.md, Sharded classifier): rank r holds the class
// centres [start_r, start_r + n_r), scores the whole global batch (embeddings
// all-gathered with gradient) against its shard, optionally against a sample of
// negatives only, and the softmax cross-entropy is computed across ranks. Works
// with every margin head.
//
// Memory: C classes x D floats of centres, plus as much again for SGD momentum
// (and the gradient). 2M identities x 512 x 4 B = 4.1 GB of centres, ~12 GB
// with gradient and momentum: sharded over 8 ranks, ~1.5 GB per rank; with a
// sampling rate of 0.1 the logits of a 128-per-rank x 8 global batch shrink
// from 1024 x 250k to 1024 x 25k per rank.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>

#include "qface/heads/factory.h"
#include "qface/train/distributed.h"

namespace qface::train {

struct ShardedClassifierOptions {
  heads::HeadConfig head;   // name, options, embedding_size and the TOTAL class count
  double sample_rate = 1.0; // fraction of each shard's centres scored per step (positives always kept)
  uint64_t seed = 0;        // negative sampling
  // Multiply the embedding gradient by the world size, so that averaging the
  // backbone gradients over ranks (data parallel) yields the exact gradient
  // of the global-batch loss (arcface_torch's convention).
  bool scale_grad_for_averaging = true;
};

struct ShardedLoss {
  torch::Tensor loss;  // ce + reg: what this rank back-propagates
  torch::Tensor ce;    // mean cross-entropy over the global batch (identical on every rank)
  torch::Tensor reg;   // this rank's weighted regularizer (its mean over ranks is the global one)
};

// First class and class count of `rank`'s shard: C / W each, one more for the
// first C mod W ranks.
std::pair<int64_t, int64_t> shard_range(int64_t num_classes, int rank, int world_size);

class ShardedClassifierImpl : public torch::nn::Module {
 public:
  ShardedClassifierImpl(ShardedClassifierOptions options, std::shared_ptr<Dist> dist);

  // Local batch: x_hat [b, D] normalized embeddings, norms [b], labels [b]
  // global class ids. Every rank must call it with the same local batch size.
  ShardedLoss forward(const torch::Tensor& x_hat, const torch::Tensor& norms, const torch::Tensor& labels);

  int64_t shard_start() const { return start_; }
  int64_t shard_size() const { return size_; }
  // Steps taken (seeds the negative sampling); restored on resume.
  void set_step(int64_t step) { step_ = step; }
  heads::Head head{nullptr};  // its kernel is this rank's shard [D, n_r]
  ShardedClassifierOptions options;

 private:
  std::shared_ptr<Dist> dist_;
  int64_t start_ = 0, size_ = 0;
  int64_t step_ = 0;
};
TORCH_MODULE(ShardedClassifier);

// Softmax cross-entropy over logits split by columns across ranks: labels are
// shard-local indices or -1. Returns the mean loss over the rows (same on every
// rank); the gradient is (softmax - onehot) / rows on this rank's columns.
torch::Tensor distributed_cross_entropy(const std::shared_ptr<Dist>& dist, const torch::Tensor& logits,
                                        const torch::Tensor& local_labels);

}  // namespace qface::train
