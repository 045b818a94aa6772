// The AdaFace training augmentations (docs/method.md, Training recipe;
// AdaFace's augmenter.py), on 8-bit BGR images, each applied with its own
// probability, in this order:
//   1. crop (p 0.2): torchvision RandomResizedCrop.get_params with scale
//      (0.2, 1) and ratio (3/4, 4/3); the crop stays at its place in a black
//      canvas of the original size (no resize);
//   2. low resolution (p 0.2): r ~ U(0.2, 1), resize to int(r * H) square and
//      back to H x W, each way with an interpolation drawn among nearest,
//      linear, area, cubic, lanczos4;
//   3. photometric (p 0.2): ColorJitter(brightness 0.5, contrast 0.5,
//      saturation 0.5, hue 0): factors ~ U(0.5, 1.5), applied in a random order;
//   4. horizontal flip (p 0.5; in the reference it is the dataset transform).
// Grayscale for contrast/saturation uses the ITU-R 601 weights (as PIL's "L")
// on the true colour channels. (The reference swaps to BGR before augmenting,
// so its PIL code weights blue as red; qface keeps the intended weights.)
// Randomness comes from a caller-seeded Rng, so a sample's augmentation is a
// pure function of its seed: reproducible regardless of threads.
#pragma once

#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <random>

namespace qface::data {

using Rng = std::mt19937_64;

// Uniform double in [0, 1) with 53 random bits (portable across standard libraries).
double uniform01(Rng& rng);
double uniform(Rng& rng, double lo, double hi);
// Uniform integer in [0, n).
uint64_t uniform_int(Rng& rng, uint64_t n);
// SplitMix64 of a sequence of words: seeds for (seed, epoch, index, ...).
uint64_t mix_seed(std::initializer_list<uint64_t> words);

struct AugmentOptions {
  double crop_prob = 0.2;
  double crop_scale_min = 0.2, crop_scale_max = 1.0;
  double crop_ratio_min = 3.0 / 4.0, crop_ratio_max = 4.0 / 3.0;
  double low_res_prob = 0.2;
  double low_res_min = 0.2, low_res_max = 1.0;
  double photometric_prob = 0.2;
  double brightness = 0.5, contrast = 0.5, saturation = 0.5;
  double flip_prob = 0.5;

  static AugmentOptions adaface() { return {}; }
  // MagFace / arcface_torch recipes: horizontal flip only.
  static AugmentOptions flip_only() {
    AugmentOptions o;
    o.crop_prob = o.low_res_prob = o.photometric_prob = 0;
    return o;
  }
  static AugmentOptions none() {
    AugmentOptions o = flip_only();
    o.flip_prob = 0;
    return o;
  }
};

// Rows [i, i+h), columns [j, j+w).
struct CropBox {
  int i = 0, j = 0, h = 0, w = 0;
};
// torchvision's RandomResizedCrop.get_params: 10 tries of area ~ U(scale) *
// H*W and log-uniform aspect ratio, then the central fallback.
CropBox random_resized_crop_box(int height, int width, const AugmentOptions& o, Rng& rng);
// Blacks out everything outside the box.
void paste_crop(cv::Mat& img, const CropBox& box);

// OpenCV interpolations the low-resolution step draws from.
inline constexpr std::array<int, 5> kLowResInterpolations = {0 /*NEAREST*/, 1 /*LINEAR*/, 3 /*AREA*/,
                                                             2 /*CUBIC*/, 4 /*LANCZOS4*/};
void low_resolution(cv::Mat& img, double ratio, int interp_down, int interp_up);

// torchvision/PIL semantics on 8-bit BGR: brightness blends with black,
// contrast with the mean gray level (rounded), saturation with the per-pixel gray.
void adjust_brightness(cv::Mat& img, double factor);
void adjust_contrast(cv::Mat& img, double factor);
void adjust_saturation(cv::Mat& img, double factor);

// What augment_face did (for tests and the preview).
struct AugmentTrace {
  bool crop = false, low_res = false, photometric = false, flip = false;
  CropBox box;
  double low_res_ratio = 1;
  int interp_down = -1, interp_up = -1;
  std::array<int, 3> order{};  // 0 brightness, 1 contrast, 2 saturation
  double brightness = 1, contrast = 1, saturation = 1;
};

// Applies the four augmentations in place (img: CV_8UC3, continuous).
void augment_face(cv::Mat& img, const AugmentOptions& options, Rng& rng, AugmentTrace* trace = nullptr);

}  // namespace qface::data
