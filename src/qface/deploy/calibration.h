// Calibrations that turn scores into decisions, written by `qface eval` and
// read by `qface verify`, `qface quality`, `qface search` and `qface serve`:
//  - verification (kind "calibration.verify"): cosine thresholds per target
//    FAR from the impostor score distribution of an evaluation set, with the
//    rule "match when cosine > threshold" (eval::threshold_at_fmr: the
//    floor(far * n)-th largest impostor score). Only FARs with far * n >= 1
//    are listed: smaller ones cannot be resolved by that many impostors.
//  - quality (kind "calibration.quality"): the feature norm mapped to [0, 1]
//    by its empirical distribution on an evaluation set (101 quantiles,
//    piecewise linear): 0.5 = a median image of that set.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qface::deploy {

struct VerifyCalibration {
  std::string mode = "flip_fused";  // feature mode the thresholds were computed in: plain | flip_fused
  int64_t impostors = 0, genuine = 0;
  std::vector<std::pair<double, double>> thresholds;  // (far, cosine threshold), far descending
  std::string source;
  // The threshold for a listed FAR (relative tolerance 1e-6); throws naming the listed ones.
  double threshold_for(double far) const;
  // The FAR decisions use when none is asked for: kDefaultFar when listed,
  // else the strictest listed FAR above it (a calibration from fewer than
  // 1,000 impostors cannot resolve 1e-3), else the loosest listed one.
  double default_far() const;
  static constexpr double kDefaultFar = 1e-3;
};

// The FAR a command decides at: `asked` when given (checked against the
// calibration: a FAR it does not resolve is an error naming `option` and the
// listed FARs), else the calibration's default_far(), logged when it is not
// kDefaultFar; kDefaultFar without a calibration.
double decision_far(const VerifyCalibration* calibration, std::optional<double> asked, const std::string& option);

// The calibrations `qface demo` / `qface study` write beside each model they
// train (X/model.pt: X/model.verify.json and X/model.quality.json), found by
// every deployment command when none is given; empty when the file is not there.
std::filesystem::path verify_calibration_beside(const std::filesystem::path& weights);
std::filesystem::path quality_calibration_beside(const std::filesystem::path& weights);
std::filesystem::path verify_calibration_path(const std::filesystem::path& weights);   // where it goes
// The verification calibration a command decides with: `given` when not
// empty, else the one beside `weights` (logged, naming `who`), else none.
std::optional<VerifyCalibration> find_verify_calibration(const std::filesystem::path& given,
                                                         const std::filesystem::path& weights,
                                                         const std::string& who);
std::filesystem::path quality_calibration_path(const std::filesystem::path& weights);

nlohmann::json verify_calibration_json(std::vector<float> impostor_scores, int64_t genuine, const std::string& mode,
                                       const std::string& source);
VerifyCalibration read_verify_calibration(const std::filesystem::path& path);

struct QualityCalibration {
  std::vector<double> quantiles;  // norm at 0, 1, ..., 100 %
  std::string source;
  double map(double norm) const;  // in [0, 1]
};

nlohmann::json quality_calibration_json(std::vector<double> norms, const std::string& source);

// OFIQ's unified quality score (ISO/IEC 29794-5 reference software;
// docs/method.md, Quality: EDC, ERC, OFIQ):
// 100 / (1 + exp((23 - x) / 2.6)) of a MagFace magnitude x, in (0, 100). The
// constants are OFIQ's calibration of a MagFace iResNet-50 magnitude; other
// heads' norms live on other scales (use the [0, 1] quality calibration).
double ofiq_unified_score(double magnitude);
QualityCalibration read_quality_calibration(const std::filesystem::path& path);

}  // namespace qface::deploy
