#include "qface/data/alignment.h"

#include <opencv2/imgproc.hpp>

#include "qface/core/error.h"

namespace qface::data {

const Points5& face_template() { return face_template(CropLayout::k112x112); }

const Points5& face_template(CropLayout layout) {
  // insightface arcface_dst (docs/method.md, Alignment).
  static const Points5 t112 = {cv::Point2d(38.2946, 51.6963), cv::Point2d(73.5318, 51.5014),
                               cv::Point2d(56.0252, 71.7366), cv::Point2d(41.5493, 92.3655),
                               cv::Point2d(70.7299, 92.2041)};
  static const Points5 t96 = [] {
    Points5 t = t112;
    for (auto& p : t) p.x -= 8.0;
    return t;
  }();
  return layout == CropLayout::k96x112 ? t96 : t112;
}

cv::Size crop_size(CropLayout layout) { return layout == CropLayout::k96x112 ? cv::Size(96, 112) : cv::Size(112, 112); }

CropLayout parse_crop_layout(const std::string& text) {
  if (text == "112x112") return CropLayout::k112x112;
  if (text == "96x112") return CropLayout::k96x112;
  fail("crop layout '{}': expected 112x112 (the official checkpoints' crops) or 96x112", text);
}

const char* crop_layout_name(CropLayout layout) { return layout == CropLayout::k96x112 ? "96x112" : "112x112"; }

// Umeyama (1991) for 2-D points, closed form: with centred points a_i, b_i,
// the rotation-scale is c = sum(a.b)/sum|a|^2, s = sum(a x b)/sum|a|^2. It is
// written here rather than called from dlib (find_similarity_transform, the
// same estimator; the tests compare the two) because the synth renderer calls
// it for every image and the data area does not link dlib.
cv::Matx23d similarity_transform(const Points5& src, const Points5& dst) {
  cv::Point2d ms(0, 0), md(0, 0);
  for (std::size_t i = 0; i < 5; ++i) {
    ms += src[i];
    md += dst[i];
  }
  ms *= 0.2;
  md *= 0.2;
  double sxx = 0, dot = 0, cross = 0;
  for (std::size_t i = 0; i < 5; ++i) {
    const cv::Point2d a = src[i] - ms, b = dst[i] - md;
    sxx += a.dot(a);
    dot += a.dot(b);
    cross += a.x * b.y - a.y * b.x;
  }
  require(sxx > 1e-12, "alignment: the five landmarks coincide");
  const double ca = dot / sxx, sa = cross / sxx;
  return cv::Matx23d(ca, -sa, md.x - (ca * ms.x - sa * ms.y), sa, ca, md.y - (sa * ms.x + ca * ms.y));
}

Points5 transform_points(const cv::Matx23d& m, const Points5& p) {
  Points5 r;
  for (std::size_t i = 0; i < 5; ++i)
    r[i] = cv::Point2d(m(0, 0) * p[i].x + m(0, 1) * p[i].y + m(0, 2), m(1, 0) * p[i].x + m(1, 1) * p[i].y + m(1, 2));
  return r;
}

cv::Mat warp_face(const cv::Mat& image, const Points5& landmarks, CropLayout layout) {
  cv::Mat crop;
  cv::warpAffine(image, crop, cv::Mat(similarity_transform(landmarks, face_template(layout))), crop_size(layout),
                 cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  return crop;
}

}  // namespace qface::data
