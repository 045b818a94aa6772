#include "qface/eval/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>

#include <ATen/Parallel.h>

#include "qface/core/error.h"
#include "qface/eval/quality.h"

namespace qface::eval {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Linear interpolation between order statistics (numpy's default percentile).
double percentile(std::vector<double>& v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const auto i = static_cast<std::size_t>(std::floor(pos));
  const double f = pos - static_cast<double>(i);
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

}  // namespace

Interval bootstrap(int64_t items, const std::function<double(std::span<const int64_t>)>& stat,
                   const BootstrapOptions& o) {
  require(items >= 2, "bootstrap: need at least 2 items, got {}", items);
  require(o.resamples >= 10, "bootstrap: need at least 10 resamples, got {}", o.resamples);
  require(o.level > 0 && o.level < 1, "bootstrap: level must be in (0, 1), got {}", o.level);
  Interval r;
  r.items = items;
  r.level = o.level;
  std::vector<int64_t> draw(static_cast<std::size_t>(items));
  for (int64_t i = 0; i < items; ++i) draw[static_cast<std::size_t>(i)] = i;
  r.estimate = stat(draw);
  const auto n = static_cast<uint64_t>(items);
  // Unbiased integer draw in [0, n): rejection from the top of the 64-bit range
  // (std::uniform_int_distribution is implementation-defined, so not portable).
  const uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % n);
  // Resample b has its own generator seeded from (seed, b): the draws do not
  // depend on the thread count, and resamples run in parallel (stat must be
  // thread-safe).
  std::vector<double> all(static_cast<std::size_t>(o.resamples), std::nan(""));
  at::parallel_for(0, o.resamples, 1, [&](int64_t b0, int64_t b1) {
    std::vector<int64_t> d(static_cast<std::size_t>(items));
    for (int64_t b = b0; b < b1; ++b) {
      std::mt19937_64 gen(splitmix64(o.seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(b + 1)));
      for (auto& v : d) {
        uint64_t x;
        do x = gen(); while (x >= limit);
        v = static_cast<int64_t>(x % n);
      }
      all[static_cast<std::size_t>(b)] = stat(d);
    }
  });
  std::vector<double> values;
  for (double v : all)
    if (std::isfinite(v)) values.push_back(v);
  require(values.size() >= 10, "bootstrap: the statistic is undefined on almost every resample");
  r.resamples = static_cast<int>(values.size());
  const double alpha = (1 - o.level) / 2;
  r.lo = percentile(values, alpha);
  r.hi = percentile(values, 1 - alpha);
  return r;
}

Interval paired_mean_difference(std::span<const double> a, std::span<const double> b, const BootstrapOptions& o) {
  require(a.size() == b.size(), "bootstrap: {} vs {} paired values", a.size(), b.size());
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    require(std::isfinite(a[i]) && std::isfinite(b[i]), "bootstrap: value {} is not finite", i);
    d[i] = a[i] - b[i];
  }
  return bootstrap(static_cast<int64_t>(d.size()), [&](std::span<const int64_t> draw) {
    double s = 0;
    for (int64_t i : draw) s += d[static_cast<std::size_t>(i)];
    return s / static_cast<double>(draw.size());
  }, o);
}

Interval spearman_interval(std::span<const double> x, std::span<const double> y, const BootstrapOptions& o) {
  require(x.size() == y.size(), "spearman: {} vs {} values", x.size(), y.size());
  return bootstrap(static_cast<int64_t>(x.size()), [&](std::span<const int64_t> draw) {
    std::vector<double> xs(draw.size()), ys(draw.size());
    for (std::size_t k = 0; k < draw.size(); ++k) {
      xs[k] = x[static_cast<std::size_t>(draw[k])];
      ys[k] = y[static_cast<std::size_t>(draw[k])];
    }
    return spearman(xs, ys);
  }, o);
}

nlohmann::json to_json(const Interval& i) {
  return {{"estimate", i.estimate}, {"lo", i.lo},     {"hi", i.hi},
          {"level", i.level},       {"items", i.items}, {"resamples", i.resamples}};
}

}  // namespace qface::eval
