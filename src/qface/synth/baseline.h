// Handcrafted verification baselines on the synthetic .bin sets: how hard is
// the data for a method that learns nothing? Two features, both compared by
// cosine similarity:
//   pixels  grey image, 28 x 28 (area), zero mean, unit norm
//   lbp     uniform LBP (8 neighbours, radius 1; 59 codes) histograms on an
//           8 x 8 grid of 14 x 14 cells, square-rooted (Hellinger), unit norm
// Accuracy: 10 contiguous folds, threshold chosen on 9, accuracy on the 10th
// (docs/method.md's 1:1 protocol, on similarity instead of distance).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace qface::synth {

std::vector<float> pixel_feature(const cv::Mat& bgr);
// Plain uniform-LBP code (OpenCV has no LBP outside the contrib face recognizer).
std::vector<float> lbp_feature(const cv::Mat& bgr);

struct FoldAccuracy {
  double mean = 0, std = 0;
};
// Accuracy of "same when score >= threshold" with the 10-fold protocol.
FoldAccuracy verification_accuracy(const std::vector<double>& scores, const std::vector<uint8_t>& issame, int folds = 10);

struct BaselineRow {
  std::string set;
  int64_t pairs = 0;
  double mean_min_quality = 0;  // mean over pairs of min(q1, q2)
  FoldAccuracy pixels, lbp;
};

// Reads DIR/val_{high,mixed,low}.bin and their .json sidecars.
std::vector<BaselineRow> run_baseline(const std::filesystem::path& dir, int threads);

std::string baseline_markdown(const std::vector<BaselineRow>& rows);

}  // namespace qface::synth
