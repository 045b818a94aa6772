// Alignment: exact recovery of a known similarity, synth faces with known
// landmarks land on the template (docs/method.md, Alignment), dlib detection +
// landmarks on real photos (dlib's own annotated examples, when installed),
// faceless and broken images through `qface align`.
#include <gtest/gtest.h>

#include <dlib/geometry/point_transforms.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <fstream>
#include <numeric>
#include <regex>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/deploy/align.h"
#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"
#include "qface/synth/render.h"
#include "qface/synth/rng.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using namespace qface::deploy;
using qface::testing::TempDir;

namespace {

const fs::path kDlibFaces = "/usr/share/doc/libdlib19.1/examples/faces";

// dlib's HOG detector (the tests below were written on its boxes).
const FaceDetector& detector() {
  static FaceDetector d(DetectorOptions{.kind = DetectorKind::kHog});
  return d;
}

// The SSD detector with its boxes mapped to the shape predictor's convention
// (hog_box_from_ssd); its model comes from scripts/setup.sh.
const FaceDetector& ssd_detector() {
  static FaceDetector d(DetectorOptions{.kind = DetectorKind::kSsd});
  return d;
}

double max_error(const Points5& a, const Points5& b) {
  double e = 0;
  for (std::size_t i = 0; i < 5; ++i) e = std::max(e, cv::norm(a[i] - b[i]));
  return e;
}

cv::Matx23d similarity(double scale, double degrees, double tx, double ty) {
  const double a = degrees * M_PI / 180, c = scale * std::cos(a), s = scale * std::sin(a);
  return cv::Matx23d(c, -s, tx, s, c, ty);
}

}  // namespace

TEST(DeployAlign, RecoversAKnownSimilarityExactly) {
  const Points5& t = qface::data::face_template();
  const cv::Matx23d S = similarity(2.7, 31, 140, 60);
  const Points5 warped = qface::data::transform_points(S, t);
  EXPECT_LT(max_error(qface::data::transform_points(qface::data::similarity_transform(warped), warped), t), 1e-9);

  // The closed form equals dlib's find_similarity_transform (Umeyama) on noisy points.
  Points5 noisy = warped;
  const double jitter[5][2] = {{2, -1}, {-1.5, 0.5}, {0.7, 2.2}, {-2, -0.4}, {1.1, 1.3}};
  std::vector<dlib::dpoint> from, to;
  for (std::size_t i = 0; i < 5; ++i) {
    noisy[i] += cv::Point2d(jitter[i][0], jitter[i][1]);
    from.emplace_back(noisy[i].x, noisy[i].y);
    to.emplace_back(t[i].x, t[i].y);
  }
  const dlib::point_transform_affine d = dlib::find_similarity_transform(from, to);
  const cv::Matx23d m = qface::data::similarity_transform(noisy);
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 2; ++c) EXPECT_NEAR(m(r, c), d.get_m()(r, c), 1e-9);
    EXPECT_NEAR(m(r, 2), d.get_b()(r), 1e-7);
  }

  // Pixels: dots drawn at the warped landmarks come back to the template in the crop.
  cv::Mat img(400, 400, CV_8UC3, cv::Scalar::all(0));
  for (const auto& p : warped) cv::circle(img, cv::Point(cvRound(p.x * 16), cvRound(p.y * 16)), 4 * 16, {255, 255, 255},
                                          cv::FILLED, cv::LINE_AA, 4);
  const cv::Mat crop = qface::data::warp_face(img, warped);
  ASSERT_EQ(crop.size(), cv::Size(112, 112));
  cv::Mat gray;
  cv::cvtColor(crop, gray, cv::COLOR_BGR2GRAY);
  for (const auto& p : t) {
    const cv::Rect win(cvRound(p.x) - 5, cvRound(p.y) - 5, 11, 11);
    const cv::Moments m = cv::moments(gray(win));
    ASSERT_GT(m.m00, 0);
    const cv::Point2d c(win.x + m.m10 / m.m00, win.y + m.m01 / m.m00);
    EXPECT_LT(cv::norm(c - p), 1.0) << "template point " << p;
  }
}

