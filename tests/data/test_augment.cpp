// AdaFace augmentations (docs/method.md, Training recipe): each step against
// its definition, the probabilities, and determinism from the seed.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>
#include <set>

#include "qface/data/augment.h"

using namespace qface::data;

namespace {
cv::Mat random_image(int h, int w, uint64_t seed) {
  Rng rng(seed);
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w * 3; ++x) m.ptr<uchar>(y)[x] = static_cast<uchar>(1 + uniform_int(rng, 255));
  return m;
}
bool same(const cv::Mat& a, const cv::Mat& b) { return a.size() == b.size() && cv::norm(a, b, cv::NORM_INF) == 0; }
}  // namespace

TEST(Augment, CropBoxFollowsRandomResizedCrop) {
  AugmentOptions o;
  Rng rng(1);
  int fallback = 0;
  for (int k = 0; k < 3000; ++k) {
    CropBox b = random_resized_crop_box(112, 112, o, rng);
    ASSERT_GT(b.h, 0);
    ASSERT_GT(b.w, 0);
    ASSERT_GE(b.i, 0);
    ASSERT_GE(b.j, 0);
    ASSERT_LE(b.i + b.h, 112);
    ASSERT_LE(b.j + b.w, 112);
    if (b.h == 112 && b.w == 112) {
      ++fallback;
      continue;
    }
    const double area = b.h * b.w / (112.0 * 112.0), ratio = static_cast<double>(b.w) / b.h;
    // Rounding of w and h to integers moves area and ratio slightly.
    EXPECT_GE(area, 0.2 - 0.02);
    EXPECT_LE(area, 1.0 + 0.02);
    EXPECT_GE(ratio, 0.75 - 0.03);
    EXPECT_LE(ratio, 4.0 / 3 + 0.03);
  }
  EXPECT_LT(fallback, 30);  // a whole-image crop is rare
  // A very wide image falls back to the central crop of ratio 4/3.
  AugmentOptions big;
  big.crop_scale_min = big.crop_scale_max = 1.0;
  CropBox c = random_resized_crop_box(10, 100, big, rng);
  EXPECT_EQ(c.h, 10);
  EXPECT_EQ(c.w, 13);
  EXPECT_EQ(c.j, (100 - 13) / 2);
}

TEST(Augment, PasteCropKeepsTheBoxInABlackCanvas) {
  cv::Mat img = random_image(112, 112, 2), orig = img.clone();
  CropBox b{10, 20, 50, 40};
  paste_crop(img, b);
  for (int y = 0; y < 112; ++y)
    for (int x = 0; x < 112; ++x) {
      const bool inside = y >= 10 && y < 60 && x >= 20 && x < 60;
      const cv::Vec3b p = img.at<cv::Vec3b>(y, x);
      if (inside) ASSERT_EQ(p, orig.at<cv::Vec3b>(y, x));
      else ASSERT_EQ(p, cv::Vec3b(0, 0, 0));
    }
}

TEST(Augment, LowResolutionDownAndUp) {
  cv::Mat img = random_image(112, 112, 3), orig = img.clone();
  low_resolution(img, 1.0, cv::INTER_NEAREST, cv::INTER_NEAREST);
  EXPECT_TRUE(same(img, orig));
  // r = 0.5, nearest both ways: 56x56 then each pixel doubled, so 2x2 blocks are constant.
  low_resolution(img, 0.5, cv::INTER_NEAREST, cv::INTER_NEAREST);
  EXPECT_EQ(img.size(), cv::Size(112, 112));
  for (int y = 0; y < 112; y += 2)
    for (int x = 0; x < 112; x += 2) {
      ASSERT_EQ(img.at<cv::Vec3b>(y, x), img.at<cv::Vec3b>(y + 1, x + 1));
      ASSERT_EQ(img.at<cv::Vec3b>(y, x), img.at<cv::Vec3b>(y, x + 1));
    }
  EXPECT_FALSE(same(img, orig));
  // int(0.3 * 112) = 33: area down then nearest up matches doing it by hand.
  cv::Mat a = orig.clone(), small, back;
  low_resolution(a, 0.3, cv::INTER_AREA, cv::INTER_NEAREST);
  cv::resize(orig, small, cv::Size(33, 33), 0, 0, cv::INTER_AREA);
  cv::resize(small, back, cv::Size(112, 112), 0, 0, cv::INTER_NEAREST);
  EXPECT_TRUE(same(a, back));
}

