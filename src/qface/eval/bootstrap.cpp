#include "qface/eval/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <unordered_map>

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

Interval cluster_bootstrap(std::span<const int64_t> cluster,
                           const std::function<double(std::span<const int64_t>)>& stat, const BootstrapOptions& o) {
  // Dense cluster indices in order of first appearance, and each cluster's items.
  std::unordered_map<int64_t, std::size_t> dense;
  std::vector<std::vector<int64_t>> members;
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    const auto [it, added] = dense.try_emplace(cluster[i], members.size());
    if (added) members.emplace_back();
    members[it->second].push_back(static_cast<int64_t>(i));
  }
  require(members.size() >= 2, "bootstrap: need at least 2 clusters, got {}", members.size());
  return bootstrap(static_cast<int64_t>(members.size()), [&](std::span<const int64_t> clusters) {
    std::vector<int64_t> items;
    items.reserve(cluster.size());
    for (int64_t c : clusters) {
      const auto& m = members[static_cast<std::size_t>(c)];
      items.insert(items.end(), m.begin(), m.end());
    }
    return stat(items);
  }, o);
}

Interval clustered_mean_difference(std::span<const double> a, std::span<const double> b,
                                   std::span<const int64_t> cluster, const BootstrapOptions& o) {
  require(a.size() == b.size() && a.size() == cluster.size(), "bootstrap: {} vs {} paired values and {} cluster ids",
          a.size(), b.size(), cluster.size());
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    require(std::isfinite(a[i]) && std::isfinite(b[i]), "bootstrap: value {} is not finite", i);
    d[i] = a[i] - b[i];
  }
  return cluster_bootstrap(cluster, [&](std::span<const int64_t> draw) {
    double s = 0;
    for (int64_t i : draw) s += d[static_cast<std::size_t>(i)];
    return s / static_cast<double>(draw.size());
  }, o);
}

double student_t_quantile(double p, double df) {
  require(p > 0 && p < 1 && df > 0, "student_t_quantile: need p in (0, 1) and df > 0, got {} and {}", p, df);
  if (p < 0.5) return -student_t_quantile(1 - p, df);
  // No Debian library here has the t distribution (Boost.Math is not a
  // dependency): the CDF is integrated from the density with Simpson's rule
  // and inverted by bisection (|error| < 1e-9 for df >= 1 and p <= 0.9995).
  const double c = std::exp(std::lgamma((df + 1) / 2) - std::lgamma(df / 2)) / std::sqrt(df * M_PI);
  auto density = [&](double t) { return c * std::pow(1 + t * t / df, -(df + 1) / 2); };
  auto cdf = [&](double x) {
    const int n = 20000;  // even
    const double h = x / n;
    double s = density(0) + density(x);
    for (int i = 1; i < n; ++i) s += (i % 2 ? 4 : 2) * density(i * h);
    return 0.5 + s * h / 3;
  };
  double lo = 0, hi = 1;
  while (cdf(hi) < p) hi *= 2;
  for (int i = 0; i < 60; ++i) {
    const double mid = (lo + hi) / 2;
    (cdf(mid) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

Interval seed_interval(std::span<const double> d, double level) {
  require(d.size() >= 2, "seed interval: need at least 2 seeds, got {}", d.size());
  require(level > 0 && level < 1, "seed interval: level must be in (0, 1), got {}", level);
  const double n = static_cast<double>(d.size());
  double mean = 0;
  for (double x : d) {
    require(std::isfinite(x), "seed interval: a per-seed value is not finite");
    mean += x / n;
  }
  double ss = 0;
  for (double x : d) ss += (x - mean) * (x - mean);
  const double half = student_t_quantile((1 + level) / 2, n - 1) * std::sqrt(ss / (n - 1) / n);
  Interval r;
  r.estimate = mean;
  r.lo = mean - half;
  r.hi = mean + half;
  r.items = static_cast<int64_t>(d.size());
  r.resamples = 0;
  r.level = level;
  return r;
}

namespace {

// Spearman's rho of the drawn items.
double spearman_of(std::span<const double> x, std::span<const double> y, std::span<const int64_t> draw) {
  std::vector<double> xs(draw.size()), ys(draw.size());
  for (std::size_t k = 0; k < draw.size(); ++k) {
    xs[k] = x[static_cast<std::size_t>(draw[k])];
    ys[k] = y[static_cast<std::size_t>(draw[k])];
  }
  return spearman(xs, ys);
}

}  // namespace

Interval spearman_interval(std::span<const double> x, std::span<const double> y, const BootstrapOptions& o) {
  require(x.size() == y.size(), "spearman: {} vs {} values", x.size(), y.size());
  return bootstrap(static_cast<int64_t>(x.size()),
                   [&](std::span<const int64_t> draw) { return spearman_of(x, y, draw); }, o);
}

Interval spearman_interval(std::span<const double> x, std::span<const double> y, std::span<const int64_t> cluster,
                           const BootstrapOptions& o) {
  require(x.size() == y.size() && x.size() == cluster.size(), "spearman: {} vs {} values and {} cluster ids",
          x.size(), y.size(), cluster.size());
  return cluster_bootstrap(cluster, [&](std::span<const int64_t> draw) { return spearman_of(x, y, draw); }, o);
}

nlohmann::json to_json(const Interval& i) {
  return {{"estimate", i.estimate}, {"lo", i.lo},     {"hi", i.hi},
          {"level", i.level},       {"items", i.items}, {"resamples", i.resamples}};
}

}  // namespace qface::eval
