#include "qface/eval/quality.h"

#include <ATen/Parallel.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/quality/qualitybrisque.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "qface/core/error.h"
#include "qface/eval/roc.h"

namespace qface::eval {
namespace fs = std::filesystem;

std::vector<double> pair_quality(const Comparisons& c, std::span<const double> q) {
  std::vector<double> out(c.a.size());
  for (size_t i = 0; i < c.a.size(); ++i) {
    require(c.a[i] >= 0 && c.a[i] < static_cast<int64_t>(q.size()) && c.b[i] >= 0 &&
                c.b[i] < static_cast<int64_t>(q.size()),
            "quality: comparison {} names image {} / {}, outside the {} quality values", i, c.a[i], c.b[i],
            q.size());
    out[i] = std::min(q[c.a[i]], q[c.b[i]]);
    require(std::isfinite(out[i]), "quality: comparison {} has a non-finite quality", i);
  }
  return out;
}

namespace {
void check(const Comparisons& c, std::span<const double> pq) {
  require(c.score.size() == c.genuine.size() && c.score.size() == pq.size(),
          "quality: {} scores, {} labels, {} pair qualities", c.score.size(), c.genuine.size(), pq.size());
  int64_t g = 0;
  for (auto v : c.genuine) g += v;
  require(g > 0 && g < static_cast<int64_t>(c.genuine.size()), "quality: need genuine and impostor comparisons");
}
}  // namespace

EdcResult edc(const Comparisons& c, std::span<const double> pq, double fmr, double limit) {
  check(c, pq);
  EdcResult r;
  r.fmr = fmr;
  r.limit = limit;
  std::vector<float> imp;
  std::vector<size_t> gen;
  for (size_t i = 0; i < c.score.size(); ++i) {
    if (c.genuine[i]) gen.push_back(i);
    else imp.push_back(c.score[i]);
  }
  r.threshold = threshold_at_fmr(imp, fmr);
  std::sort(gen.begin(), gen.end(), [&](size_t x, size_t y) { return pq[x] < pq[y]; });
  const int64_t n = static_cast<int64_t>(gen.size());
  int64_t errors = 0;
  for (size_t i : gen) errors += c.score[i] > r.threshold ? 0 : 1;
  r.fnmr0 = static_cast<double>(errors) / static_cast<double>(n);
  r.discard.push_back(0);
  r.fnmr.push_back(r.fnmr0);
  int64_t k = 0;
  while (k < n) {
    const double level = pq[gen[k]];
    while (k < n && pq[gen[k]] == level) {
      errors -= c.score[gen[k]] > r.threshold ? 0 : 1;
      ++k;
    }
    r.discard.push_back(static_cast<double>(k) / static_cast<double>(n));
    r.fnmr.push_back(k < n ? static_cast<double>(errors) / static_cast<double>(n - k) : 0.0);
  }
  // Step-wise area: value fnmr[j] on [discard[j], discard[j+1]).
  for (size_t j = 0; j < r.discard.size(); ++j) {
    const double x0 = r.discard[j];
    if (x0 >= limit) break;
    const double x1 = j + 1 < r.discard.size() ? std::min(r.discard[j + 1], limit) : limit;
    r.pauc += r.fnmr[j] * (x1 - x0);
  }
  const double e0 = r.fnmr0;
  r.pauc_ideal = e0 <= limit ? e0 * e0 / 2 : limit * e0 - limit * limit / 2;
  r.pauc_minus_ideal = r.pauc - r.pauc_ideal;
  return r;
}

ErcResult erc(const Comparisons& c, std::span<const double> pq, double fmr, double step, double max_reject) {
  check(c, pq);
  ErcResult r;
  r.fmr = fmr;
  const size_t n = c.score.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return pq[x] < pq[y]; });
  const int steps = static_cast<int>(std::floor(max_reject / step + 1e-9));
  for (int s = 0; s <= steps; ++s) {
    const double rej = s * step;
    size_t drop = static_cast<size_t>(std::llround(rej * static_cast<double>(n)));
    while (drop > 0 && drop < n && pq[order[drop]] == pq[order[drop - 1]]) ++drop;  // ties go together
    std::vector<float> imp;
    std::vector<float> gen;
    for (size_t i = drop; i < n; ++i) (c.genuine[order[i]] ? gen : imp).push_back(c.score[order[i]]);
    if (gen.empty() || imp.empty()) break;
    const double t = threshold_at_fmr(imp, fmr);
    int64_t miss = 0;
    for (float g : gen) miss += g > t ? 0 : 1;
    r.reject.push_back(rej);
    r.reject_actual.push_back(static_cast<double>(drop) / static_cast<double>(n));
    r.fnmr.push_back(static_cast<double>(miss) / static_cast<double>(gen.size()));
    r.threshold.push_back(t);
  }
  return r;
}

