#include "qface/deploy/ssd_detector.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "qface/core/error.h"
#include "qface/deploy/ssd_mobilenet.h"
#include "qface/io/tfjs_weights.h"

namespace qface::deploy {
namespace fs = std::filesystem;

namespace {

constexpr const char* kManifest = "ssd_mobilenetv1_model-weights_manifest.json";

// One axis of TensorFlow's legacy bilinear resize (align_corners = false,
// half_pixel_centers = false): destination i reads source i * in / out.
struct Taps {
  std::vector<int> lo, hi;
  std::vector<float> frac;
};
Taps taps(int in, int out) {
  Taps t;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int i = 0; i < out; ++i) {
    const float src = static_cast<float>(i) * scale;
    const int lo = std::min(static_cast<int>(std::floor(src)), in - 1);
    t.lo.push_back(lo);
    t.hi.push_back(std::min(lo + 1, in - 1));
    t.frac.push_back(src - static_cast<float>(lo));
  }
  return t;
}

struct Candidate {
  cv::Rect2d box;  // photo pixels
  double score;
};

// One pass's boxes (ymin, xmin, ymax, xmax; [K, 4]) scoring above min_score
// as candidates in photo pixels: clipped to [0, rows] x [0, cols] as the
// reference clips to its square, times `unit`, divided by the pass's scale.
void add_candidates(const torch::Tensor& boxes, const torch::Tensor& scores, double min_score, double rows, double cols,
                    double unit, double fy, double fx, std::vector<Candidate>& out) {
  const torch::Tensor bc = boxes.contiguous(), sc = scores.contiguous();
  const float* b = bc.data_ptr<float>();
  const float* s = sc.data_ptr<float>();
  for (int64_t i = 0; i < sc.numel(); ++i) {
    if (s[i] <= min_score) continue;
    const double y0 = std::max(0.0, static_cast<double>(b[4 * i])) * unit / fy;
    const double x0 = std::max(0.0, static_cast<double>(b[4 * i + 1])) * unit / fx;
    const double y1 = std::min(rows, static_cast<double>(b[4 * i + 2])) * unit / fy;
    const double x1 = std::min(cols, static_cast<double>(b[4 * i + 3])) * unit / fx;
    out.push_back({cv::Rect2d(x0, y0, x1 - x0, y1 - y0), s[i]});  // an empty box is dropped as flat
  }
}

// The scan pass: the photo resized by `factor`, padded with black to a
// multiple of 32 at its bottom and right, through the network at that size.
void scan(const cv::Mat& rgb, double factor, SsdMobileNetV1& net, double min_score, std::vector<Candidate>& out) {
  cv::Mat img = rgb;
  const cv::Size size(std::max(1, static_cast<int>(std::lround(rgb.cols * factor))),
                      std::max(1, static_cast<int>(std::lround(rgb.rows * factor))));
  if (size != rgb.size()) cv::resize(rgb, img, size, 0, 0, factor > 1 ? cv::INTER_LINEAR : cv::INTER_AREA);
  // Boxes go back through the exact ratio of the rounded size.
  const double fx = static_cast<double>(img.cols) / rgb.cols, fy = static_cast<double>(img.rows) / rgb.rows;
  const int64_t h = (img.rows + 31) / 32 * 32, w = (img.cols + 31) / 32 * 32;
  // Filled in NHWC, the layout the network runs in (no transposed copy).
  torch::Tensor nhwc = torch::full({1, h, w, 3}, -1.f);
  const torch::Tensor pixels = torch::from_blob(img.data, {img.rows, img.cols, 3}, {static_cast<int64_t>(img.step[0]), 3, 1}, torch::kUInt8);
  nhwc[0].slice(0, 0, img.rows).slice(1, 0, img.cols).copy_(pixels.to(torch::kFloat32) / 127.5f - 1.f);
  std::vector<torch::Tensor> enc, scores;
  for (SsdLevel& l : net->levels(nhwc.permute({0, 3, 1, 2}))) {
    enc.push_back(l.encodings[0]);
    scores.push_back(l.scores[0]);
  }
  const torch::Tensor s = torch::cat(scores), anchors = net->grid_anchors(h, w);
  require(s.size(0) == anchors.size(0), "ssd scan: {} predictions for {} anchors", s.size(0), anchors.size(0));
  const torch::Tensor keep = (s > min_score).nonzero().view(-1);
  // Only the boxes above the score are decoded (a 1080p scan has ~64,000 anchors).
  add_candidates(decode_ssd_boxes(torch::cat(enc).index_select(0, keep), anchors.index_select(0, keep)),
                 s.index_select(0, keep), min_score, img.rows, img.cols, 1, fy, fx, out);
}

// A box with no image structure in it: the network scores some flat images
// (a plain wall) above 0.7, and no face is flat (real ones vary by tens of
// grey levels). Flat boxes are dropped, and do not suppress others.
bool flat(const cv::Mat& rgb, const cv::Rect2d& box) {
  const cv::Rect r = cv::Rect(box) & cv::Rect(0, 0, rgb.cols, rgb.rows);
  if (r.area() <= 0) return true;
  cv::Scalar mean, std;
  cv::meanStdDev(rgb(r), mean, std);
  return std::max({std[0], std[1], std[2]}) < kFlatBoxStd;
}

double iou(const cv::Rect2d& a, const cv::Rect2d& b) {
  if (a.area() <= 0 || b.area() <= 0) return 0;
  const double inter = (a & b).area();
  return inter / (a.area() + b.area() - inter);
}

}  // namespace

fs::path default_ssd_model_dir() {
  if (const char* env = std::getenv("QFACE_DETECTOR_WEIGHTS"); env && *env) return env;
  return QFACE_SSD_MODEL_DIR;
}