TEST(Augment, PhotometricMatchesTorchvisionFormulas) {
  cv::Mat img(2, 2, CV_8UC3, cv::Scalar(100, 40, 200));
  img.at<cv::Vec3b>(1, 1) = cv::Vec3b(200, 250, 10);
  cv::Mat b = img.clone();
  adjust_brightness(b, 1.5);
  EXPECT_EQ(b.at<cv::Vec3b>(0, 0), cv::Vec3b(150, 60, 255));  // 300 saturates
  EXPECT_EQ(b.at<cv::Vec3b>(1, 1), cv::Vec3b(255, 255, 15));
  // Contrast 0.5 blends with the rounded mean gray level.
  auto gray_of = [](cv::Vec3b p) { return 0.114 * p[0] + 0.587 * p[1] + 0.299 * p[2]; };
  const double g0 = gray_of(img.at<cv::Vec3b>(0, 0)), g1 = gray_of(img.at<cv::Vec3b>(1, 1));
  const double mean = std::floor((3 * std::round(g0) + std::round(g1)) / 4 + 0.5);
  cv::Mat c = img.clone();
  adjust_contrast(c, 0.5);
  for (int ch = 0; ch < 3; ++ch)
    EXPECT_NEAR(c.at<cv::Vec3b>(0, 0)[ch], 0.5 * img.at<cv::Vec3b>(0, 0)[ch] + 0.5 * mean, 0.51);
  // Saturation 0 is the gray image; saturation on a gray image changes nothing.
  cv::Mat s = img.clone();
  adjust_saturation(s, 0.0);
  for (int ch = 0; ch < 3; ++ch) EXPECT_NEAR(s.at<cv::Vec3b>(0, 0)[ch], g0, 1.0);
  cv::Mat gray(4, 4, CV_8UC3, cv::Scalar(90, 90, 90)), g2 = gray.clone();
  adjust_saturation(g2, 1.4);
  EXPECT_TRUE(same(gray, g2));
}

TEST(Augment, EachStepHasItsOwnProbabilityAndSeedDeterminesAll) {
  const cv::Mat base = random_image(24, 24, 4);
  AugmentOptions o;
  int crop = 0, low = 0, photo = 0, flip = 0;
  std::set<int> down, up;
  const int n = 4000;
  for (int k = 0; k < n; ++k) {
    cv::Mat img = base.clone();
    Rng rng(mix_seed({7, static_cast<uint64_t>(k)}));
    AugmentTrace t;
    augment_face(img, o, rng, &t);
    crop += t.crop;
    low += t.low_res;
    photo += t.photometric;
    flip += t.flip;
    if (t.low_res) {
      ASSERT_GE(t.low_res_ratio, 0.2);
      ASSERT_LT(t.low_res_ratio, 1.0);
      down.insert(t.interp_down);
      up.insert(t.interp_up);
    }
    if (t.photometric) {
      ASSERT_GE(t.brightness, 0.5);
      ASSERT_LT(t.saturation, 1.5);
    }
  }
  // Binomial(4000, 0.2): sd 25; (4000, 0.5): sd 32.
  EXPECT_NEAR(crop, 0.2 * n, 120);
  EXPECT_NEAR(low, 0.2 * n, 120);
  EXPECT_NEAR(photo, 0.2 * n, 120);
  EXPECT_NEAR(flip, 0.5 * n, 150);
  EXPECT_EQ(down.size(), 5u);
  EXPECT_EQ(up.size(), 5u);
  // Same seed, same result; none() is the identity.
  cv::Mat a = base.clone(), b = base.clone(), c = base.clone();
  Rng r1(99), r2(99), r3(99);
  AugmentOptions all;
  all.crop_prob = all.low_res_prob = all.photometric_prob = 1.0;
  augment_face(a, all, r1);
  augment_face(b, all, r2);
  EXPECT_TRUE(same(a, b));
  EXPECT_FALSE(same(a, base));
  augment_face(c, AugmentOptions::none(), r3);
  EXPECT_TRUE(same(c, base));
  // Flip only: exactly the mirror image when it fires.
  AugmentOptions fo = AugmentOptions::flip_only();
  fo.flip_prob = 1.0;
  cv::Mat f = base.clone(), mirrored;
  augment_face(f, fo, r3);
  cv::flip(base, mirrored, 1);
  EXPECT_TRUE(same(f, mirrored));
}
