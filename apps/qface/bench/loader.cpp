// qface bench loader: decode-only and decode+augment throughput of the loader.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <iostream>
#include <opencv2/core.hpp>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/loader.h"
#include "qface/data/tools.h"

namespace qface::cli {
namespace {

struct BenchArgs {
  std::string rec, json_out;
  std::vector<int> threads = {1, 2};
  int64_t images = 4000, batch = 128;
};

// Images per second through the whole loader (read, decode, [augment],
// normalize into channels_last batches), after one warm-up batch.
double measure(const BenchArgs& a, int threads, bool augment) {
  data::LoaderOptions o;
  o.source = a.rec;
  o.batch_size = a.batch;
  o.num_threads = threads;
  o.prefetch = 2 * threads;
  o.drop_last = false;
  o.augment = augment;
  data::Loader loader(o);
  int64_t epoch = 0, seen = 0;
  loader.start_epoch(epoch);
  loader.next();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  while (seen < a.images) {
    auto b = loader.next();
    if (!b) {
      loader.start_epoch(++epoch);
      continue;
    }
    seen += b->images.size(0);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(seen) / s;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("--rec", a->rec, "PREFIX.rec or image folder to read (see qface data make-test)")
      ->required()
      ->check(CLI::ExistingPath);
  app.add_option("--threads", a->threads, "worker thread counts to measure")->capture_default_str()->delimiter(',');
  app.add_option("--images", a->images, "images timed per measurement")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch", a->batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--out", a->json_out, "also write the results as JSON");
  return [a] {
    // One worker thread = one core: no hidden OpenCV / LibTorch thread pools.
    cv::setNumThreads(0);
    torch::set_num_threads(1);
    nlohmann::json results = nlohmann::json::array();
    std::cout << fmt::format("{:>8}  {:>16}  {:>22}\n", "threads", "decode img/s", "decode+augment img/s");
    for (int t : a->threads) {
      require(t >= 1, "--threads: counts must be >= 1, got {}", t);
      const double d = measure(*a, t, false), da = measure(*a, t, true);
      std::cout << fmt::format("{:>8}  {:>16.0f}  {:>22.0f}\n", t, d, da);
      results.push_back({{"threads", t}, {"decode_img_s", d}, {"decode_augment_img_s", da}});
    }
    if (!a->json_out.empty()) write_file_atomic(a->json_out, results.dump(2) + "\n");
    return 0;
  };
}

const Registrar registrar{{"loader", "Loader throughput: decode-only and decode+augment img/s per thread count", setup, "bench"}};

}  // namespace
}  // namespace qface::cli
