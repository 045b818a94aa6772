#include "qface/deploy/align.h"

#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_processing/shape_predictor.h>
#include <dlib/opencv/cv_image.h>
#include <spdlog/spdlog.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <optional>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/image.h"
#include "qface/core/text.h"
#include "qface/infer/embed.h"

namespace qface::deploy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// hog_box_from_ssd's map: HOG square centre = SSD centre + (dx * width,
// dy * height), side = side_w * width + side_h * height. Least squares over
// the 19 faces (186-268 px) of face-api's six demo photos that both
// detectors find (HOG at upsample 1 on the full photo): dy 0.082 (s.d.
// 0.043), side 0.440 w + 0.491 h (mean error 5.7 %); dx came out -0.038
// (standard error 0.022) and is set to 0, as a mirrored face must give the
// mirrored box. The check that matters is the landmarks' (docs/deployment.md,
// alignment parity with the SSD detector).
struct SsdToHog {
  double dx, dy, side_w, side_h;
};
constexpr SsdToHog kSsdToHog{0.0, 0.082, 0.440, 0.491};

// dlib's predictor reads pixel pairs at offsets that scale with the box,
// rounded to whole pixels, so on a face under ~60 px they collapse onto a
// few pixels. A small face's neighbourhood is first enlarged (bicubic) to
// this side, the points found there and mapped back.
constexpr double kLandmarkMinSide = 80;

std::array<cv::Point2d, 68> small_face_landmarks(const dlib::shape_predictor& predictor, const cv::Mat& gray,
                                                 const cv::Rect2d& box) {
  const double f = kLandmarkMinSide / std::max(box.width, 1.0);
  // The box and a margin of one box on each side, cut out (replicated at the
  // photo's border) and scaled by f: photo point p -> (p - origin) * f.
  const cv::Point2d origin(box.x - box.width, box.y - box.height);
  const cv::Matx23d a(f, 0, -origin.x * f, 0, f, -origin.y * f);
  const int side = static_cast<int>(std::ceil(3 * kLandmarkMinSide));
  cv::Mat big;
  cv::warpAffine(gray, big, a, cv::Size(side, side), cv::INTER_CUBIC, cv::BORDER_REPLICATE);
  const long lo = std::lround(kLandmarkMinSide), hi = std::lround(2 * kLandmarkMinSide) - 1;
  const dlib::full_object_detection s = predictor(dlib::cv_image<unsigned char>(big), dlib::rectangle(lo, lo, hi, hi));
  std::array<cv::Point2d, 68> pts;
  for (unsigned i = 0; i < 68; ++i) pts[i] = cv::Point2d(s.part(i).x() / f + origin.x, s.part(i).y() / f + origin.y);
  return pts;
}

}  // namespace

fs::path default_landmark_model() {
  if (const char* env = std::getenv("QFACE_DLIB_LANDMARKS"); env && *env) return env;
  for (const char* p : {"/usr/share/dlib/shape_predictor_68_face_landmarks.dat",
                        "/usr/share/dlib/shape_predictor_68_face_landmarks.dat.bz2"})
    if (fs::exists(p)) return p;
  return "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
}

Points5 five_from_68(const std::array<cv::Point2d, 68>& p) {
  auto mean = [&](unsigned a, unsigned b) {
    cv::Point2d m(0, 0);
    for (unsigned i = a; i <= b; ++i) m += p[i];
    return m * (1.0 / (b - a + 1));
  };
  // The mean of the six eyelid points sits below the pupil, because the
  // lower lid's points hug the eyeball more closely than the upper lid's: on
  // 23 hand-marked real faces it was 0.9 px low in the 112x112 crop (same sign
  // on 96 % of them; an automatic iris-circle fit agrees). Moving it up by a
  // quarter of the lid opening ((upper lid mid - lower lid mid) / 4; fitted
  // 0.254, leave-one-out 0.238-0.262) removes the bias. The nose tip (30) and
  // the mouth corners (48, 54) showed no bias beyond the marking noise.
  // docs/alignment_parity.md has the measurement.
  auto eye = [&](unsigned a) {
    const cv::Point2d upper = (p[a + 1] + p[a + 2]) * 0.5, lower = (p[a + 4] + p[a + 5]) * 0.5;
    return mean(a, a + 5) + (upper - lower) * 0.25;
  };
  // iBUG 68: 36-41 image-left eye, 42-47 image-right eye, 30 nose tip, 48 / 54 mouth corners.
  return {eye(36), eye(42), p[30], p[48], p[54]};
}

DetectorKind parse_detector_kind(const std::string& name) {
  if (name == "ssd") return DetectorKind::kSsd;
  if (name == "hog") return DetectorKind::kHog;
  fail("unknown face detector '{}' (ssd, hog)", name);
}

std::string detector_kind_name(DetectorKind kind) { return kind == DetectorKind::kSsd ? "ssd" : "hog"; }

