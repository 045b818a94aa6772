// Five-point face alignment, the one implementation every 112x112 warp uses
// (`qface align`, IJB 5-point files, the synth renderer, the deployment
// pipeline): the template of docs/method.md, Alignment, a least-squares
// similarity transform onto it, and the warped crop.
//
// The template is insightface's `arcface_dst`, the points every official
// checkpoint (AdaFace, MagFace, insightface) was trained on; AdaFace's MTCNN
// `warp_and_crop_face(..., default_square=True)` produces the same crop. The
// 96x112 layout of SphereFace/CosFace is the same points 8 px to the left and
// is used only when a 96x112 crop is asked for.
#pragma once

#include <opencv2/core.hpp>

#include <array>
#include <string>

namespace qface::data {

// left eye, right eye, nose tip, left mouth corner, right mouth corner
// (image left / right), in pixels.
using Points5 = std::array<cv::Point2d, 5>;

enum class CropLayout {
  k112x112,  // arcface_dst (docs/method.md, Alignment): what the official checkpoints expect
  k96x112,   // SphereFace / CosFace crops: 96 wide, the 112 template - 8 in x
};

// The 112x112 template (docs/method.md, Alignment).
const Points5& face_template();
// The template of a crop layout, and the crop's size.
const Points5& face_template(CropLayout layout);
cv::Size crop_size(CropLayout layout);
// "112x112" / "96x112" <-> layout; throws qface::Error naming the accepted values.
CropLayout parse_crop_layout(const std::string& text);
const char* crop_layout_name(CropLayout layout);

// Least-squares similarity (rotation, uniform scale, translation; no
// reflection) mapping src onto dst: Umeyama's closed form in 2-D.
cv::Matx23d similarity_transform(const Points5& src, const Points5& dst = face_template());

Points5 transform_points(const cv::Matx23d& m, const Points5& p);

// The aligned crop of `image` whose face has `landmarks` (bilinear, black
// outside the image), 112x112 unless another layout is asked for.
cv::Mat warp_face(const cv::Mat& image, const Points5& landmarks, CropLayout layout = CropLayout::k112x112);

}  // namespace qface::data