TEST(DeployAlign, SynthFaceWithKnownLandmarksLandsOnTheTemplate) {
  namespace sy = qface::synth;
  const auto ids = sy::sample_population(21, 1, 3, sy::PopulationOptions{});
  for (const sy::Identity& id : ids) {
    sy::ImageNuisance n;
    sy::Rng rng(3);
    sy::derive(n, rng);  // all strengths zero: clean frontal face
    n.roll = 23;
    const sy::Rendered loose = sy::render_loose(id, n, 240);
    const sy::Rendered ref = sy::render_aligned(id, n);
    Points5 l, r;
    std::copy(loose.landmarks.begin(), loose.landmarks.end(), l.begin());
    std::copy(ref.landmarks.begin(), ref.landmarks.end(), r.begin());
    const Points5 mapped = qface::data::transform_points(qface::data::similarity_transform(l), l);
    // Same least-squares fit as the renderer's own alignment: the same points, within 1 px.
    EXPECT_LT(max_error(mapped, r), 1.0);
    // The fit's residual to the template is the identity's own face geometry, as in the renderer.
    EXPECT_NEAR(max_error(mapped, qface::data::face_template()), max_error(r, qface::data::face_template()), 1.0);
    const cv::Matx23d M = qface::data::similarity_transform(l);
    EXPECT_NEAR(std::atan2(M(1, 0), M(0, 0)) * 180 / M_PI, -23.0, 0.5);
    const cv::Mat crop = qface::data::warp_face(loose.image, l);
    cv::Mat diff;
    cv::absdiff(crop, ref.image, diff);
    EXPECT_LT(cv::mean(diff)[0], 40) << "the aligned crop looks like the renderer's aligned face";
  }
}

TEST(DeployAlign, AverageSynthFaceFromALooseCropLandsWithin1PxOfTheTemplate) {
  // Every gene at its middle value: the face whose proportions match the
  // template's (SynthQuality.TheAverageFaceAlignsOntoTheTemplateWithin1Px).
  namespace sy = qface::synth;
  std::array<double, sy::kGenes> mid;
  mid.fill(0.5);
  sy::ImageNuisance n;
  sy::Rng rng(5);
  sy::derive(n, rng);
  n.roll = -31;
  const sy::Rendered loose = sy::render_loose(sy::decode_identity(mid, 0, 0, 1), n, 260);
  Points5 l;
  std::copy(loose.landmarks.begin(), loose.landmarks.end(), l.begin());
  const Points5 mapped = qface::data::transform_points(qface::data::similarity_transform(l), l);
  for (std::size_t i = 0; i < 5; ++i)
    EXPECT_LT(cv::norm(mapped[i] - qface::data::face_template()[i]), 1.0) << "point " << i << " " << mapped[i];
}

namespace {

// dlib's own 68 points on its annotated example photos, against qface's five
// from a detector's box. Returns the nearest face's largest point error per
// annotated face that the detector finds.
std::vector<double> dlib_example_errors(const FaceDetector& detector, const char* name) {
  std::vector<double> errors;
  const fs::path xml = kDlibFaces / "testing_with_face_landmarks.xml";
  if (!fs::exists(xml)) return errors;
  const std::string text = qface::read_file(xml);
  // <image file='X'> <box top left width height> <part name='NN' x y/> x68 </box> ...
  std::regex image_re("<image file='([^']+)'"), part_re("<part name='(\\d+)' x='(-?\\d+)' y='(-?\\d+)'/>");
  int checked = 0, faces_checked = 0;
  double worst = 0;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), image_re); it != std::sregex_iterator() && checked < 3;
       ++it) {
    const std::string file = (*it)[1];
    const std::size_t start = static_cast<std::size_t>(it->position()), end = text.find("</image>", start);
    const std::string block = text.substr(start, end - start);
    const std::vector<Face> faces = detector.detect(read_image(kDlibFaces / file));
    EXPECT_FALSE(faces.empty()) << file;
    for (std::size_t b = block.find("<box"); b != std::string::npos; b = block.find("<box", b + 1)) {
      const std::string box = block.substr(b, block.find("</box>", b) - b);
      std::vector<cv::Point2d> parts;
      for (auto p = std::sregex_iterator(box.begin(), box.end(), part_re); p != std::sregex_iterator(); ++p)
        parts.emplace_back(std::stod((*p)[2]), std::stod((*p)[3]));
      EXPECT_EQ(parts.size(), 68u) << file;
      if (parts.size() != 68) continue;
      std::array<cv::Point2d, 68> p68;
      std::copy(parts.begin(), parts.end(), p68.begin());
      const Points5 truth = five_from_68(p68);
      double best = 1e9;
      for (const Face& f : faces) best = std::min(best, max_error(f.landmarks, truth));
      if (best > 20) continue;  // a face the detector misses
      errors.push_back(best);
      worst = std::max(worst, best);
      ++faces_checked;
    }
    ++checked;
  }
  std::cout << name << " on dlib's examples: " << checked << " images, " << faces_checked
            << " faces, worst 5-point error " << worst << " px\n";
  return errors;
}

}  // namespace

TEST(DeployAlign, DlibLandmarksMatchDlibsAnnotatedExamples) {
  if (!fs::exists(kDlibFaces)) GTEST_SKIP() << kDlibFaces << " not installed (libdlib19.1 docs)";
  const std::vector<double> errors = dlib_example_errors(detector(), "hog");
  EXPECT_GE(errors.size(), 10u);
  for (double e : errors) EXPECT_LT(e, 3.0);
}

