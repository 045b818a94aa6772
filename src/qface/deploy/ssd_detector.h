// The CNN face detector of the deployment path: face-api's SSD-MobileNetV1
// (ssd_mobilenet.h) with the reference's pre- and post-processing, plus a
// full-resolution scan for faces too small for a whole-photo pass.
//
// Reference behaviour (face-api's SsdMobilenetv1.locateFaces): the photo is
// padded with black to a square at its bottom or right, resized to 512x512
// with TensorFlow's legacy bilinear rule (source = destination * in / out, no
// half-pixel offset), scaled to [-1, 1]; boxes with a face probability above
// min_score go through greedy non-maximum suppression (IoU > 0.5 suppresses,
// at most max_results), clipped to the square. One deliberate difference:
// face-api maps boxes back through the rounded size of the resized photo
// (e.g. 341 for 1280 of 1920), which stretches them by up to 0.15 %; here
// the exact scale is used. Another: a box over flat pixels (kFlatBoxStd) is
// dropped, since face-api scores a plain wall as a face.
//
// Scan: a 512-pixel input sees a face of f pixels in a W-pixel photo at
// f * 512 / W pixels, and the network's smallest anchors are 51 pixels, so a
// 1920-wide frame hides faces under ~150 px from the whole-photo pass. The
// network is convolutional, so the photo itself (resized by `scan`) can go
// through it at full resolution, its anchors laid on the larger grid
// (SsdMobileNetV1::grid_anchors): the same as a 512 window slid in 16-pixel
// steps, with no window edges and no overlap computed twice. The scan's
// largest anchors are ~500 pixels, so a photo whose shorter side is longer
// than 512 scan pixels also gets the whole-photo pass for its largest faces
// (ssd_passes); both passes' boxes meet in one suppression.
#pragma once

#include <opencv2/core.hpp>

#include <filesystem>
#include <memory>
#include <vector>

namespace qface::deploy {

struct SsdOptions {
  std::filesystem::path model_dir;  // holds ssd_mobilenetv1_model-weights_manifest.json; empty: default_ssd_model_dir()
  double min_score = 0.5;           // face-api's minConfidence default
  int max_results = 100;            // face-api's maxResults default
  double iou = 0.5;                 // face-api's suppression threshold
  // The scan: the photo resized by this factor goes through the network at
  // that resolution, so a face of f photo pixels is seen at f * scan pixels.
  // The network finds synthetic faces best at ~55-80 of its pixels (bench
  // detect), so 1.25 keeps both 48- and 64-pixel faces there; 2 is the
  // small-face setting (32 px, ~2.7x the time). 0: face-api's reference,
  // one whole-photo pass only.
  double scan = 1.25;
  // A scan over this many pixels runs at the factor that fits it, so the
  // time and memory of one photo stay bounded: a 1920x1080 frame at 1.25 is
  // 3.2 MP, ~0.35 s and 1.1 GB peak on 2 threads; 4 MP is a 12-MP photo at
  // 0.58 (0: no limit).
  int64_t scan_max_pixels = 4'000'000;
};

// Boxes whose pixels vary by less than this (standard deviation in grey
// levels, per channel) are not faces, whatever the network scores.
inline constexpr double kFlatBoxStd = 2.0;

struct SsdFace {
  cv::Rect2d box;  // photo pixels
  double score = 0;
};

// $QFACE_DETECTOR_WEIGHTS, else the model folder of the npm package
// @vladmandic/face-api that scripts/setup.sh installs into models/.
std::filesystem::path default_ssd_model_dir();

class SsdFaceDetector {
 public:
  // Throws qface::Error naming the folder and what to install when the model
  // is missing, and naming the file and entry when it is malformed.
  explicit SsdFaceDetector(const SsdOptions& options = {});
  ~SsdFaceDetector();
  SsdFaceDetector(SsdFaceDetector&&) noexcept;

  // Faces of an 8-bit BGR, BGRA or gray photo, highest score first.
  std::vector<SsdFace> detect(const cv::Mat& image) const;

  const SsdOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The network's input for a square window of the photo (x, y, side in photo
// pixels; face-api's whole-photo pass is {0, 0, max(width, height)}):
// [3, 512, 512] RGB in [-1, 1], pixels outside the photo black, TensorFlow's
// legacy bilinear resize. Exposed for the tests.
struct Window {
  int x = 0, y = 0, side = 0;
};
void window_input(const cv::Mat& rgb, const Window& window, float* out);

// The factor detect() scans a photo at: options.scan, lowered to fit
// scan_max_pixels (0 when scanning is off).
double scan_factor(int width, int height, const SsdOptions& options);

// The passes detect() runs on a photo scanned at factor f (scan_factor):
// without a scan, the whole-photo pass alone; with one, the whole-photo pass
// alone too when it sees the photo larger than the scan would (its longer
// side under 512 scan pixels: the 512 input enlarges it more), else the scan,
// plus the whole-photo pass when the photo's largest face may outgrow the
// scan's ~500-px anchors (its shorter side over 512 scan pixels).
struct SsdPasses {
  bool whole = true, scan = false;
};
SsdPasses ssd_passes(int width, int height, double scan_factor);

}  // namespace qface::deploy
