#include "qface/eval/roc.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "qface/core/error.h"
#include "qface/eval/buffer.h"

namespace qface::eval {

std::vector<double> default_fars() { return {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1}; }

RocResult roc_at_far(std::span<const float> scores, std::span<const uint8_t> labels, std::span<const double> fars,
                     int curve_points, double curve_min_fpr_cover) {
  require(scores.size() == labels.size(), "roc: {} scores but {} labels", scores.size(), labels.size());
  Buffer<float> gen, imp;
  int64_t n_gen = 0;
  for (uint8_t l : labels) n_gen += l ? 1 : 0;
  gen.reserve(n_gen);
  imp.reserve(scores.size() - n_gen);
  for (size_t i = 0; i < scores.size(); ++i) {
    require(std::isfinite(scores[i]), "roc: score {} is not finite", i);
    (labels[i] ? gen : imp).push_back(scores[i]);
  }
  RocResult r;
  r.genuine = static_cast<int64_t>(gen.size());
  r.impostor = static_cast<int64_t>(imp.size());
  require(r.genuine > 0 && r.impostor > 0, "roc: need genuine and impostor pairs (got {} and {})", r.genuine,
          r.impostor);
  const double n_imp = static_cast<double>(r.impostor), n_gen_d = static_cast<double>(r.genuine);

  // The top impostors, enough to cover the largest target FAR (and the curve),
  // plus everything tied with the boundary value, sorted descending.
  double f_max = curve_min_fpr_cover;
  for (double f : fars) f_max = std::max(f_max, f);
  size_t k = std::min<size_t>(imp.size(), static_cast<size_t>(std::ceil(f_max * n_imp)) + 2);
  const bool all_sorted = k >= imp.size();
  if (k < imp.size()) {
    std::nth_element(imp.begin(), imp.begin() + (k - 1), imp.end(), std::greater<float>());
    const float boundary = imp[k - 1];
    auto mid = std::partition(imp.begin() + k, imp.end(), [boundary](float v) { return v == boundary; });
    k = static_cast<size_t>(mid - imp.begin());
  }
  std::sort(imp.begin(), imp.begin() + k, std::greater<float>());
  std::sort(gen.begin(), gen.end(), std::greater<float>());

  // Distinct impostor values among the top k with cumulative counts: the
  // achievable false-accept counts (0 is the start point).
  Buffer<float> value;
  Buffer<int64_t> count;
  value.reserve(k + 1);
  count.reserve(k + 1);
  value.push_back(std::numeric_limits<float>::infinity());
  count.push_back(0);
  for (size_t i = 0; i < k; ++i) {
    if (imp[i] != value.back()) {
      value.push_back(imp[i]);
      count.push_back(static_cast<int64_t>(i) + 1);
    } else {
      count.back() = static_cast<int64_t>(i) + 1;
    }
  }
  // count.back() may be a partial group only when k == imp.size() (then complete).
  auto genuine_at_least = [&](float t) -> int64_t {
    if (std::isinf(t) && t > 0) return 0;
    // gen sorted descending: number of values >= t
    return static_cast<int64_t>(std::upper_bound(gen.begin(), gen.end(), t, std::greater<float>()) - gen.begin());
  };

  for (double far : fars) {
    size_t best = 0;
    double best_d = std::abs(0.0 / n_imp - far);
    for (size_t j = 1; j < count.size(); ++j) {
      double d = std::abs(static_cast<double>(count[j]) / n_imp - far);
      if (d < best_d) {
        best_d = d;
        best = j;
      }
      if (static_cast<double>(count[j]) / n_imp > far) break;  // further points are farther
    }
    TarAtFar t;
    t.far = far;
    t.fpr = static_cast<double>(count[best]) / n_imp;
    t.threshold = value[best];
    t.tar = static_cast<double>(genuine_at_least(value[best])) / n_gen_d;
    r.tar_at_far.push_back(t);
  }

  // Curve: exact corner points (top of each vertical run) thinned on a log grid.
  r.curve_max_fpr = static_cast<double>(count.back()) / n_imp;
  double next_fpr = 0;
  const double step = std::pow(10.0, 7.0 / std::max(curve_points, 10));
  for (size_t j = 1; j < count.size(); ++j) {
    double fpr = static_cast<double>(count[j]) / n_imp;
    if (fpr < next_fpr && j + 1 != count.size()) continue;
    // tpr just before the next impostor group starts (the corner's upper end).
    float below = j + 1 < value.size() ? value[j + 1]
                  : all_sorted         ? -std::numeric_limits<float>::infinity()
                                       : value[j];
    int64_t g_above_next = static_cast<int64_t>(
        std::upper_bound(gen.begin(), gen.end(), below, std::greater_equal<float>()) - gen.begin());
    r.curve.push_back({fpr, static_cast<double>(genuine_at_least(value[j])) / n_gen_d});
    r.curve.push_back({fpr, static_cast<double>(g_above_next) / n_gen_d});
    next_fpr = std::max(fpr * step, 1.0 / n_imp);
  }
  if (r.curve.empty() || r.curve.back().fpr < 1.0) r.curve.push_back({1.0, 1.0});
  return r;
}

double threshold_at_fmr(std::vector<float> imp, double fmr) {
  if (imp.empty()) return -std::numeric_limits<double>::infinity();
  const size_t k = static_cast<size_t>(std::floor(fmr * static_cast<double>(imp.size())));
  if (k >= imp.size()) return -std::numeric_limits<double>::infinity();
  std::nth_element(imp.begin(), imp.begin() + k, imp.end(), std::greater<float>());
  return imp[k];
}

}  // namespace qface::eval