// Through the SSD's boxes (mapped to the predictor's convention) the points
// meet the parity bound (the mean over faces of each face's largest
// point error under 2 px, stricter than a mean over points). Not every face is as
// close as through HOG's own box: on the two faces of 2008_002506 (glasses
// with reflections, a blurred VOC JPEG) the cascade settles 6 px away.
TEST(DeployAlign, SsdBoxesGiveTheSameLandmarksOnDlibsExamples) {
  if (!fs::exists(kDlibFaces)) GTEST_SKIP() << kDlibFaces << " not installed (libdlib19.1 docs)";
  const std::vector<double> errors = dlib_example_errors(ssd_detector(), "ssd");
  ASSERT_GE(errors.size(), 10u);
  EXPECT_LT(std::accumulate(errors.begin(), errors.end(), 0.0) / static_cast<double>(errors.size()), 2.0);
}

TEST(DeployAlign, FiveFrom68TakesPupilsNoseTipAndMouthCorners) {
  // An eye whose lids are symmetric about y = 10 (upper lid at 8, lower at 12):
  // the six-point mean is (x, 10); the pupil estimate moves up by a quarter of
  // the 4 px opening, to y = 9.
  std::array<cv::Point2d, 68> p{};
  for (unsigned a : {36u, 42u}) {
    const double x0 = a == 36 ? 20 : 60;
    p[a] = {x0, 10};
    p[a + 1] = {x0 + 3, 8};
    p[a + 2] = {x0 + 7, 8};
    p[a + 3] = {x0 + 10, 10};
    p[a + 4] = {x0 + 7, 12};
    p[a + 5] = {x0 + 3, 12};
  }
  p[30] = {45, 30};
  p[48] = {33, 45};
  p[54] = {57, 45};
  const Points5 f = five_from_68(p);
  EXPECT_NEAR(f[0].x, 25, 1e-12);
  EXPECT_NEAR(f[0].y, 9, 1e-12);
  EXPECT_NEAR(f[1].x, 65, 1e-12);
  EXPECT_NEAR(f[1].y, 9, 1e-12);
  EXPECT_EQ(f[2], cv::Point2d(45, 30));
  EXPECT_EQ(f[3], cv::Point2d(33, 45));
  EXPECT_EQ(f[4], cv::Point2d(57, 45));
}

TEST(DeployAlign, FacelessBrokenAndLandmarkFilesThroughTheCli) {
  TempDir dir;
  fs::create_directories(dir / "in");
  cv::imwrite((dir / "in" / "blank.png").string(), cv::Mat(200, 200, CV_8UC3, cv::Scalar(90, 120, 150)));
  qface::write_file_atomic(dir / "in" / "broken.jpg", "\xff\xd8\xff\xe0 not really a jpeg");
  namespace sy = qface::synth;
  sy::ImageNuisance n;
  sy::Rng rng(1);
  sy::derive(n, rng);
  const sy::Rendered loose = sy::render_loose(sy::sample_population(2, 1, 1, sy::PopulationOptions{})[0], n, 200);
  cv::imwrite((dir / "in" / "synth.png").string(), loose.image);

  auto r = qface::testing::run_qface({"align", "--images", (dir / "in").string(), "--out", (dir / "out").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto summary = nlohmann::json::parse(qface::read_file(dir / "out" / "summary.json"));
  EXPECT_EQ(summary["images"], 3);
  EXPECT_EQ(summary["unreadable"].size(), 1u);
  EXPECT_NE(summary["no_face"].dump().find("blank.png"), std::string::npos) << summary.dump();

  // From a 5-point file, no detection: the synth face's true landmarks.
  std::string pts = "synth.png";
  for (const auto& p : loose.landmarks) pts += " " + std::to_string(p.x) + " " + std::to_string(p.y);
  qface::write_file_atomic(dir / "pts.txt", pts + " 0.99\nmissing.png 1 2 3 4 5 6 7 8 9 10 0.5\n");
  r = qface::testing::run_qface({"align", "--images", (dir / "in").string(), "--landmarks", (dir / "pts.txt").string(),
                                 "--out", (dir / "out5").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const cv::Mat crop = cv::imread((dir / "out5" / "synth.png").string());
  EXPECT_EQ(crop.size(), cv::Size(112, 112));
  const auto s5 = nlohmann::json::parse(qface::read_file(dir / "out5" / "summary.json"));
  EXPECT_EQ(s5["crops"], 1);
  EXPECT_EQ(s5["unreadable"].size(), 1u);

  qface::write_file_atomic(dir / "bad.txt", "synth.png 1 2 3\n");
  r = qface::testing::run_qface({"align", "--images", (dir / "in").string(), "--landmarks", (dir / "bad.txt").string(),
                                 "--out", (dir / "out6").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("bad.txt:1"), std::string::npos) << r.err;
}

TEST(DeployAlign, MissingLandmarkModelIsAClearError) {
  DetectorOptions o;
  o.landmark_model = "/nonexistent/model.dat";
  EXPECT_THROW(FaceDetector{o}, qface::Error);
  o.landmark_model = "/tmp/x.dat.bz2";
  EXPECT_THROW(FaceDetector{o}, qface::Error);
}
