#include "qface/synth/baseline.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/parallel.h"
#include "qface/data/bin_set.h"

namespace qface::synth {
namespace {

void unit_norm(std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  const double inv = s > 0 ? 1.0 / std::sqrt(s) : 0.0;
  for (float& x : v) x = static_cast<float>(x * inv);
}

cv::Mat grey112(const cv::Mat& bgr) {
  cv::Mat g;
  if (bgr.channels() == 3) cv::cvtColor(bgr, g, cv::COLOR_BGR2GRAY);
  else g = bgr;
  if (g.size() != cv::Size(112, 112)) cv::resize(g, g, cv::Size(112, 112), 0, 0, cv::INTER_AREA);
  return g;
}

// Uniform-pattern table: the 58 patterns with <= 2 transitions get 0..57, the rest 58.
std::array<uint8_t, 256> uniform_table() {
  std::array<uint8_t, 256> t{};
  int next = 0;
  for (int c = 0; c < 256; ++c) {
    int transitions = 0;
    for (int b = 0; b < 8; ++b) transitions += ((c >> b) & 1) != ((c >> ((b + 1) % 8)) & 1);
    t[static_cast<std::size_t>(c)] = static_cast<uint8_t>(transitions <= 2 ? next++ : 58);
  }
  return t;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

std::vector<float> pixel_feature(const cv::Mat& bgr) {
  cv::Mat small;
  cv::resize(grey112(bgr), small, cv::Size(28, 28), 0, 0, cv::INTER_AREA);
  std::vector<float> v(small.begin<uchar>(), small.end<uchar>());
  double mean = 0;
  for (float x : v) mean += x;
  mean /= static_cast<double>(v.size());
  for (float& x : v) x = static_cast<float>(x - mean);
  unit_norm(v);
  return v;
}

std::vector<float> lbp_feature(const cv::Mat& bgr) {
  static const std::array<uint8_t, 256> table = uniform_table();
  const cv::Mat g = grey112(bgr);
  constexpr int kGrid = 8, kCell = 14, kBins = 59;
  std::vector<float> h(static_cast<std::size_t>(kGrid * kGrid * kBins), 0.f);
  static const int dy[8] = {-1, -1, -1, 0, 1, 1, 1, 0}, dx[8] = {-1, 0, 1, 1, 1, 0, -1, -1};
  for (int y = 1; y < 111; ++y)
    for (int x = 1; x < 111; ++x) {
      const uchar c = g.at<uchar>(y, x);
      int code = 0;
      for (int k = 0; k < 8; ++k) code |= (g.at<uchar>(y + dy[k], x + dx[k]) >= c) << k;
      const int cell = (y / kCell) * kGrid + (x / kCell);
      h[static_cast<std::size_t>(cell * kBins + table[static_cast<std::size_t>(code)])] += 1.f;
    }
  for (float& v : h) v = std::sqrt(v);
  unit_norm(h);
  return h;
}

FoldAccuracy verification_accuracy(const std::vector<double>& scores, const std::vector<uint8_t>& issame, int folds) {
  require(scores.size() == issame.size() && !scores.empty(), "baseline: {} scores for {} labels", scores.size(),
          issame.size());
  const std::size_t n = scores.size();
  folds = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(folds), n));
  auto acc_at = [&](double thr, std::size_t lo, std::size_t hi, bool inside) {
    std::size_t ok = 0, total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if ((i >= lo && i < hi) != inside) continue;
      ok += (scores[i] >= thr) == (issame[i] != 0);
      ++total;
    }
    return total ? static_cast<double>(ok) / static_cast<double>(total) : 0.0;
  };
  std::vector<double> accs;
  for (int f = 0; f < folds; ++f) {
    const std::size_t lo = n * static_cast<std::size_t>(f) / static_cast<std::size_t>(folds);
    const std::size_t hi = n * static_cast<std::size_t>(f + 1) / static_cast<std::size_t>(folds);
    // Best threshold on the other folds: candidates are midpoints of sorted scores.
    std::vector<std::pair<double, bool>> train;
    for (std::size_t i = 0; i < n; ++i)
      if (i < lo || i >= hi) train.emplace_back(scores[i], issame[i]);
    std::sort(train.begin(), train.end());
    std::size_t pos_total = 0;
    for (const auto& t : train) pos_total += t.second;
    // Threshold below train[k]: predicted same for k..end.
    std::size_t neg_below = 0, pos_below = 0, best_ok = 0;
    const std::size_t m = train.size();
    double best_thr = m ? train.front().first - 1.0 : 0.0;
    for (std::size_t k = 0; k <= m; ++k) {
      const bool split = k == 0 || k == m || train[k - 1].first != train[k].first;
      if (split) {
        const std::size_t ok = neg_below + (pos_total - pos_below);
        if (ok > best_ok) {
          best_ok = ok;
          best_thr = k == 0 ? train[0].first - 1.0 : k == m ? train[m - 1].first + 1.0
                                                             : 0.5 * (train[k - 1].first + train[k].first);
        }
      }
      if (k < m) (train[k].second ? pos_below : neg_below) += 1;
    }
    accs.push_back(acc_at(best_thr, lo, hi, true));
  }
  FoldAccuracy r;
  for (double a : accs) r.mean += a;
  r.mean /= static_cast<double>(accs.size());
  for (double a : accs) r.std += (a - r.mean) * (a - r.mean);
  r.std = std::sqrt(r.std / static_cast<double>(accs.size()));
  return r;
}

