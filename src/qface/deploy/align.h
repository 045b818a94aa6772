// Face detection and alignment for deployment: dlib's HOG frontal face detector
// and 68-point shape predictor (Debian's libdlib-dev / libdlib-data), the 68
// points reduced to the usual five (eye centres, nose tip, mouth corners;
// docs/method.md, Alignment), then data/alignment.h's similarity onto the
// 112x112 template and the warped crop. Also the IJB `*_name_5pts_score.txt`
// reader and the `qface align` job.
#pragma once

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <array>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "qface/data/alignment.h"
#include "qface/deploy/ssd_detector.h"

namespace qface::deploy {

using data::Points5;

// iBUG 68 points -> the five points as MTCNN places them: eye centres (pupils),
// nose tip, mouth corners (docs/method.md, Alignment: the eye correction).
Points5 five_from_68(const std::array<cv::Point2d, 68>& points);

struct Face {
  cv::Rect box;        // detector box in image pixels
  double score = 0;    // detector confidence (SSD: face probability; HOG: SVM score)
  Points5 landmarks;   // in image pixels
};

// ssd (the default): face-api's CNN (small, blurred, turned faces; needs the
// npm package scripts/setup.sh installs); hog: dlib's frontal HOG (no extra
// files, for machines without the package).
enum class DetectorKind { kSsd, kHog };
DetectorKind parse_detector_kind(const std::string& name);
std::string detector_kind_name(DetectorKind kind);

struct DetectorOptions {
  DetectorKind kind = DetectorKind::kSsd;
  // HOG only:
  int upsample = 1;                     // image doublings before detection (HOG finds faces >= 80 px / 2^upsample)
  int64_t max_pixels = 1'000'000;       // larger photos are scaled down to this area for detection (0: never)
  // SSD only (model folder, score threshold, full-resolution scan):
  SsdOptions ssd;
  std::filesystem::path landmark_model; // empty: default_landmark_model()
};

// The box dlib's shape predictor expects for a face the SSD detector boxed.
// The predictor was trained on HOG's boxes (square, eyebrows to chin), the
// SSD's are WIDER FACE's (forehead and chin, taller than wide); a box in the
// wrong convention starts the landmark cascade off the face. The map is
// fitted on faces both detectors find (align.cpp says where).
cv::Rect2d hog_box_from_ssd(const cv::Rect2d& ssd);

// shape_predictor_68_face_landmarks.dat: $QFACE_DLIB_LANDMARKS, else
// /usr/share/dlib/ (libdlib-data). A .bz2 file (the upstream download) is an
// error that says to run `bunzip2` on it first.
std::filesystem::path default_landmark_model();

// dlib detector + landmark model. Thread-safe: detect() may be called from
// several threads (the detector's scratch state is guarded by a mutex).
class FaceDetector {
 public:
  explicit FaceDetector(const DetectorOptions& options = {});
  ~FaceDetector();
  FaceDetector(const FaceDetector&) = delete;
  FaceDetector& operator=(const FaceDetector&) = delete;

  // Faces of an 8-bit BGR (or gray) image, largest box first.
  std::vector<Face> detect(const cv::Mat& image) const;

  DetectorKind kind() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The largest image the CLI reads (pixels): 50 MP, well above any camera's.
inline constexpr int64_t kMaxImagePixels = 50'000'000;

// Reads an image file (JPEG, PNG, BMP or WebP, at most kMaxImagePixels);
// empty Mat, with a warning naming the file and the reason, when it cannot be
// read, decoded or is too large.
cv::Mat read_image(const std::filesystem::path& path);

// One line of an IJB `*_name_5pts_score.txt`: "image x1 y1 ... x5 y5 score".
struct LandmarkRecord {
  std::string image;
  Points5 points;
  double score = 0;
};
std::vector<LandmarkRecord> read_5pts(const std::filesystem::path& file);

// `qface align`.
struct AlignOptions {
  std::filesystem::path images;     // folder or list file (infer::list_images)
  std::filesystem::path out;
  std::filesystem::path landmarks;  // IJB 5-point file: align from it, no detection; names relative to `images`
  bool all = false;                 // every face instead of the largest
  data::CropLayout crop = data::CropLayout::k112x112;
  DetectorOptions detector;
};

struct AlignSummary {
  int64_t images = 0, crops = 0;
  std::vector<std::string> no_face, unreadable;
  nlohmann::json json;  // also written to out/summary.json
};

// The marker of `--all`'s crops, <stem>_face<k>.png: faces of one photo are
// different people, and list_labeled_images (enroll.h) refuses to file them
// under one identity.
inline constexpr std::string_view kFaceSuffix = "_face";

// Writes out/<stem>.png (largest face) or out/<stem>_face<k>.png (--all,
// largest first, k from 0) and out/summary.json; images without a face or
// unreadable ones are listed in the summary, not fatal.
AlignSummary run_align(const AlignOptions& options);

}  // namespace qface::deploy
