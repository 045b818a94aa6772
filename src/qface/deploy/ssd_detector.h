// The CNN face detector of the deployment path: face-api's SSD-MobileNetV1
// (ssd_mobilenet.h) with the reference's pre- and post-processing, plus
// tiling for faces too small for a whole-photo pass.
//
// Reference behaviour (face-api's SsdMobilenetv1.locateFaces): the photo is
// padded with black to a square at its bottom or right, resized to 512x512
// with TensorFlow's legacy bilinear rule (source = destination * in / out, no
// half-pixel offset), scaled to [-1, 1]; boxes with a face probability above
// min_score go through greedy non-maximum suppression (IoU > 0.5 suppresses,
// at most max_results), clipped to the square. One deliberate difference:
// face-api maps boxes back through the rounded size of the resized photo
// (e.g. 341 for 1280 of 1920), which stretches them by up to 0.15 %; here
// the exact scale is used.
//
// Tiling: a 512-pixel input sees a face of f pixels in a W-pixel photo at
// f * 512 / W pixels, and the network's smallest anchors are 51 pixels, so a
// 1920-wide frame hides faces under ~150 px from the whole-photo pass. With
// `tile` > 0 the photo is also cut into tile x tile windows (overlapping by
// `tile_overlap`), each resized to 512 and run in the same batch; a window's
// box that touches an edge shared with another window is dropped (the
// neighbour holds the whole face), and all boxes meet in one suppression.
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
  // Tiles: 0 is the reference (one whole-photo pass). Otherwise windows of
  // this many photo pixels, used when the photo's longer side exceeds it.
  int tile = 0;
  int tile_overlap = 160;           // at least the largest face a tile must hold whole
  // With tiles, a photo larger than this is first scaled down to it (tiles
  // and overlap then count scaled pixels), so the number of windows, and the
  // time and memory of one photo, stay bounded: 4 MP is ~16 windows of 512.
  int64_t tile_max_pixels = 4'000'000;
  int batch = 8;                    // windows per forward pass
};

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

// One square window of the photo (x, y, side in photo pixels) as the
// network's input: [3, 512, 512] RGB in [-1, 1], pixels outside the photo
// black, TensorFlow's legacy bilinear resize. Exposed for the tests.
struct Window {
  int x = 0, y = 0, side = 0;
  bool edge_left = true, edge_top = true, edge_right = true, edge_bottom = true;  // on the photo's border
};
void window_input(const cv::Mat& rgb, const Window& window, float* out);

// The scale detect() applies to a photo before tiling (1 when it fits
// tile_max_pixels, or when tiling is off).
double tile_scale(int width, int height, const SsdOptions& options);

// The windows detect() runs: the whole photo, then the tiles.
std::vector<Window> detection_windows(int width, int height, int tile, int overlap);

}  // namespace qface::deploy
