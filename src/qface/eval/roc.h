// Exact ROC read-outs (hand-written: no Debian C++ library computes ROC
// curves). Scores are similarities (higher = more likely genuine).
//
// TAR at a FAR follows the IJB reference scripts (sklearn roc_curve + argmin):
// the ROC has one point per distinct score (ties grouped) plus the start point
// (0, 0); the TAR is read at the point whose FPR is nearest the target, the
// first such point in order of decreasing threshold when several are equally
// near. Only the impostors needed for the largest target FAR are sorted
// (nth_element + partial sort), so the read-out is exact without sorting all
// of a 15M-pair score list.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace qface::eval {

struct TarAtFar {
  double far = 0;        // target
  double tar = 0;        // TPR at the chosen ROC point
  double fpr = 0;        // the chosen point's FPR
  double threshold = 0;  // accept when score >= threshold (+inf at the start point)
};

struct RocPoint {
  double fpr = 0, tpr = 0;
};

struct RocResult {
  int64_t genuine = 0, impostor = 0;
  std::vector<TarAtFar> tar_at_far;
  std::vector<RocPoint> curve;  // exact points, thinned to about `curve_points` on a log-FPR grid
  double curve_max_fpr = 0;     // the curve is exact up to this FPR, then joins (1, 1)
};

// labels: 1 genuine, 0 impostor. Throws qface::Error when either class is empty.
RocResult roc_at_far(std::span<const float> scores, std::span<const uint8_t> labels, std::span<const double> fars,
                     int curve_points = 300, double curve_min_fpr_cover = 0.1);

// The standard FAR targets 1e-6 ... 1e-1.
std::vector<double> default_fars();

// Threshold for a target false-match rate on impostor scores, with the rule
// "accept when score > t": t is the k-th largest impostor score (0-based),
// k = floor(fmr * n), so that at most fmr * n impostors are accepted;
// -inf when k >= n. Used by EDC/ERC, TPIR@FPIR and the verification VAL.
double threshold_at_fmr(std::vector<float> impostor_scores, double fmr);

}  // namespace qface::eval