std::vector<BaselineRow> run_baseline(const std::filesystem::path& dir, int threads) {
  std::vector<BaselineRow> rows;
  for (const char* name : {"val_high", "val_mixed", "val_low"}) {
    const auto bin_path = dir / (std::string(name) + ".bin");
    const data::BinSet set = data::read_bin_set(bin_path);
    const auto side_path = dir / (std::string(name) + ".json");
    const nlohmann::json side = nlohmann::json::parse(read_file(side_path), nullptr, false);
    require(!side.is_discarded() && side.contains("quality"), "{}: not a qface synth pair sidecar", side_path.string());
    require(side["quality"].size() == set.pairs(), "{}: {} pairs, but {} has {}", side_path.string(),
            side["quality"].size(), bin_path.string(), set.pairs());
    std::vector<std::vector<float>> pix(set.images.size()), lbp(set.images.size());
    parallel_for(static_cast<int64_t>(set.images.size()), threads, [&](int64_t i) {
      const std::string& bytes = set.images[static_cast<std::size_t>(i)];
      const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
      const cv::Mat img = cv::imdecode(buf, cv::IMREAD_COLOR);
      require(!img.empty(), "{}: image {} does not decode", bin_path.string(), i);
      pix[static_cast<std::size_t>(i)] = pixel_feature(img);
      lbp[static_cast<std::size_t>(i)] = lbp_feature(img);
    });
    std::vector<double> sp, sl;
    BaselineRow row;
    row.set = name;
    row.pairs = static_cast<int64_t>(set.pairs());
    for (std::size_t p = 0; p < set.pairs(); ++p) {
      sp.push_back(dot(pix[2 * p], pix[2 * p + 1]));
      sl.push_back(dot(lbp[2 * p], lbp[2 * p + 1]));
      row.mean_min_quality += std::min(side["quality"][p][0].get<double>(), side["quality"][p][1].get<double>());
    }
    row.mean_min_quality /= static_cast<double>(set.pairs());
    row.pixels = verification_accuracy(sp, set.issame);
    row.lbp = verification_accuracy(sl, set.issame);
    rows.push_back(row);
  }
  return rows;
}

std::string baseline_markdown(const std::vector<BaselineRow>& rows) {
  std::string s =
      "| set | pairs | mean min(q1, q2) | pixels acc (%) | LBP acc (%) |\n|---|---|---|---|---|\n";
  for (const auto& r : rows)
    s += fmt::format("| {} | {} | {:.3f} | {:.1f} ± {:.1f} | {:.1f} ± {:.1f} |\n", r.set, r.pairs, r.mean_min_quality,
                     100 * r.pixels.mean, 100 * r.pixels.std, 100 * r.lbp.mean, 100 * r.lbp.std);
  return s;
}

}  // namespace qface::synth
