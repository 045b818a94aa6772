// Replays the fuzz targets (fuzz/fuzz_*.cpp, built here without libFuzzer) on
// their seed corpus (fuzz/corpus/<target>/) and on every input that once
// crashed them (fuzz/regressions/<target>/): each must end normally — a
// qface::Error at most, never another exception, a trap or a sanitizer report.
// The round-trip checks inside the targets (npy, pickle, .bin, config) make
// the seeds real value checks too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qface/core/fs.h"

namespace qface::fuzz {
int one_npy(const uint8_t*, std::size_t);
int one_pickle(const uint8_t*, std::size_t);
int one_checkpoint(const uint8_t*, std::size_t);
int one_recordio(const uint8_t*, std::size_t);
int one_bin_set(const uint8_t*, std::size_t);
int one_ijb_meta(const uint8_t*, std::size_t);
int one_config(const uint8_t*, std::size_t);
int one_serve_request(const uint8_t*, std::size_t);
int one_tfjs_weights(const uint8_t*, std::size_t);
}  // namespace qface::fuzz

namespace {
namespace fs = std::filesystem;
using Target = int (*)(const uint8_t*, std::size_t);

// By name (the test names show it): the target function.
Target target(const std::string& name) {
  static const std::map<std::string, Target> targets = {
      {"npy", qface::fuzz::one_npy},           {"pickle", qface::fuzz::one_pickle},
      {"checkpoint", qface::fuzz::one_checkpoint}, {"recordio", qface::fuzz::one_recordio},
      {"bin_set", qface::fuzz::one_bin_set},   {"ijb_meta", qface::fuzz::one_ijb_meta},
      {"config", qface::fuzz::one_config},     {"serve_request", qface::fuzz::one_serve_request},
      {"tfjs_weights", qface::fuzz::one_tfjs_weights}};
  return targets.at(name);
}

class FuzzReplay : public ::testing::TestWithParam<std::string> {};

std::vector<fs::path> inputs(const std::string& target, const char* folder) {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(QFACE_SOURCE_DIR) / "fuzz" / folder / target;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_P(FuzzReplay, SeedsAndRegressionsEndNormally) {
  const std::string name = GetParam();
  const Target run = target(name);
  const auto seeds = inputs(name, "corpus");
  ASSERT_FALSE(seeds.empty()) << "no seed corpus for " << name;
  auto all = seeds;
  for (auto& p : inputs(name, "regressions")) all.push_back(p);
  for (const auto& p : all) {
    const std::string bytes = qface::read_file(p);
    EXPECT_NO_THROW(run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay,
                         ::testing::Values("npy", "pickle", "checkpoint", "recordio", "bin_set", "ijb_meta", "config",
                                           "serve_request", "tfjs_weights"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
