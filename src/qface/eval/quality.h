// Face image quality assessment (FIQA) curves, docs/method.md, Quality (hand-written: no
// Debian library computes them). Comparisons carry a similarity score, a
// genuine flag and a pair quality = min of the two image qualities (higher is
// better); the lowest-quality comparisons are discarded first and ties on the
// pair quality are discarded together. Decisions: accept when score > t.
//  - EDC: t fixed once, before discarding, at the target FMR over all
//    impostors; FNMR of the remaining genuine comparisons vs the discarded
//    fraction of genuine comparisons (one exact point per distinct quality);
//    pAUC = area under that step function from 0 to `limit`, also minus the
//    ideal area under max(0, FNMR0 - x).
//  - ERC (MagFace): reject 0, 5, ..., 95 % of all comparisons; t re-estimated
//    at each step at the target FMR on the remaining impostors; FNMR plotted.
// Also Spearman rank correlation and OpenCV's BRISQUE (opencv_contrib quality
// module) as the classic no-reference image-quality baseline.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace qface::eval {

struct Comparisons {
  std::vector<float> score;      // similarity
  std::vector<uint8_t> genuine;  // 1 mated
  std::vector<int64_t> a, b;     // image indices
};

// Pair quality = min(q[a], q[b]).
std::vector<double> pair_quality(const Comparisons& c, std::span<const double> image_quality);

struct EdcResult {
  double fmr = 1e-3, threshold = 0, fnmr0 = 0, limit = 0.2;
  std::vector<double> discard, fnmr;  // exact step points, discard ascending from 0
  double pauc = 0, pauc_ideal = 0, pauc_minus_ideal = 0;
};
EdcResult edc(const Comparisons& c, std::span<const double> pair_q, double fmr = 1e-3, double limit = 0.2);

struct ErcResult {
  double fmr = 1e-3;
  std::vector<double> reject, reject_actual, fnmr, threshold;
};
ErcResult erc(const Comparisons& c, std::span<const double> pair_q, double fmr = 1e-3, double step = 0.05,
              double max_reject = 0.95);

// Spearman's rho with average ranks for ties (Pearson of the ranks). NaN pairs are an error.
double spearman(std::span<const double> x, std::span<const double> y);

// BRISQUE scores (0 best ... 100 worst, OpenCV) of encoded or on-disk images;
// the model/range files are searched in the opencv-data locations.
std::filesystem::path brisque_model_dir();
std::vector<double> brisque_of_encoded(const std::vector<std::string>& encoded, const std::string& what);
std::vector<double> brisque_of_files(const std::vector<std::filesystem::path>& files);

// Ground-truth per-image quality from a `qface synth` manifest.json, read
// tolerantly: every object with a numeric "quality" is an entry, keyed by its
// "file" / "path" / "image" / "name" / "key" field or by its key in the parent
// object; arrays of entries are also indexed by position under their key.
// For a .bin set (bin non-empty) the array or object named after the file
// ("val_low.bin" or "val_low") gives image i; otherwise each of `files` is
// matched by full path, by path suffix, or by base name. Throws naming the
// first image without a value.
std::vector<double> ground_truth_quality(const std::filesystem::path& manifest, const std::string& bin,
                                         const std::vector<std::string>& files, int64_t count);

// Comparisons of a .bin set: pair i is rows 2i, 2i+1 of the normalized
// embeddings, scored by cosine similarity.
Comparisons pair_comparisons(const torch::Tensor& embeddings, std::span<const uint8_t> issame);

// Every pair (i < j, in row order) of a labelled set of normalized
// embeddings, scored by cosine similarity; genuine where the labels are equal.
Comparisons all_pair_comparisons(const torch::Tensor& embeddings, const std::vector<std::string>& labels);

// BRISQUE as a quality score (higher is better, like the norm): its negation.
std::vector<double> brisque_quality(std::vector<double> brisque);

// The JSON `qface eval quality` writes (kind "eval.quality") and `qface
// report` reads: EDC and ERC per named per-image score (higher = better), the
// Spearman correlation with the ground truth when `gt` is given, and a
// deterministic subsample of (ground truth, norm) points for the scatter plot.
struct QualityReportOptions {
  double fmr = 1e-3, limit = 0.2;
  int64_t scatter = 2000;
};
nlohmann::json quality_report_json(const std::string& name, const std::string& source, const Comparisons& c,
                                   const std::vector<std::pair<std::string, std::vector<double>>>& scores,
                                   const std::vector<double>& gt, const torch::Tensor& norms,
                                   const QualityReportOptions& options = {});

nlohmann::json to_json(const EdcResult& r);
nlohmann::json to_json(const ErcResult& r);

}  // namespace qface::eval