cv::Rect2d hog_box_from_ssd(const cv::Rect2d& b) {
  // HOG's box is a square; its centre and side from the SSD box's centre,
  // width and height: least squares over the faces both detectors find
  // (see kSsdToHog).
  const double cx = b.x + b.width / 2, cy = b.y + b.height / 2;
  const double side = kSsdToHog.side_w * b.width + kSsdToHog.side_h * b.height;
  return {cx + kSsdToHog.dx * b.width - side / 2, cy + kSsdToHog.dy * b.height - side / 2, side, side};
}

struct FaceDetector::Impl {
  DetectorOptions options;
  dlib::frontal_face_detector hog = dlib::get_frontal_face_detector();
  std::optional<SsdFaceDetector> ssd;
  dlib::shape_predictor predictor;
  std::mutex mutex;  // HOG's scanner keeps per-call scratch state

  // (box for the result, box for the shape predictor, score) in image pixels.
  struct Found {
    cv::Rect2d box, landmark_box;
    double score;
  };
  std::vector<Found> hog_faces(const cv::Mat& gray);
};

std::vector<FaceDetector::Impl::Found> FaceDetector::Impl::hog_faces(const cv::Mat& gray) {
  // HOG detection runs on the image scaled by 2^upsample, and large photos are
  // first brought down to about detect_max_pixels (a 40 MP photo would hold
  // every request behind the detector's lock for seconds); the landmarks are
  // then found on the full-resolution image.
  const double area = static_cast<double>(gray.rows) * gray.cols;
  const double shrink = options.max_pixels > 0 && area > static_cast<double>(options.max_pixels)
                            ? std::sqrt(static_cast<double>(options.max_pixels) / area)
                            : 1.0;
  const double scale = std::ldexp(1.0, options.upsample) * shrink;
  cv::Mat big = gray;
  if (scale != 1.0) cv::resize(gray, big, cv::Size(), scale, scale, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  std::vector<dlib::rect_detection> dets;
  {
    std::lock_guard lock(mutex);
    hog(dlib::cv_image<unsigned char>(big), dets);
  }
  std::vector<Found> out;
  for (const auto& d : dets) {
    // dlib's rectangles are inclusive: right + 1 is the edge.
    const cv::Rect2d r(d.rect.left() / scale, d.rect.top() / scale, (d.rect.right() + 1 - d.rect.left()) / scale,
                       (d.rect.bottom() + 1 - d.rect.top()) / scale);
    out.push_back({r, r, d.detection_confidence});
  }
  return out;
}

FaceDetector::FaceDetector(const DetectorOptions& o) : impl_(std::make_unique<Impl>()) {
  impl_->options = o;
  require(o.upsample >= 0 && o.upsample <= 3, "detector: upsample must be 0..3, got {}", o.upsample);
  const fs::path model = o.landmark_model.empty() ? default_landmark_model() : o.landmark_model;
  require(model.extension() != ".bz2", "{}: compressed landmark model; run `bunzip2 -k {}` and pass the .dat",
          model.string(), model.string());
  require(fs::is_regular_file(model), "{}: dlib 68-point landmark model not found (Debian package libdlib-data, "
          "or set QFACE_DLIB_LANDMARKS / --landmark-model)", model.string());
  try {
    dlib::deserialize(model.string()) >> impl_->predictor;
  } catch (const std::exception& e) {
    fail("{}: not a dlib shape predictor: {}", model.string(), e.what());
  }
  require(impl_->predictor.num_parts() == 68, "{}: expected the 68-point model, it has {} points", model.string(),
          impl_->predictor.num_parts());
  if (o.kind == DetectorKind::kSsd) impl_->ssd.emplace(o.ssd);
}

FaceDetector::~FaceDetector() = default;

DetectorKind FaceDetector::kind() const { return impl_->options.kind; }

std::vector<Face> FaceDetector::detect(const cv::Mat& image) const {
  require(!image.empty() && image.depth() == CV_8U, "detect: expected an 8-bit image");
  cv::Mat gray;
  if (image.channels() == 1) gray = image;
  else cv::cvtColor(image, gray, image.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
  std::vector<Impl::Found> found;
  if (impl_->ssd) {
    for (const SsdFace& f : impl_->ssd->detect(image)) found.push_back({f.box, hog_box_from_ssd(f.box), f.score});
  } else {
    found = impl_->hog_faces(gray);
  }
  dlib::cv_image<unsigned char> img(gray);
  auto rounded = [](const cv::Rect2d& r) {
    return cv::Rect(cv::Point(static_cast<int>(std::lround(r.x)), static_cast<int>(std::lround(r.y))),
                    cv::Point(static_cast<int>(std::lround(r.x + r.width)), static_cast<int>(std::lround(r.y + r.height))));
  };
  std::vector<Face> faces;
  for (const Impl::Found& d : found) {
    std::array<cv::Point2d, 68> pts;
    if (d.landmark_box.width >= kLandmarkMinSide) {
      const cv::Rect lb = rounded(d.landmark_box);
      const dlib::full_object_detection s =
          impl_->predictor(img, dlib::rectangle(lb.x, lb.y, lb.x + lb.width - 1, lb.y + lb.height - 1));
      for (unsigned i = 0; i < 68; ++i) pts[i] = cv::Point2d(s.part(i).x(), s.part(i).y());
    } else {
      pts = small_face_landmarks(impl_->predictor, gray, d.landmark_box);
    }
    faces.push_back({rounded(d.box), d.score, five_from_68(pts)});
  }
  std::stable_sort(faces.begin(), faces.end(), [](const Face& a, const Face& b) { return a.box.area() > b.box.area(); });
  return faces;
}

cv::Mat read_image(const fs::path& path) {
  // Through decode_image, so a small file whose header declares a huge image
  // is refused before OpenCV allocates it (cv::imread has no such check).
  try {
    return data::decode_image(read_file(path), path.string(), kMaxImagePixels);
  } catch (const Error& e) {
    spdlog::warn("{}", e.what());
    return {};
  }
}

std::vector<LandmarkRecord> read_5pts(const fs::path& file) {
  std::vector<LandmarkRecord> out;
  const std::vector<std::string> lines = read_lines(file);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const auto f = split_fields(lines[i]);
    if (f.empty()) continue;
    const auto ln = static_cast<int64_t>(i + 1);
    require(f.size() == 11 || f.size() == 12, "{}:{}: expected 'image x1 y1 ... x5 y5 [score]', got {} fields",
            file.string(), ln, f.size());
    LandmarkRecord r;
    r.image = std::string(f[0]);
    for (std::size_t k = 0; k < 5; ++k)
      r.points[k] = cv::Point2d(parse_double(f[1 + 2 * k], file, ln, "landmark x"),
                                parse_double(f[2 + 2 * k], file, ln, "landmark y"));
    r.score = f.size() == 12 ? parse_double(f[11], file, ln, "detector score") : 1.0;
    out.push_back(std::move(r));
  }
  require(!out.empty(), "{}: no landmark lines", file.string());
  return out;
}

namespace {

json points_json(const Points5& p) {
  json a = json::array();
  for (const auto& q : p) a.push_back({q.x, q.y});
  return a;
}

void write_png(const fs::path& path, const cv::Mat& img) {
  write_file_atomic(path, data::encode_image(img, ".png", path.string()));
}

}  // namespace

AlignSummary run_align(const AlignOptions& o) {
  // Work list: (image path, given landmarks or none).
  std::vector<std::pair<fs::path, const LandmarkRecord*>> work;
  std::vector<LandmarkRecord> records;
  if (!o.landmarks.empty()) {
    records = read_5pts(o.landmarks);
    for (const auto& r : records) work.push_back({o.images / r.image, &r});
  } else {
    for (const auto& f : infer::list_images(o.images)) work.push_back({f, nullptr});
  }
  std::unique_ptr<FaceDetector> detector;
  if (o.landmarks.empty()) detector = std::make_unique<FaceDetector>(o.detector);
  ensure_dir(o.out);

  AlignSummary s;
  json aligned = json::array();
  for (const auto& [path, rec] : work) {
    ++s.images;
    cv::Mat img = read_image(path);
    if (img.empty()) {
      spdlog::warn("align: cannot read {}", path.string());
      s.unreadable.push_back(path.string());
      continue;
    }
    std::vector<Face> faces;
    if (rec) {
      Face f;
      f.score = rec->score;
      f.landmarks = rec->points;
      faces.push_back(f);
    } else {
      faces = detector->detect(img);
    }
    if (faces.empty()) {
      s.no_face.push_back(path.string());
      continue;
    }
    if (!o.all) faces.resize(1);
    const std::string stem = path.stem().string();
    for (std::size_t k = 0; k < faces.size(); ++k) {
      // `_face<k>`: search build recognises crops of one photo by it (enroll.h, list_labeled_images).
      const std::string name = o.all ? fmt::format("{}{}{}.png", stem, kFaceSuffix, k) : stem + ".png";
      write_png(o.out / name, data::warp_face(img, faces[k].landmarks, o.crop));
      ++s.crops;
      json e{{"image", path.string()}, {"crop", name}, {"score", faces[k].score},
             {"landmarks", points_json(faces[k].landmarks)}};
      if (!rec) e["box"] = {faces[k].box.x, faces[k].box.y, faces[k].box.width, faces[k].box.height};
      aligned.push_back(std::move(e));
    }
  }
  s.json = {{"kind", "deploy.align"},
            {"images", s.images},
            {"crops", s.crops},
            {"source", o.landmarks.empty() ? fmt::format("{} detector + dlib 68-point landmarks",
                                                          detector_kind_name(o.detector.kind))
                                           : o.landmarks.string()},
            {"crop", data::crop_layout_name(o.crop)},
            {"aligned", aligned},
            {"no_face", s.no_face},
            {"unreadable", s.unreadable}};
  write_file_atomic(o.out / "summary.json", s.json.dump(2) + "\n");
  return s;
}

}  // namespace qface::deploy
