// The one five-point template (docs/method.md, Alignment: insightface
// arcface_dst) and the least-squares similarity onto it.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <cmath>

#include "qface/core/error.h"
#include "qface/data/alignment.h"

using namespace qface::data;

namespace {

double max_error(const Points5& a, const Points5& b) {
  double e = 0;
  for (std::size_t i = 0; i < 5; ++i) e = std::max(e, cv::norm(a[i] - b[i]));
  return e;
}

}  // namespace

TEST(DataAlignment, TemplateIsArcfaceDst) {
  // Pinned to docs/method.md, Alignment; the 96x112 layout (SphereFace/CosFace) is the same points
  // 8 px left.
  const double want[5][2] = {{38.2946, 51.6963}, {73.5318, 51.5014}, {56.0252, 71.7366},
                             {41.5493, 92.3655}, {70.7299, 92.2041}};
  const Points5& t = face_template();
  const Points5& t96 = face_template(CropLayout::k96x112);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_DOUBLE_EQ(t[i].x, want[i][0]);
    EXPECT_DOUBLE_EQ(t[i].y, want[i][1]);
    EXPECT_DOUBLE_EQ(t96[i].x, want[i][0] - 8);
    EXPECT_DOUBLE_EQ(t96[i].y, want[i][1]);
  }
  EXPECT_EQ(&face_template(), &face_template(CropLayout::k112x112));
  EXPECT_EQ(crop_size(CropLayout::k112x112), cv::Size(112, 112));
  EXPECT_EQ(crop_size(CropLayout::k96x112), cv::Size(96, 112));
  EXPECT_EQ(parse_crop_layout("96x112"), CropLayout::k96x112);
  EXPECT_THROW(parse_crop_layout("112"), qface::Error);
}

TEST(DataAlignment, TemplateOntoItselfIsTheIdentity) {
  const cv::Matx23d m = similarity_transform(face_template(), face_template());
  const cv::Matx23d eye(1, 0, 0, 0, 1, 0);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(m(r, c), eye(r, c), 1e-12) << r << "," << c;
}

TEST(DataAlignment, RecoversAKnownSimilarityAndIsLeastSquares) {
  const Points5& t = face_template();
  const double a = 0.7, sc = 2.3;
  const cv::Matx23d S(sc * std::cos(a), -sc * std::sin(a), 140, sc * std::sin(a), sc * std::cos(a), -35);
  const Points5 src = transform_points(S, t);
  EXPECT_LT(max_error(transform_points(similarity_transform(src), src), t), 1e-9);

  // With noise, the closed form is the least-squares optimum: no small change
  // of the four parameters lowers the squared error.
  Points5 noisy = src;
  const double jitter[5][2] = {{1.5, -2}, {-1, 0.5}, {2.5, 1}, {-0.5, -1.5}, {0.3, 2}};
  for (std::size_t i = 0; i < 5; ++i) noisy[i] += cv::Point2d(jitter[i][0], jitter[i][1]);
  const cv::Matx23d m = similarity_transform(noisy);
  auto sse = [&](double ca, double sa, double tx, double ty) {
    double e = 0;
    for (std::size_t i = 0; i < 5; ++i) {
      const cv::Point2d q(ca * noisy[i].x - sa * noisy[i].y + tx, sa * noisy[i].x + ca * noisy[i].y + ty);
      e += (q - t[i]).dot(q - t[i]);
    }
    return e;
  };
  const double best = sse(m(0, 0), m(1, 0), m(0, 2), m(1, 2));
  const double h[4] = {1e-4, 1e-4, 1e-2, 1e-2};
  for (int k = 0; k < 4; ++k)
    for (double sgn : {-1.0, 1.0}) {
      double p[4] = {m(0, 0), m(1, 0), m(0, 2), m(1, 2)};
      p[k] += sgn * h[k];
      EXPECT_GT(sse(p[0], p[1], p[2], p[3]), best) << "parameter " << k;
    }
  EXPECT_NEAR(m(0, 0), m(1, 1), 1e-12);  // a similarity: no shear, no reflection
  EXPECT_NEAR(m(0, 1), -m(1, 0), 1e-12);
}

TEST(DataAlignment, WarpPutsDrawnLandmarksOnTheTemplateOfEachLayout) {
  const cv::Matx23d S(1.9 * std::cos(0.4), -1.9 * std::sin(0.4), 90, 1.9 * std::sin(0.4), 1.9 * std::cos(0.4), 20);
  for (CropLayout layout : {CropLayout::k112x112, CropLayout::k96x112}) {
    const Points5 warped = transform_points(S, face_template());
    cv::Mat img(360, 360, CV_8UC1, cv::Scalar::all(0));
    for (const auto& p : warped)
      cv::circle(img, cv::Point(cvRound(p.x * 16), cvRound(p.y * 16)), 4 * 16, {255}, cv::FILLED, cv::LINE_AA, 4);
    const cv::Mat crop = warp_face(img, warped, layout);
    ASSERT_EQ(crop.size(), crop_size(layout));
    for (const auto& p : face_template(layout)) {
      const cv::Rect win(cvRound(p.x) - 5, cvRound(p.y) - 5, 11, 11);
      const cv::Moments mo = cv::moments(crop(win));
      ASSERT_GT(mo.m00, 0);
      EXPECT_LT(cv::norm(cv::Point2d(win.x + mo.m10 / mo.m00, win.y + mo.m01 / mo.m00) - p), 0.5)
          << crop_layout_name(layout) << " " << p;
    }
  }
}

TEST(DataAlignment, CoincidentLandmarksAreAnError) {
  Points5 same;
  same.fill(cv::Point2d(10, 10));
  EXPECT_THROW(similarity_transform(same), qface::Error);
}