namespace {
std::vector<double> average_ranks(std::span<const double> v) {
  const size_t n = v.size();
  std::vector<size_t> o(n);
  std::iota(o.begin(), o.end(), 0);
  std::sort(o.begin(), o.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(n);
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j + 1 < n && v[o[j + 1]] == v[o[i]]) ++j;
    const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) r[o[k]] = avg;
    i = j + 1;
  }
  return r;
}
}  // namespace

double spearman(std::span<const double> x, std::span<const double> y) {
  require(x.size() == y.size(), "spearman: {} vs {} values", x.size(), y.size());
  require(x.size() >= 2, "spearman: need at least 2 values");
  for (size_t i = 0; i < x.size(); ++i)
    require(std::isfinite(x[i]) && std::isfinite(y[i]), "spearman: value {} is not finite", i);
  std::vector<double> rx = average_ranks(x), ry = average_ranks(y);
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(rx.begin(), rx.end(), 0.0) / n, my = std::accumulate(ry.begin(), ry.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : std::nan("");
}

fs::path brisque_model_dir() {
  for (const char* d : {"/usr/share/opencv4/quality", "/usr/share/opencv/quality", "/usr/local/share/opencv4/quality"})
    if (fs::exists(fs::path(d) / "brisque_model_live.yml")) return d;
  fail("BRISQUE model files not found (install Debian's opencv-data: /usr/share/opencv4/quality/brisque_*.yml)");
}

namespace {
std::vector<double> brisque_many(size_t n, const std::function<cv::Mat(size_t)>& load) {
  const fs::path dir = brisque_model_dir();
  const std::string model = (dir / "brisque_model_live.yml").string(), range = (dir / "brisque_range_live.yml").string();
  std::vector<double> out(n);
  std::vector<std::string> errors(n);
  at::parallel_for(0, static_cast<int64_t>(n), 8, [&](int64_t b, int64_t e) {
    auto q = cv::quality::QualityBRISQUE::create(model, range);
    for (int64_t i = b; i < e; ++i) {
      cv::Mat img = load(static_cast<size_t>(i));
      if (img.empty()) {
        errors[i] = "does not decode";
        continue;
      }
      out[i] = q->compute(img)[0];
    }
  });
  for (size_t i = 0; i < n; ++i) require(errors[i].empty(), "BRISQUE: image {} {}", i, errors[i]);
  return out;
}
}  // namespace

std::vector<double> brisque_of_encoded(const std::vector<std::string>& encoded, const std::string& what) {
  try {
    return brisque_many(encoded.size(), [&](size_t i) {
      cv::Mat buf(1, static_cast<int>(encoded[i].size()), CV_8U, const_cast<char*>(encoded[i].data()));
      return cv::imdecode(buf, cv::IMREAD_COLOR);
    });
  } catch (const Error& e) {
    fail("{}: {}", what, e.what());
  }
}

std::vector<double> brisque_of_files(const std::vector<fs::path>& files) {
  for (const auto& f : files) require(fs::exists(f), "{}: image not found (for BRISQUE)", f.string());
  std::vector<double> out = brisque_many(files.size(), [&](size_t i) { return cv::imread(files[i].string(), cv::IMREAD_COLOR); });
  return out;
}

nlohmann::json to_json(const EdcResult& r) {
  return {{"fmr", r.fmr},         {"threshold", r.threshold},   {"fnmr0", r.fnmr0},
          {"limit", r.limit},     {"discard", r.discard},       {"fnmr", r.fnmr},
          {"pauc", r.pauc},       {"pauc_ideal", r.pauc_ideal}, {"pauc_minus_ideal", r.pauc_minus_ideal}};
}

nlohmann::json to_json(const ErcResult& r) {
  return {{"fmr", r.fmr}, {"reject", r.reject}, {"reject_actual", r.reject_actual}, {"fnmr", r.fnmr},
          {"threshold", r.threshold}};
}

Comparisons pair_comparisons(const torch::Tensor& embeddings, std::span<const uint8_t> issame) {
  const int64_t pairs = static_cast<int64_t>(issame.size());
  require(embeddings.dim() == 2 && embeddings.size(0) == 2 * pairs,
          "quality: {} embedding rows for {} pairs (pairs are rows 2i, 2i+1)", embeddings.size(0), pairs);
  torch::Tensor e = embeddings.to(torch::kFloat32).reshape({pairs, 2, -1});
  torch::Tensor s = (e.select(1, 0) * e.select(1, 1)).sum(1).contiguous();
  Comparisons c;
  c.score.assign(s.data_ptr<float>(), s.data_ptr<float>() + pairs);
  c.genuine.assign(issame.begin(), issame.end());
  for (int64_t i = 0; i < pairs; ++i) {
    c.a.push_back(2 * i);
    c.b.push_back(2 * i + 1);
  }
  return c;
}

Comparisons all_pair_comparisons(const torch::Tensor& embeddings, const std::vector<std::string>& labels) {
  const int64_t n = static_cast<int64_t>(labels.size());
  require(embeddings.dim() == 2 && embeddings.size(0) == n, "quality: {} embedding rows for {} labels",
          embeddings.size(0), n);
  const torch::Tensor e = embeddings.to(torch::kFloat32);
  const torch::Tensor S = torch::mm(e, e.t()).contiguous();
  const float* sp = S.data_ptr<float>();
  Comparisons c;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) {
      c.score.push_back(sp[i * n + j]);
      c.genuine.push_back(labels[i] == labels[j]);
      c.a.push_back(i);
      c.b.push_back(j);
    }
  return c;
}

