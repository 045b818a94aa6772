#include "qface/eval/verify.h"

#include <torch/torch.h>

#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "qface/core/error.h"
#include "qface/core/tensor_util.h"

namespace qface::eval {
namespace {

// Contiguous folds as sklearn's KFold(shuffle=False): the first n % k folds get one more.
std::vector<int64_t> fold_starts(int64_t n, int k) {
  std::vector<int64_t> starts{0};
  for (int f = 0; f < k; ++f) starts.push_back(starts.back() + n / k + (f < n % k ? 1 : 0));
  return starts;
}

// Number of thresholds t_i = i * step (i < count) with dist < t_i is count - b,
// b = first i with i * step > dist. Computed with the same double products the
// thresholds use, so boundaries match numpy's arange exactly.
int64_t first_above(double dist, double step, int64_t count) {
  int64_t b = static_cast<int64_t>(std::floor(dist / step));
  b = std::clamp<int64_t>(b, 0, count);
  while (b > 0 && static_cast<double>(b - 1) * step > dist) --b;
  while (b < count && !(static_cast<double>(b) * step > dist)) ++b;
  return b;
}

// Per fold, how many genuine / impostor pairs each threshold accepts
// (dist < t_i), on the accuracy grid (threshold_step) and the VAL grid (val_step).
struct FoldCounts {
  std::vector<int64_t> starts;                 // fold f is pairs [starts[f], starts[f + 1])
  std::vector<int64_t> genuine, size;          // per fold
  std::vector<std::vector<int64_t>> tp, fp;    // per fold and accuracy threshold: accepted genuine / impostors
  std::vector<std::vector<int64_t>> fp_val;    // per fold and VAL threshold: accepted impostors
  int folds() const { return static_cast<int>(size.size()); }
  int64_t impostors(int f) const { return size[f] - genuine[f]; }
  // Right decisions of fold f at accuracy threshold i: accepted genuine plus rejected impostors.
  int64_t correct(int f, int64_t i) const { return tp[f][i] + (impostors(f) - fp[f][i]); }
};

// Histograms over each pair's first accepting threshold index; their prefix
// sums are the accepted counts, so every threshold costs O(1) per fold.
FoldCounts count_folds(std::span<const double> dist, std::span<const uint8_t> issame, const VerifyOptions& o,
                       int64_t n_thr, int64_t n_val) {
  const int F = o.folds;
  FoldCounts c;
  c.starts = fold_starts(static_cast<int64_t>(dist.size()), F);
  c.genuine.assign(F, 0);
  c.size.assign(F, 0);
  std::vector<std::vector<int64_t>> same_b(F, std::vector<int64_t>(n_thr + 1, 0)), diff_b = same_b;
  std::vector<std::vector<int64_t>> diff_v(F, std::vector<int64_t>(n_val + 1, 0));
  for (int f = 0; f < F; ++f) {
    for (int64_t p = c.starts[f]; p < c.starts[f + 1]; ++p) {
      require(std::isfinite(dist[p]), "verify: distance of pair {} is not finite", p);
      const int64_t b = first_above(dist[p], o.threshold_step, n_thr);
      if (issame[p]) {
        ++same_b[f][b];
        ++c.genuine[f];
      } else {
        ++diff_b[f][b];
        ++diff_v[f][first_above(dist[p], o.val_step, n_val)];
      }
      ++c.size[f];
    }
  }
  auto cumulative = [](const std::vector<int64_t>& h, int64_t count) {
    std::vector<int64_t> out(count, 0);
    int64_t run = 0;
    for (int64_t i = 0; i < count; ++i) {
      run += h[i];
      out[i] = run;
    }
    return out;
  };
  for (int f = 0; f < F; ++f) {
    c.tp.push_back(cumulative(same_b[f], n_thr));
    c.fp.push_back(cumulative(diff_b[f], n_thr));
    c.fp_val.push_back(cumulative(diff_v[f], n_val));
  }
  return c;
}

// Population mean and standard deviation (ddof 0, as numpy).
void mean_std(const std::vector<double>& v, double& mean, double& sd) {
  mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  sd = std::sqrt(ss / static_cast<double>(v.size()));
}

// The accuracy protocol: per fold, the first threshold with the most right
// decisions on the other folds, its accuracy on this fold, and each of this
// fold's pairs decided by it.
void fold_accuracies(const FoldCounts& c, std::span<const double> dist, std::span<const uint8_t> issame, double step,
                     int64_t n_thr, VerifyResult& r) {
  r.pair_correct.assign(dist.size(), 0);
  for (int f = 0; f < c.folds(); ++f) {
    int64_t best_i = 0, best_c = -1;
    for (int64_t i = 0; i < n_thr; ++i) {
      int64_t right = 0;
      for (int g = 0; g < c.folds(); ++g)
        if (g != f) right += c.correct(g, i);
      if (right > best_c) {
        best_c = right;
        best_i = i;
      }
    }
    const double t = static_cast<double>(best_i) * step;
    r.fold_threshold.push_back(t);
    r.fold_accuracy.push_back(static_cast<double>(c.correct(f, best_i)) / static_cast<double>(c.size[f]));
    for (int64_t p = c.starts[f]; p < c.starts[f + 1]; ++p) r.pair_correct[p] = (dist[p] < t) == (issame[p] != 0);
  }
}

// InsightFace's VAL threshold for test fold f: where the training folds' FAR
// reaches the target, linearly interpolated between grid points; 0 when it never does.
double val_threshold(const FoldCounts& c, int f, double target, double step, int64_t n_val) {
  int64_t train_diff = 0;
  for (int g = 0; g < c.folds(); ++g)
    if (g != f) train_diff += c.impostors(g);
  auto far_train = [&](int64_t i) {
    int64_t a = 0;
    for (int g = 0; g < c.folds(); ++g)
      if (g != f) a += c.fp_val[g][i];
    return train_diff ? static_cast<double>(a) / static_cast<double>(train_diff) : 0.0;
  };
  if (far_train(n_val - 1) < target) return 0;
  int64_t i = 0;
  while (far_train(i) < target) ++i;
  const double fi = far_train(i), ti = static_cast<double>(i) * step;
  if (fi == target || i == 0) return ti;
  const double fj = far_train(i - 1), tj = static_cast<double>(i - 1) * step;
  return tj + (target - fj) * (ti - tj) / (fi - fj);
}

// TAR and FAR on each test fold at its VAL threshold, mean (and TAR's std) over folds.
TarAtFarFolds tar_at_far_folds(const FoldCounts& c, std::span<const double> dist, std::span<const uint8_t> issame,
                               double target, double step, int64_t n_val) {
  require(target > 0 && target < 1, "verify: FAR target {} is not in (0, 1)", target);
  TarAtFarFolds v{.far = target};
  v.min_fold_impostors = static_cast<int64_t>(dist.size());
  for (int f = 0; f < c.folds(); ++f) v.min_fold_impostors = std::min(v.min_fold_impostors, c.impostors(f));
  v.resolved = static_cast<double>(v.min_fold_impostors) * target >= 1.0 - 1e-9;
  std::vector<double> tars, fars;
  for (int f = 0; f < c.folds(); ++f) {
    const double thr = val_threshold(c, f, target, step, n_val);
    int64_t ta = 0, fa = 0;
    for (int64_t p = c.starts[f]; p < c.starts[f + 1]; ++p)
      if (dist[p] < thr) (issame[p] ? ta : fa) += 1;
    tars.push_back(c.genuine[f] ? static_cast<double>(ta) / static_cast<double>(c.genuine[f]) : 0.0);
    fars.push_back(c.impostors(f) ? static_cast<double>(fa) / static_cast<double>(c.impostors(f)) : 0.0);
  }
  double unused = 0;
  mean_std(tars, v.tar_mean, v.tar_std);
  mean_std(fars, v.far_mean, unused);
  return v;
}

}  // namespace

VerifyResult verify_distances(std::span<const double> dist, std::span<const uint8_t> issame,
                              const VerifyOptions& o) {
  const int64_t n = static_cast<int64_t>(dist.size());
  require(n == static_cast<int64_t>(issame.size()), "verify: {} distances but {} labels", n, issame.size());
  require(n >= o.folds, "verify: {} pairs, fewer than the {} folds", n, o.folds);
  require(o.folds >= 2, "verify: need at least 2 folds");
  const int64_t n_thr = static_cast<int64_t>(std::llround(o.threshold_max / o.threshold_step));
  const int64_t n_val = static_cast<int64_t>(std::llround(o.threshold_max / o.val_step));
  const FoldCounts c = count_folds(dist, issame, o, n_thr, n_val);

  VerifyResult r;
  r.pairs = n;
  for (int64_t g : c.genuine) r.genuine += g;
  fold_accuracies(c, dist, issame, o.threshold_step, n_thr, r);
  for (double target : o.val_fars) r.val.push_back(tar_at_far_folds(c, dist, issame, target, o.val_step, n_val));
  double unused = 0;
  mean_std(r.fold_accuracy, r.accuracy_mean, r.accuracy_std);
  mean_std(r.fold_threshold, r.best_threshold_mean, unused);

  if (r.genuine > 0 && r.genuine < n) {
    std::vector<float> sim(n);
    for (int64_t p = 0; p < n; ++p) sim[p] = static_cast<float>(-dist[p]);
    const std::vector<double> targets{1e-3, 1e-2, 1e-1};
    r.roc = roc_at_far(sim, issame, targets, 200, 1.0);
  }
  return r;
}

std::vector<double> pair_distances(const torch::Tensor& embeddings) {
  require(embeddings.dim() == 2 && embeddings.size(0) % 2 == 0,
          "verify: need an even number of embedding rows (pairs 2i, 2i+1), got {}", embeddings.size(0));
  torch::Tensor e = embeddings.to(torch::kFloat64).reshape({-1, 2, embeddings.size(1)});
  torch::Tensor d = (e.select(1, 0) - e.select(1, 1)).pow(2).sum(1).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

VerifyResult verify_embeddings(const torch::Tensor& embeddings, std::span<const uint8_t> issame,
                               const VerifyOptions& options) {
  require(embeddings.size(0) == 2 * static_cast<int64_t>(issame.size()),
          "verify: {} embedding rows for {} pairs (expected two rows per pair)", embeddings.size(0), issame.size());
  std::vector<double> d = pair_distances(embeddings);
  return verify_distances(d, issame, options);
}

const TarAtFarFolds* VerifyResult::val_at(double far) const {
  for (const auto& v : val)
    if (std::abs(v.far - far) <= 1e-12 * far) return &v;
  return nullptr;
}

nlohmann::json VerifyResult::tar_json(double far) const {
  const TarAtFarFolds* v = val_at(far);
  return v && v->resolved ? nlohmann::json(v->tar_mean) : nlohmann::json();
}

std::string VerifyResult::tar_text(double far) const {
  const TarAtFarFolds* v = val_at(far);
  return v && v->resolved ? fmt::format("{:.2f} %", 100 * v->tar_mean) : std::string("—");
}

nlohmann::json to_json(const RocResult& r) {
  nlohmann::json j;
  j["genuine"] = r.genuine;
  j["impostor"] = r.impostor;
  nlohmann::json tars = nlohmann::json::array();
  for (const auto& t : r.tar_at_far)
    tars.push_back({{"far", t.far}, {"resolved", static_cast<double>(r.impostor) * t.far >= 1.0 - 1e-9}, {"tar", t.tar}, {"fpr", t.fpr},
                    {"threshold", std::isfinite(t.threshold) ? nlohmann::json(t.threshold) : nlohmann::json()}});
  j["tar_at_far"] = tars;
  nlohmann::json fpr = nlohmann::json::array(), tpr = nlohmann::json::array();
  for (const auto& p : r.curve) {
    fpr.push_back(p.fpr);
    tpr.push_back(p.tpr);
  }
  j["curve"] = {{"fpr", fpr}, {"tpr", tpr}, {"exact_up_to_fpr", r.curve_max_fpr}};
  return j;
}

nlohmann::json to_json(const VerifyResult& r) {
  nlohmann::json j;
  j["pairs"] = r.pairs;
  j["genuine"] = r.genuine;
  j["accuracy_mean"] = r.accuracy_mean;
  j["accuracy_std"] = r.accuracy_std;
  j["best_threshold_mean"] = r.best_threshold_mean;
  // The same threshold as a cosine (unit vectors: d = 2 - 2 cos), the scale of calibration files.
  j["best_threshold_cosine_mean"] = 1.0 - r.best_threshold_mean / 2.0;
  j["fold_accuracy"] = r.fold_accuracy;
  j["fold_threshold"] = r.fold_threshold;
  nlohmann::json val = nlohmann::json::array();
  for (const auto& v : r.val) {
    const auto num = [&](double x) { return v.resolved ? nlohmann::json(x) : nlohmann::json(); };
    val.push_back({{"far", v.far}, {"resolved", v.resolved}, {"min_fold_impostors", v.min_fold_impostors},
                   {"tar_mean", num(v.tar_mean)}, {"tar_std", num(v.tar_std)}, {"far_mean", num(v.far_mean)}});
  }
  j["tar_at_far_folds"] = val;
  if (r.roc.genuine) j["roc"] = to_json(r.roc);
  return j;
}

nlohmann::json verify_report_json(const std::string& name, const std::vector<VerifySet>& sets) {
  nlohmann::json j{{"kind", "eval.verify"}, {"name", name}, {"protocol", "10-fold, squared L2, thresholds 0..4 step 0.01"}};
  j["sets"] = nlohmann::json::array();
  for (const auto& s : sets) {
    nlohmann::json js{{"set", s.set}};
    for (const auto& [mode, r] : s.modes) js["modes"][mode] = to_json(r);
    j["sets"].push_back(js);
  }
  return j;
}

VerifySet verify_modes(const std::string& set, const ModeInput& f, std::span<const uint8_t> issame,
                       const VerifyOptions& options, torch::Tensor* fused, torch::Tensor* fused_norms) {
  VerifySet out{.set = set};
  out.modes.push_back({f.mode, verify_embeddings(f.plain, issame, options)});
  if (f.flipped.defined()) {
    require(f.mode == "plain", "{}: flipped features given for features that are already {}", set, f.mode);
    require(f.flipped.sizes() == f.plain.sizes(), "{}: {} flipped embeddings for {} plain ones", set, f.flipped.size(0),
            f.plain.size(0));
    auto [e, n] = qface::fuse_flip(f.plain, f.plain_norms, f.flipped, f.flipped_norms);
    out.modes.push_back({"flip_fused", verify_embeddings(e, issame, options)});
    if (fused) *fused = e;
    if (fused_norms) *fused_norms = n;
  }
  return out;
}

}  // namespace qface::eval
