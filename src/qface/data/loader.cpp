#include "qface/data/loader.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdlib>
#include <opencv2/imgproc.hpp>

#include "qface/core/error.h"
#include "qface/data/image.h"

namespace qface::data {

BufferPool::~BufferPool() {
  for (void* p : free_) std::free(p);
}

void* BufferPool::get() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      void* p = free_.back();
      free_.pop_back();
      return p;
    }
  }
  void* p = std::aligned_alloc(64, (bytes_ + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return p;
}

void BufferPool::put(void* p) {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_.size() < keep_) free_.push_back(p);
  else std::free(p);
}

Normalization Normalization::for_family(const std::string& family) {
  if (family == "adaface") return {false, 0.5f, 0.5f};
  if (family == "magface") return {false, 0.0f, 1.0f};
  if (family == "arcface_torch") return {true, 0.5f, 0.5f};
  fail("unknown model family '{}' (expected adaface, magface or arcface_torch)", family);
}

Loader::Loader(LoaderOptions options) : Loader(nullptr, std::move(options)) {}

Loader::Loader(std::shared_ptr<const SampleSource> source, LoaderOptions options) : o_(std::move(options)) {
  require(o_.batch_size > 0, "loader: batch size must be positive, got {}", o_.batch_size);
  require(o_.world_size >= 1 && o_.rank >= 0 && o_.rank < o_.world_size,
          "loader: rank {} is outside world size {}", o_.rank, o_.world_size);
  require(o_.num_threads >= 0, "loader: thread count must be >= 0, got {}", o_.num_threads);
  require(o_.prefetch >= 1, "loader: prefetch must be >= 1, got {}", o_.prefetch);
  require(o_.image_size > 0, "loader: image size must be positive, got {}", o_.image_size);
  require(o_.normalization.std != 0, "loader: normalization std must not be 0");
  if (!source) {
    ReadOptions r = o_.read;
    r.skip_bad = r.skip_bad || o_.skip_bad;
    source = open_source(o_.source, r);
  }
  source_ = std::move(source);
  require(source_->size() > 0, "{}: no images", source_->describe());
  pool_ = std::make_shared<BufferPool>(static_cast<std::size_t>(o_.batch_size) * 3 * o_.image_size * o_.image_size *
                                           sizeof(float),
                                       static_cast<std::size_t>(o_.prefetch + o_.num_threads + 2));
  lut_.resize(256);
  for (int v = 0; v < 256; ++v) lut_[v] = (v / 255.0f - o_.normalization.mean) / o_.normalization.std;
  for (int t = 0; t < o_.num_threads; ++t) threads_.emplace_back([this] { worker(); });
}

Loader::~Loader() { stop(); }

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

int64_t Loader::samples_per_rank() const {
  const int64_t n = num_images(), w = o_.world_size;
  return o_.drop_last ? n / w : (n + w - 1) / w;
}

int64_t Loader::batches_per_epoch() const {
  const int64_t s = samples_per_rank(), b = o_.batch_size;
  return o_.drop_last ? s / b : (s + b - 1) / b;
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  const int64_t n = num_images();
  std::vector<int64_t> perm(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<std::size_t>(i)] = i;
  if (o_.shuffle) {
    Rng rng(mix_seed({o_.seed, static_cast<uint64_t>(epoch), 0x5348554646ull /* "SHUFF" */}));
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(perm[static_cast<std::size_t>(i)], perm[uniform_int(rng, static_cast<uint64_t>(i + 1))]);
  }
  const int64_t per_rank = samples_per_rank();
  std::vector<int64_t> mine;
  mine.reserve(static_cast<std::size_t>(per_rank));
  for (int64_t k = 0; k < per_rank; ++k) {
    const int64_t pos = o_.rank + k * o_.world_size;  // < per_rank * world_size
    mine.push_back(perm[static_cast<std::size_t>(pos % n)]);  // wrap-around padding
  }
  return mine;
}

cv::Mat Loader::load_image(std::size_t index, int64_t epoch, int64_t* label) const {
  SampleSource::Sample s = source_->read(index);
  cv::Mat img = decode_bgr(s.encoded, s.where);
  if (img.rows != o_.image_size || img.cols != o_.image_size) {
    cv::Mat resized;
    cv::resize(img, resized, cv::Size(o_.image_size, o_.image_size), 0, 0, cv::INTER_LINEAR);
    img = resized;
  }
  if (o_.augment) {
    Rng rng(mix_seed({o_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(index), 0x415547ull /* "AUG" */}));
    augment_face(img, o_.augmentations, rng);
  }
  if (!img.isContinuous()) img = img.clone();
  if (label) *label = s.label;
  return img;
}