std::vector<double> brisque_quality(std::vector<double> brisque) {
  for (double& b : brisque) b = -b;
  return brisque;
}

nlohmann::json quality_report_json(const std::string& name, const std::string& source, const Comparisons& c,
                                   const std::vector<std::pair<std::string, std::vector<double>>>& scores,
                                   const std::vector<double>& gt, const torch::Tensor& norms,
                                   const QualityReportOptions& o) {
  nlohmann::json j{{"kind", "eval.quality"}, {"name", name},   {"source", source},
                   {"comparisons", c.score.size()}, {"fmr", o.fmr}, {"pauc_limit", o.limit}};
  for (const auto& [score_name, q] : scores) {
    std::vector<double> pq = pair_quality(c, q);
    nlohmann::json js;
    js["edc"] = to_json(edc(c, pq, o.fmr, o.limit));
    js["erc"] = to_json(erc(c, pq, o.fmr));
    if (!gt.empty()) js["spearman_vs_gt"] = spearman(q, gt);
    spdlog::info("quality {} {}: EDC pAUC {:.5f} (minus ideal {:.5f}){}", name, score_name,
                 js["edc"]["pauc"].get<double>(), js["edc"]["pauc_minus_ideal"].get<double>(),
                 js.contains("spearman_vs_gt")
                     ? fmt::format(", Spearman vs GT {:.3f}", js["spearman_vs_gt"].get<double>())
                     : "");
    j["scores"][score_name] = js;
  }
  const int64_t n = norms.numel();
  if (!gt.empty() && n == static_cast<int64_t>(gt.size())) {
    // Norm vs ground truth, subsampled deterministically for the report.
    torch::Tensor nd = norms.to(torch::kFloat64).reshape({-1}).contiguous();
    std::vector<int64_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    std::mt19937_64 rng(7);
    std::shuffle(idx.begin(), idx.end(), rng);
    idx.resize(static_cast<std::size_t>(std::min<int64_t>(n, o.scatter)));
    std::sort(idx.begin(), idx.end());
    nlohmann::json x = nlohmann::json::array(), y = nlohmann::json::array();
    for (int64_t i : idx) {
      x.push_back(gt[static_cast<std::size_t>(i)]);
      y.push_back(nd.data_ptr<double>()[i]);
    }
    j["scatter"] = {{"x_label", "ground-truth quality"}, {"y_label", "feature norm"}, {"x", x}, {"y", y}};
  }
  return j;
}

}  // namespace qface::eval