void window_input(const cv::Mat& rgb, const Window& w, float* out) {
  const int n = static_cast<int>(kSsdInputSize);
  const Taps ty = taps(w.side, n), tx = taps(w.side, n);
  const std::size_t plane = static_cast<std::size_t>(n) * n;
  // A pixel of the window outside the photo is black (the reference pads with zeros).
  auto pixel = [&](int y, int x, int c) -> float {
    const int py = w.y + y, px = w.x + x;
    if (py < 0 || px < 0 || py >= rgb.rows || px >= rgb.cols) return 0.f;
    return rgb.ptr<uint8_t>(py)[3 * px + c];
  };
  for (int i = 0; i < n; ++i) {
    const float fy = ty.frac[i];
    for (int j = 0; j < n; ++j) {
      const float fx = tx.frac[j];
      for (int c = 0; c < 3; ++c) {
        const float top = pixel(ty.lo[i], tx.lo[j], c) + (pixel(ty.lo[i], tx.hi[j], c) - pixel(ty.lo[i], tx.lo[j], c)) * fx;
        const float bottom =
            pixel(ty.hi[i], tx.lo[j], c) + (pixel(ty.hi[i], tx.hi[j], c) - pixel(ty.hi[i], tx.lo[j], c)) * fx;
        const float v = top + (bottom - top) * fy;
        out[c * plane + static_cast<std::size_t>(i) * n + j] = v / 127.5f - 1.f;
      }
    }
  }
}

double scan_factor(int width, int height, const SsdOptions& o) {
  if (o.scan <= 0) return 0;
  const double area = static_cast<double>(width) * height * o.scan * o.scan;
  if (o.scan_max_pixels <= 0 || area <= static_cast<double>(o.scan_max_pixels)) return o.scan;
  return o.scan * std::sqrt(static_cast<double>(o.scan_max_pixels) / area);
}

SsdPasses ssd_passes(int width, int height, double f) {
  const double input = static_cast<double>(kSsdInputSize);
  if (f <= 0 || std::max(width, height) * f < input) return {true, false};
  return {std::min(width, height) * f > input, true};
}

struct SsdFaceDetector::Impl {
  SsdOptions options;
  SsdMobileNetV1 net{nullptr};
};

SsdFaceDetector::SsdFaceDetector(const SsdOptions& o) : impl_(std::make_unique<Impl>()) {
  require(o.min_score > 0 && o.min_score < 1, "ssd detector: min score must be in (0, 1), got {}", o.min_score);
  require(o.iou > 0 && o.iou <= 1, "ssd detector: iou must be in (0, 1], got {}", o.iou);
  require(o.max_results > 0, "ssd detector: max results must be positive");
  require(o.scan == 0 || (o.scan >= 0.25 && o.scan <= 4), "ssd detector: scan must be 0 (off) or in [0.25, 4], got {}", o.scan);
  require(o.scan_max_pixels >= 0, "ssd detector: scan max pixels must be >= 0 (0: no limit)");
  impl_->options = o;
  if (impl_->options.model_dir.empty()) impl_->options.model_dir = default_ssd_model_dir();
  const fs::path manifest = impl_->options.model_dir / kManifest;
  require(fs::is_regular_file(manifest),
          "{}: SSD face detector weights not found. Run scripts/setup.sh (it installs the npm package "
          "@vladmandic/face-api into models/), or give --detector-weights DIR (the package's model/ folder), or "
          "use --detector hog",
          manifest.string());
  impl_->net = SsdMobileNetV1(io::read_tfjs_weights(manifest));
  impl_->net->eval();
}

SsdFaceDetector::~SsdFaceDetector() = default;
SsdFaceDetector::SsdFaceDetector(SsdFaceDetector&&) noexcept = default;

const SsdOptions& SsdFaceDetector::options() const { return impl_->options; }

std::vector<SsdFace> SsdFaceDetector::detect(const cv::Mat& image) const {
  require(!image.empty() && image.depth() == CV_8U, "detect: expected an 8-bit image");
  const SsdOptions& o = impl_->options;
  cv::Mat rgb;
  const int code = image.channels() == 1 ? cv::COLOR_GRAY2RGB : image.channels() == 4 ? cv::COLOR_BGRA2RGB : cv::COLOR_BGR2RGB;
  cv::cvtColor(image, rgb, code);
  std::vector<Candidate> candidates;
  torch::NoGradGuard no_grad;
  const double f = scan_factor(rgb.cols, rgb.rows, o);
  const SsdPasses passes = ssd_passes(rgb.cols, rgb.rows, f);
  if (passes.scan) scan(rgb, f, impl_->net, o.min_score, candidates);
  if (passes.whole) {
    const Window w{0, 0, std::max(rgb.cols, rgb.rows)};
    torch::Tensor x = torch::empty({1, 3, kSsdInputSize, kSsdInputSize});
    window_input(rgb, w, x.data_ptr<float>());
    const SsdRaw raw = impl_->net->forward(x);
    add_candidates(raw.boxes[0], raw.scores[0], o.min_score, 1, 1, w.side, 1, 1, candidates);  // boxes in the square's units
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) { return a.score > b.score; });
  std::vector<SsdFace> faces;
  for (const Candidate& c : candidates) {
    if (static_cast<int>(faces.size()) >= o.max_results) break;
    bool keep = true;
    for (const SsdFace& f : faces)
      if (iou(c.box, f.box) > o.iou) {
        keep = false;
        break;
      }
    if (keep && !flat(rgb, c.box)) faces.push_back({c.box, c.score});
  }
  return faces;
}

}  // namespace qface::deploy