Batch Loader::build(int64_t epoch, int64_t b, const std::vector<int64_t>& order) const {
  const int64_t begin = b * o_.batch_size;
  const int64_t end = std::min<int64_t>(begin + o_.batch_size, static_cast<int64_t>(order.size()));
  const int64_t count = end - begin;
  const int64_t hw = static_cast<int64_t>(o_.image_size) * o_.image_size;
  Batch out;
  out.epoch = epoch;
  out.batch = b;
  // Batch memory comes from a pool and returns to it when the consumer drops
  // the tensor: fresh 20 MB buffers per batch cost page faults and, with
  // several workers, TLB shootdowns that halved the throughput.
  const int64_t s = o_.image_size;
  auto pool = pool_;
  out.images = torch::from_blob(
      pool->get(), {count, 3, s, s}, {3 * s * s, 1, 3 * s, 3}, [pool](void* p) { pool->put(p); },
      torch::TensorOptions().dtype(torch::kFloat32));
  out.labels = torch::empty({count}, torch::kInt64);
  out.indices = torch::empty({count}, torch::kInt64);
  float* dst = out.images.data_ptr<float>();  // NHWC in memory
  int64_t* labels = out.labels.data_ptr<int64_t>();
  int64_t* indices = out.indices.data_ptr<int64_t>();
  const float* lut = lut_.data();
  int64_t kept = 0;
  // Decodes sample `index` into row `kept`; false when it is bad and skipped.
  auto add = [&](int64_t index) {
    cv::Mat img;
    int64_t label = 0;
    try {
      img = load_image(static_cast<std::size_t>(index), epoch, &label);
    } catch (const Error& e) {
      if (!o_.skip_bad) throw;
      spdlog::warn("{} (skipped)", e.what());
      ++bad_;
      return false;
    }
    if (source_->num_classes() > 0 && label >= source_->num_classes()) {
      // FaceRecordSet already checks this; an image folder cannot get it wrong.
      if (!o_.skip_bad) fail("image {}: label {} outside [0, {})", index, label, source_->num_classes());
      ++bad_;
      return false;
    }
    const uint8_t* px = img.ptr<uint8_t>();
    float* d = dst + kept * hw * 3;
    if (o_.normalization.rgb) {
      for (int64_t p = 0; p < hw; ++p, px += 3, d += 3) {
        d[0] = lut[px[2]];
        d[1] = lut[px[1]];
        d[2] = lut[px[0]];
      }
    } else {
      for (int64_t p = 0; p < hw * 3; ++p) d[p] = lut[px[p]];
    }
    labels[kept] = label;
    indices[kept] = index;
    ++kept;
    return true;
  };
  for (int64_t k = begin; k < end; ++k) add(order[static_cast<std::size_t>(k)]);
  if (o_.refill_skipped && kept < count) {
    // Replacements: the positions after the batch in this rank's order,
    // wrapping around, each once, never the batch's own.
    const int64_t n = static_cast<int64_t>(order.size());
    for (int64_t j = end; kept < count && j < end + n - count; ++j) add(order[static_cast<std::size_t>(j % n)]);
    require(kept == count,
            "loader: rank {} of {}: epoch {} batch {}: {} bad sample(s) and no good sample left in this rank's share "
            "of {} to replace them",
            o_.rank, o_.world_size, epoch, b, count - kept, n);
  }
  if (kept < count) {
    out.images = out.images.narrow(0, 0, kept);
    out.labels = out.labels.narrow(0, 0, kept);
    out.indices = out.indices.narrow(0, 0, kept);
  }
  if (o_.pin_memory) {
    // The pooled buffer goes back to the pool as soon as its copy is made.
    out.images = out.images.pin_memory();
    out.labels = out.labels.pin_memory();
  }
  return out;
}

void Loader::start_epoch(int64_t epoch, int64_t start_batch) {
  require(epoch >= 0, "loader: epoch must be >= 0, got {}", epoch);
  const int64_t nb = batches_per_epoch();
  require(start_batch >= 0 && start_batch <= nb, "loader: start batch {} is outside [0, {}] for epoch {}",
          start_batch, nb, epoch);
  auto order = std::make_shared<const std::vector<int64_t>>(epoch_order(epoch));
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
    started_ = true;
    epoch_ = epoch;
    order_ = std::move(order);
    num_batches_ = nb;
    next_claim_ = next_deliver_ = start_batch;
    done_.clear();
  }
  cv_.notify_all();
}

void Loader::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] {
      return stopping_ || (started_ && next_claim_ < num_batches_ && next_claim_ < next_deliver_ + o_.prefetch);
    });
    if (stopping_) return;
    const int64_t b = next_claim_++;
    const uint64_t gen = generation_;
    const int64_t epoch = epoch_;
    auto order = order_;
    lock.unlock();
    Slot slot;
    try {
      slot.batch = build(epoch, b, *order);
    } catch (...) {
      slot.error = std::current_exception();
    }
    lock.lock();
    if (gen == generation_) {
      done_[b] = std::move(slot);
      cv_.notify_all();
    }
  }
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  require(started_, "loader: call start_epoch() before next()");
  if (next_deliver_ >= num_batches_) return std::nullopt;
  if (threads_.empty()) {
    const int64_t b = next_deliver_++;
    auto order = order_;
    const int64_t epoch = epoch_;
    lock.unlock();
    return build(epoch, b, *order);
  }
  const int64_t b = next_deliver_;
  cv_.wait(lock, [&] { return done_.count(b) != 0; });
  Slot slot = std::move(done_[b]);
  done_.erase(b);
  ++next_deliver_;
  lock.unlock();
  cv_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  return std::move(slot.batch);
}

int64_t Loader::skipped() const { return bad_.load() + static_cast<int64_t>(source_->skipped()); }

}  // namespace qface::data
