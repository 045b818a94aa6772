#include "qface/data/augment.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

namespace qface::data {

double uniform01(Rng& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

double uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * uniform01(rng); }

uint64_t uniform_int(Rng& rng, uint64_t n) {
  if (n <= 1) return 0;
  // Rejection sampling: unbiased and portable.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = rng();
  while (x >= limit);
  return x % n;
}

uint64_t mix_seed(std::initializer_list<uint64_t> words) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (uint64_t w : words) {
    h ^= w + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    uint64_t z = (h += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    h = z ^ (z >> 31);
  }
  return h;
}

CropBox random_resized_crop_box(int height, int width, const AugmentOptions& o, Rng& rng) {
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(o.crop_ratio_min), log_hi = std::log(o.crop_ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * uniform(rng, o.crop_scale_min, o.crop_scale_max);
    const double aspect = std::exp(uniform(rng, log_lo, log_hi));
    const int w = static_cast<int>(std::lround(std::sqrt(target_area * aspect)));
    const int h = static_cast<int>(std::lround(std::sqrt(target_area / aspect)));
    if (0 < w && w <= width && 0 < h && h <= height) {
      CropBox b;
      b.h = h;
      b.w = w;
      b.i = static_cast<int>(uniform_int(rng, static_cast<uint64_t>(height - h + 1)));
      b.j = static_cast<int>(uniform_int(rng, static_cast<uint64_t>(width - w + 1)));
      return b;
    }
  }
  // Central fallback.
  CropBox b;
  const double in_ratio = static_cast<double>(width) / height;
  if (in_ratio < o.crop_ratio_min) {
    b.w = width;
    b.h = static_cast<int>(std::lround(b.w / o.crop_ratio_min));
  } else if (in_ratio > o.crop_ratio_max) {
    b.h = height;
    b.w = static_cast<int>(std::lround(b.h * o.crop_ratio_max));
  } else {
    b.w = width;
    b.h = height;
  }
  b.i = (height - b.h) / 2;
  b.j = (width - b.w) / 2;
  return b;
}

void paste_crop(cv::Mat& img, const CropBox& b) {
  const cv::Rect keep(b.j, b.i, b.w, b.h);
  cv::Mat out = cv::Mat::zeros(img.size(), img.type());
  img(keep).copyTo(out(keep));
  img = out;
}

void low_resolution(cv::Mat& img, double ratio, int interp_down, int interp_up) {
  const int side = std::max(1, static_cast<int>(ratio * img.rows));
  cv::Mat small;
  cv::resize(img, small, cv::Size(side, side), 0, 0, interp_down);
  cv::resize(small, img, img.size(), 0, 0, interp_up);
}

void adjust_brightness(cv::Mat& img, double factor) { img.convertTo(img, -1, factor, 0); }

void adjust_contrast(cv::Mat& img, double factor) {
  cv::Mat gray;
  cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
  const double mean = std::floor(cv::mean(gray)[0] + 0.5);  // PIL: int(mean + 0.5)
  img.convertTo(img, -1, factor, mean * (1 - factor));
}

void adjust_saturation(cv::Mat& img, double factor) {
  cv::Mat gray, gray3;
  cv::cvtColor(img, gray, cv::COLOR_BGR2GRAY);
  cv::cvtColor(gray, gray3, cv::COLOR_GRAY2BGR);
  cv::addWeighted(img, factor, gray3, 1 - factor, 0, img);
}

void augment_face(cv::Mat& img, const AugmentOptions& o, Rng& rng, AugmentTrace* trace) {
  AugmentTrace t;
  if (o.crop_prob > 0 && uniform01(rng) < o.crop_prob) {
    t.crop = true;
    t.box = random_resized_crop_box(img.rows, img.cols, o, rng);
    paste_crop(img, t.box);
  }
  if (o.low_res_prob > 0 && uniform01(rng) < o.low_res_prob) {
    t.low_res = true;
    t.low_res_ratio = uniform(rng, o.low_res_min, o.low_res_max);
    t.interp_down = kLowResInterpolations[uniform_int(rng, kLowResInterpolations.size())];
    t.interp_up = kLowResInterpolations[uniform_int(rng, kLowResInterpolations.size())];
    low_resolution(img, t.low_res_ratio, t.interp_down, t.interp_up);
  }
  if (o.photometric_prob > 0 && uniform01(rng) < o.photometric_prob) {
    t.photometric = true;
    // ColorJitter.get_params: a random order of the transforms, then the factors.
    t.order = {0, 1, 2};
    for (int k = 2; k > 0; --k) std::swap(t.order[k], t.order[uniform_int(rng, static_cast<uint64_t>(k + 1))]);
    t.brightness = uniform(rng, std::max(0.0, 1 - o.brightness), 1 + o.brightness);
    t.contrast = uniform(rng, std::max(0.0, 1 - o.contrast), 1 + o.contrast);
    t.saturation = uniform(rng, std::max(0.0, 1 - o.saturation), 1 + o.saturation);
    for (int fn : t.order) {
      if (fn == 0 && o.brightness > 0) adjust_brightness(img, t.brightness);
      if (fn == 1 && o.contrast > 0) adjust_contrast(img, t.contrast);
      if (fn == 2 && o.saturation > 0) adjust_saturation(img, t.saturation);
    }
  }
  if (o.flip_prob > 0 && uniform01(rng) < o.flip_prob) {
    t.flip = true;
    cv::flip(img, img, 1);
  }
  if (trace) *trace = t;
}

}  // namespace qface::data
