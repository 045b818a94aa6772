// Paired bootstrap confidence intervals (Efron's percentile interval) for the
// difference of a statistic between two systems measured on the same items
// (pairs, images, probes): each resample draws the items with replacement
// once and evaluates both systems on that same draw, so the item-to-item
// variation that both share cancels. Seeded and deterministic: the same
// inputs, seed and resample count give the same interval on every machine
// (std::mt19937_64 per resample, seeded from (seed, resample), and integer
// arithmetic for the draw), whatever the thread count.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace qface::eval {

struct BootstrapOptions {
  int resamples = 2000;
  double level = 0.95;  // two-sided
  uint64_t seed = 0;
};

struct Interval {
  double estimate = 0;  // the statistic on the original items
  double lo = 0, hi = 0;
  int64_t items = 0;
  int resamples = 0;
  double level = 0.95;
  bool contains(double x) const { return lo <= x && x <= hi; }
};

// Percentile interval of stat(draw) where draw holds `items` indices drawn
// with replacement (the identity draw 0..n-1 gives the estimate). stat may
// return NaN for a degenerate draw; such draws are skipped (the count used is
// in `resamples`).
Interval bootstrap(int64_t items, const std::function<double(std::span<const int64_t>)>& stat,
                   const BootstrapOptions& options = {});

// Difference of means mean(a) - mean(b) of paired per-item values (e.g. each
// pair's 0/1 correctness under two models).
Interval paired_mean_difference(std::span<const double> a, std::span<const double> b,
                                const BootstrapOptions& options = {});

// Cluster (identity) bootstrap: items that share a cluster (the pairs or probes
// of one identity) are not independent, so each resample draws the *clusters*
// with replacement and takes every item of each drawn cluster (a cluster drawn
// twice contributes its items twice). cluster[i] is item i's cluster id (any
// int64); the interval's `items` is the number of clusters. stat receives the
// drawn item indices, as for bootstrap().
Interval cluster_bootstrap(std::span<const int64_t> cluster,
                           const std::function<double(std::span<const int64_t>)>& stat,
                           const BootstrapOptions& options = {});

// mean(a) - mean(b) of paired per-item values, clusters resampled.
Interval clustered_mean_difference(std::span<const double> a, std::span<const double> b,
                                   std::span<const int64_t> cluster, const BootstrapOptions& options = {});

// Across seeds: the mean of per-seed paired differences with Student's t
// interval, mean +- t_{(1+level)/2, n-1} * sd / sqrt(n) (n >= 2 seeds; the
// seeds are the independent units, so nothing is resampled).
Interval seed_interval(std::span<const double> per_seed_differences, double level = 0.95);

// The quantile function of Student's t with `df` degrees of freedom.
double student_t_quantile(double p, double df);

// Spearman's rho of (x, y) over items, with its bootstrap interval.
Interval spearman_interval(std::span<const double> x, std::span<const double> y, const BootstrapOptions& options = {});
// The same with clusters (identities) resampled, as cluster_bootstrap().
Interval spearman_interval(std::span<const double> x, std::span<const double> y, std::span<const int64_t> cluster,
                           const BootstrapOptions& options = {});

nlohmann::json to_json(const Interval& i);

}  // namespace qface::eval
