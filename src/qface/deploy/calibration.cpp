#include "qface/deploy/calibration.h"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/eval/roc.h"

namespace qface::deploy {
namespace fs = std::filesystem;
using nlohmann::json;

double VerifyCalibration::threshold_for(double far) const {
  std::string listed;
  for (const auto& [f, t] : thresholds) {
    if (std::abs(f - far) <= 1e-6 * far) return t;
    listed += fmt::format("{}{:g}", listed.empty() ? "" : ", ", f);
  }
  fail("{}: no threshold for FAR {:g} (calibrated: {}; {} impostor pairs resolve FAR >= {:g})", source, far,
       listed.empty() ? "none" : listed, impostors, impostors ? 1.0 / double(impostors) : 1.0);
}

double VerifyCalibration::default_far() const {
  require(!thresholds.empty(), "{}: lists no thresholds", source);
  std::optional<double> best;  // the smallest listed FAR >= kDefaultFar
  for (const auto& [f, t] : thresholds)
    if (f >= kDefaultFar * (1 - 1e-6) && (!best || f < *best)) best = f;
  if (best) return *best;
  double loosest = thresholds.front().first;
  for (const auto& [f, t] : thresholds) loosest = std::max(loosest, f);
  return loosest;
}

double decision_far(const VerifyCalibration* calibration, std::optional<double> asked, const std::string& option) {
  if (!calibration) return asked.value_or(VerifyCalibration::kDefaultFar);
  if (asked) {
    try {
      calibration->threshold_for(*asked);
    } catch (const Error& e) {
      fail("{} {:g}: {}", option, *asked, e.what());
    }
    return *asked;
  }
  const double far = calibration->default_far();
  if (std::abs(far - VerifyCalibration::kDefaultFar) > 1e-6 * far)
    spdlog::warn("deciding at FAR {:g}, the strictest {} resolves above {:g} ({} impostor pairs); {} picks another",
                 far, calibration->source, VerifyCalibration::kDefaultFar, calibration->impostors, option);
  return far;
}

fs::path verify_calibration_path(const fs::path& weights) {
  return fs::path(weights).replace_extension(".verify.json");
}
fs::path quality_calibration_path(const fs::path& weights) {
  return fs::path(weights).replace_extension(".quality.json");
}
namespace {
fs::path if_there(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) ? p : fs::path();
}
}  // namespace
fs::path verify_calibration_beside(const fs::path& weights) {
  return weights.empty() ? fs::path() : if_there(verify_calibration_path(weights));
}
fs::path quality_calibration_beside(const fs::path& weights) {
  return weights.empty() ? fs::path() : if_there(quality_calibration_path(weights));
}

std::optional<VerifyCalibration> find_verify_calibration(const fs::path& given, const fs::path& weights,
                                                         const std::string& who) {
  if (!given.empty()) return read_verify_calibration(given);
  const fs::path beside = verify_calibration_beside(weights);
  if (beside.empty()) return std::nullopt;
  spdlog::info("{}: calibration {} (beside the weights)", who, beside.string());
  return read_verify_calibration(beside);
}

json verify_calibration_json(std::vector<float> imp, int64_t genuine, const std::string& mode, const std::string& source) {
  require(!imp.empty(), "calibration: no impostor pairs in {}", source);
  const double n = static_cast<double>(imp.size());
  json th = json::array();
  for (double far : {1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6}) {
    if (far * n < 1) continue;
    const double t = eval::threshold_at_fmr(imp, far);
    std::size_t accepted = 0;
    for (float s : imp) accepted += s > t;
    th.push_back({{"far", far}, {"threshold", t}, {"impostor_accept_rate", accepted / n}});
  }
  return {{"kind", "calibration.verify"},
          {"score", "cosine"},
          {"rule", "match when cosine > threshold"},
          {"mode", mode},
          {"impostors", imp.size()},
          {"genuine", genuine},
          {"source", source},
          {"thresholds", th}};
}

VerifyCalibration read_verify_calibration(const fs::path& path) {
  VerifyCalibration c;
  c.source = path.string();
  try {
    const json j = json::parse(read_file(path));
    require(j.value("kind", "") == "calibration.verify",
            "{}: not a verification calibration (kind '{}'; write one with `qface eval verify --calibration-out`)",
            path.string(), j.value("kind", ""));
    c.mode = j.at("mode").get<std::string>();
    c.impostors = j.at("impostors").get<int64_t>();
    c.genuine = j.value("genuine", int64_t{0});
    for (const auto& t : j.at("thresholds")) c.thresholds.push_back({t.at("far").get<double>(), t.at("threshold").get<double>()});
  } catch (const json::exception& e) {
    fail("{}: {}", path.string(), e.what());
  }
  require(c.mode == "plain" || c.mode == "flip_fused", "{}: mode must be plain or flip_fused, got '{}'", path.string(),
          c.mode);
  return c;
}

double QualityCalibration::map(double norm) const {
  const auto& q = quantiles;
  if (norm <= q.front()) return 0;
  if (norm >= q.back()) return 1;
  const auto it = std::upper_bound(q.begin(), q.end(), norm);
  const auto i = static_cast<std::size_t>(it - q.begin());  // q[i-1] <= norm < q[i]
  const double span = q[i] - q[i - 1];
  const double frac = span > 0 ? (norm - q[i - 1]) / span : 0;
  return (static_cast<double>(i - 1) + frac) / static_cast<double>(q.size() - 1);
}

double ofiq_unified_score(double magnitude) { return 100.0 / (1.0 + std::exp((23.0 - magnitude) / 2.6)); }

json quality_calibration_json(std::vector<double> norms, const std::string& source) {
  require(norms.size() >= 2, "calibration: need at least 2 images, got {} in {}", norms.size(), source);
  std::sort(norms.begin(), norms.end());
  json q = json::array();
  const double last = static_cast<double>(norms.size() - 1);
  for (int p = 0; p <= 100; ++p) {  // linear interpolation between order statistics (numpy's default)
    const double x = last * p / 100.0;
    const auto lo = static_cast<std::size_t>(std::floor(x));
    const std::size_t hi = std::min(lo + 1, norms.size() - 1);
    q.push_back(norms[lo] + (x - static_cast<double>(lo)) * (norms[hi] - norms[lo]));
  }
  return {{"kind", "calibration.quality"},
          {"score", "norm"},
          {"mapping", "empirical CDF of the feature norm (101 quantiles, piecewise linear)"},
          {"images", norms.size()},
          {"source", source},
          {"quantiles", q}};
}

QualityCalibration read_quality_calibration(const fs::path& path) {
  QualityCalibration c;
  c.source = path.string();
  try {
    const json j = json::parse(read_file(path));
    require(j.value("kind", "") == "calibration.quality",
            "{}: not a quality calibration (kind '{}'; write one with `qface eval quality --calibration-out`)",
            path.string(), j.value("kind", ""));
    c.quantiles = j.at("quantiles").get<std::vector<double>>();
  } catch (const json::exception& e) {
    fail("{}: {}", path.string(), e.what());
  }
  require(c.quantiles.size() >= 2 && std::is_sorted(c.quantiles.begin(), c.quantiles.end()),
          "{}: quantiles must be at least 2 ascending values", path.string());
  return c;
}

}  // namespace qface::deploy
