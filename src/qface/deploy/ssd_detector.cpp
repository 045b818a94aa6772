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

double tile_scale(int width, int height, const SsdOptions& o) {
  const double area = static_cast<double>(width) * height;
  if (o.tile <= 0 || o.tile_max_pixels <= 0 || area <= static_cast<double>(o.tile_max_pixels)) return 1.0;
  return std::sqrt(static_cast<double>(o.tile_max_pixels) / area);
}

std::vector<Window> detection_windows(int width, int height, int tile, int overlap) {
  std::vector<Window> out{{0, 0, std::max(width, height)}};
  if (tile <= 0 || std::max(width, height) <= tile) return out;
  const int step = std::max(tile - overlap, tile / 4);
  auto starts = [&](int extent) {
    std::vector<int> s{0};
    while (s.back() + tile < extent) s.push_back(std::min(s.back() + step, extent - tile));
    return s;
  };
  for (int y : starts(height))
    for (int x : starts(width))
      out.push_back({x, y, tile, x == 0, y == 0, x + tile >= width, y + tile >= height});
  return out;
}

struct SsdFaceDetector::Impl {
  SsdOptions options;
  SsdMobileNetV1 net{nullptr};
};

SsdFaceDetector::SsdFaceDetector(const SsdOptions& o) : impl_(std::make_unique<Impl>()) {
  require(o.min_score > 0 && o.min_score < 1, "ssd detector: min score must be in (0, 1), got {}", o.min_score);
  require(o.iou > 0 && o.iou <= 1, "ssd detector: iou must be in (0, 1], got {}", o.iou);
  require(o.max_results > 0, "ssd detector: max results must be positive");
  require(o.tile == 0 || o.tile >= 128, "ssd detector: tile must be 0 (off) or at least 128 pixels, got {}", o.tile);
  require(o.tile_overlap >= 0 && (o.tile == 0 || o.tile_overlap < o.tile),
          "ssd detector: tile overlap must be in [0, tile), got {}", o.tile_overlap);
  require(o.batch > 0, "ssd detector: batch must be positive");
  require(o.tile_max_pixels >= 0, "ssd detector: tile max pixels must be >= 0 (0: no limit)");
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
  // A huge photo is scaled down before tiling (boxes are scaled back below);
  // the whole-photo pass reads the same pixels either way up to resampling.
  const double scale = tile_scale(rgb.cols, rgb.rows, o);
  if (scale < 1) cv::resize(rgb, rgb, cv::Size(), scale, scale, cv::INTER_AREA);
  const std::vector<Window> windows = detection_windows(rgb.cols, rgb.rows, o.tile, o.tile_overlap);
  const int64_t n = kSsdInputSize;
  struct Candidate {
    cv::Rect2d box;
    double score;
  };
  std::vector<Candidate> candidates;
  torch::NoGradGuard no_grad;
  for (std::size_t first = 0; first < windows.size(); first += static_cast<std::size_t>(o.batch)) {
    const std::size_t count = std::min(windows.size() - first, static_cast<std::size_t>(o.batch));
    torch::Tensor x = torch::empty({static_cast<int64_t>(count), 3, n, n});
    for (std::size_t k = 0; k < count; ++k) window_input(rgb, windows[first + k], x[static_cast<int64_t>(k)].data_ptr<float>());
    const SsdRaw raw = impl_->net->forward(x);
    const torch::Tensor boxes = raw.boxes.contiguous(), scores = raw.scores.contiguous();
    for (std::size_t k = 0; k < count; ++k) {
      const Window& w = windows[first + k];
      const float* b = boxes[static_cast<int64_t>(k)].data_ptr<float>();
      const float* s = scores[static_cast<int64_t>(k)].data_ptr<float>();
      const double margin = 0.01 * w.side;
      for (int64_t a = 0; a < kSsdAnchors; ++a) {
        if (s[a] <= o.min_score) continue;
        // Clipped to the window as the reference clips to its square.
        const double y0 = std::max(0.f, b[4 * a]) * w.side + w.y, x0 = std::max(0.f, b[4 * a + 1]) * w.side + w.x;
        const double y1 = std::min(1.f, b[4 * a + 2]) * w.side + w.y, x1 = std::min(1.f, b[4 * a + 3]) * w.side + w.x;
        if ((!w.edge_left && x0 <= w.x + margin) || (!w.edge_top && y0 <= w.y + margin) ||
            (!w.edge_right && x1 >= w.x + w.side - margin) || (!w.edge_bottom && y1 >= w.y + w.side - margin))
          continue;  // cut by a tile edge: a neighbouring window holds the whole face
        candidates.push_back({cv::Rect2d(x0 / scale, y0 / scale, (x1 - x0) / scale, (y1 - y0) / scale), s[a]});
      }
    }
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
    if (keep) faces.push_back({c.box, c.score});
  }
  return faces;
}

}  // namespace qface::deploy
