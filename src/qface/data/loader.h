// The training data loader: a thread pool reads, decodes (TurboJPEG / OpenCV),
// augments (augment.h) and assembles batches into float tensors
// [B, 3, H, W] in channels_last memory, normalized for the model family, with
// a bounded prefetch window.
//
// Order: the epoch permutation of all N images depends only on (seed, epoch)
// (the same on every rank); like torch's DistributedSampler, rank r takes
// positions r, r + W, r + 2W, ... of it, after padding the permutation by
// wrapping around (drop_last = false) or truncating it (drop_last = true) to
// a multiple of W, so every rank gets the same number of samples. Batches are
// consecutive runs of batch_size of the rank's list; drop_last also drops a
// final partial batch. A sample's augmentation is seeded by (seed, epoch,
// image index), so every batch is a pure function of (seed, epoch, rank,
// world_size, batch number), whatever the thread count: start_epoch(e, b)
// resumes exactly where a crashed run stopped.
//
//   LoaderOptions o;  o.source = "train.rec";  o.batch_size = 512;
//   Loader loader(o);
//   for (int64_t epoch = start; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch, epoch == start ? start_batch : 0);
//     while (auto batch = loader.next()) train_step(batch->images, batch->labels);
//   }
#pragma once

#include <torch/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "qface/data/augment.h"
#include "qface/data/source.h"

namespace qface::data {

// value = (pixel / 255 - mean) / std, channels in BGR (or RGB) order.
struct Normalization {
  bool rgb = false;
  float mean = 0.5f;
  float std = 0.5f;
  // "adaface": BGR, (x/255 - 0.5)/0.5; "magface": BGR, x/255;
  // "arcface_torch" (InsightFace): RGB, (x/255 - 0.5)/0.5. Throws on other names.
  static Normalization for_family(const std::string& family);
};

struct LoaderOptions {
  std::filesystem::path source;  // a .rec file or an image folder
  ReadOptions read;              // index use and skip_bad for .rec sources
  int64_t batch_size = 128;
  int num_threads = 2;           // decode workers; 0 = decode inside next()
  int prefetch = 4;              // batches decoded ahead of the consumer
  bool shuffle = true;
  uint64_t seed = 0;
  int rank = 0;
  int world_size = 1;
  bool drop_last = true;
  int image_size = 112;          // decoded images of another size are resized (bilinear)
  bool augment = true;
  AugmentOptions augmentations = AugmentOptions::adaface();
  Normalization normalization;   // AdaFace by default
  bool skip_bad = false;         // undecodable / bad samples are logged, counted and left out of their batch
  // With skip_bad: a bad sample is replaced by the next good one of this
  // rank's epoch order after the batch (wrapping around, never one of the
  // batch's own positions), so every batch keeps its size, as data-parallel
  // ranks need. The batch stays a pure function of its position (resume is
  // exact); a sample can appear twice in an epoch, as with the wrap-around
  // padding. Throws when the rank's whole share holds no replacement.
  bool refill_skipped = false;
  // Batches in page-locked memory (a copy by the decode worker), for
  // non-blocking copies to a CUDA device; needs a LibTorch with CUDA.
  bool pin_memory = false;
};

struct Batch {
  torch::Tensor images;   // float32 [b, 3, H, W], channels_last; b <= batch_size
  torch::Tensor labels;   // int64 [b]
  torch::Tensor indices;  // int64 [b]: image indices in the source
  int64_t epoch = 0;
  int64_t batch = 0;      // batch number within the epoch (for this rank)
};

// Recycled batch buffers (see Loader::build).
class BufferPool {
 public:
  BufferPool(std::size_t bytes, std::size_t keep) : bytes_(bytes), keep_(keep) {}
  ~BufferPool();
  void* get();
  void put(void* p);

 private:
  std::size_t bytes_, keep_;
  std::mutex mu_;
  std::vector<void*> free_;
};

class Loader {
 public:
  explicit Loader(LoaderOptions options);
  Loader(std::shared_ptr<const SampleSource> source, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  const LoaderOptions& options() const { return o_; }
  const SampleSource& source() const { return *source_; }
  int64_t num_images() const { return static_cast<int64_t>(source_->size()); }
  int64_t num_classes() const { return source_->num_classes(); }
  int64_t samples_per_rank() const;
  int64_t batches_per_epoch() const;

  // This rank's image indices for `epoch`, in order (before batching).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Starts (or restarts) `epoch` at batch `start_batch`; work in flight for a
  // previous position is discarded.
  void start_epoch(int64_t epoch, int64_t start_batch = 0);
  // The next batch, or nullopt at the end of the epoch. Rethrows a worker's
  // qface::Error (naming file and record) unless skip_bad.
  std::optional<Batch> next();

  // Samples left out as bad so far (skip_bad), including those found while opening.
  int64_t skipped() const;

  // Reads, decodes, resizes to image_size and (if options.augment) augments
  // image `index` as in `epoch`: the 8-bit BGR image that batches are made of.
  cv::Mat load_image(std::size_t index, int64_t epoch, int64_t* label = nullptr) const;

 private:
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
  };
  Batch build(int64_t epoch, int64_t b, const std::vector<int64_t>& order) const;
  void worker();
  void stop();

  LoaderOptions o_;
  std::shared_ptr<const SampleSource> source_;
  std::vector<float> lut_;  // pixel value -> normalized float
  std::shared_ptr<BufferPool> pool_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  uint64_t generation_ = 0;
  bool started_ = false;
  int64_t epoch_ = 0;
  std::shared_ptr<const std::vector<int64_t>> order_;
  int64_t next_claim_ = 0, next_deliver_ = 0, num_batches_ = 0;
  std::map<int64_t, Slot> done_;
  mutable std::atomic<int64_t> bad_{0};
  std::vector<std::thread> threads_;
};

}  // namespace qface::data
