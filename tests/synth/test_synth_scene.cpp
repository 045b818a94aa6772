// Synthetic detection scenes (synth/scene.h): the ground truth says where the
// faces are (landmarks on the template geometry, the requested size, inside
// the frame, no overlap), the pixels agree with it (the frame differs from its
// background only inside the faces' footprints, and does at every face), the
// scene is a function of its seed, and the detection matcher of
// `qface bench detect` counts as documented.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <cmath>

#include "qface/core/error.h"
#include "qface/data/alignment.h"
#include "qface/synth/scene.h"

using namespace qface::synth;

namespace {

SceneOptions small(double size = 48) {
  SceneOptions o;
  o.width = 640;
  o.height = 480;
  o.faces = 6;
  o.face_size = size;
  o.seed = 7;
  o.threads = 2;
  return o;
}

double distance(const cv::Point2d& a, const cv::Point2d& b) { return std::hypot(a.x - b.x, a.y - b.y); }

}  // namespace

TEST(SynthScene, GroundTruthIsWhereTheFacesAre) {
  for (double size : {16.0, 48.0, 128.0}) {
    SceneOptions o = small(size);
    if (size > 100) o.width = 1280, o.height = 720;
    const Scene s = render_scene(o);
    ASSERT_EQ(s.image.type(), CV_8UC3);
    ASSERT_EQ(s.image.size(), cv::Size(o.width, o.height));
    ASSERT_EQ(s.faces.size(), 6u);
    const cv::Rect frame(0, 0, o.width, o.height);
    for (const SceneFace& f : s.faces) {
      EXPECT_NEAR(f.size, size, 1e-6);
      // The square is the landmarks' aligned-crop square: the similarity of
      // the landmarks onto the template maps its corners onto the crop's.
      const cv::Matx23d to_template = qface::data::similarity_transform(f.landmarks);
      const auto t = qface::data::transform_points(to_template, {f.square[0], f.square[1], f.square[2], f.square[3], f.centre});
      const cv::Point2d want[5] = {{-0.5, -0.5}, {111.5, -0.5}, {111.5, 111.5}, {-0.5, 111.5}, {55.5, 55.5}};
      for (std::size_t k = 0; k < 5; ++k) EXPECT_LT(distance(t[k], want[k]), 1e-6) << t[k];
      for (int k = 0; k < 4; ++k) EXPECT_NEAR(distance(f.square[k], f.square[(k + 1) % 4]), size, 1e-6);
      // Eye distance of a face of this size (the template's 35 of 112, less when turned).
      const double eyes = distance(f.landmarks[0], f.landmarks[1]);
      EXPECT_GT(eyes, 0.15 * size);
      EXPECT_LT(eyes, 0.40 * size);
      std::vector<cv::Point2f> poly(f.square.begin(), f.square.end());
      for (const auto& p : f.landmarks) EXPECT_GT(cv::pointPolygonTest(poly, cv::Point2f(p), false), 0) << p;
      EXPECT_EQ(f.footprint & frame, f.footprint);
      for (const auto& p : f.landmarks) EXPECT_TRUE(cv::Rect2d(f.footprint).contains(p)) << p << " outside " << f.footprint;
    }
    for (std::size_t a = 0; a < s.faces.size(); ++a)
      for (std::size_t b = a + 1; b < s.faces.size(); ++b)
        EXPECT_TRUE((s.faces[a].footprint & s.faces[b].footprint).empty()) << "faces " << a << " and " << b << " overlap";

    // The pixels: only the footprints differ from the background, and each face does.
    const cv::Mat bg = render_scene_background(o);
    cv::Mat diff;
    cv::absdiff(s.image, bg, diff);
    cv::Mat outside = diff.clone();
    for (const SceneFace& f : s.faces) outside(f.footprint).setTo(0);
    EXPECT_EQ(cv::norm(outside, cv::NORM_INF), 0) << "size " << size;
    for (const SceneFace& f : s.faces) {
      // Around the landmarks (eyes, nose, mouth) the face replaced the
      // background: mean change well above the sensor noise.
      double change = 0;
      for (const auto& p : f.landmarks) {
        const cv::Rect w = cv::Rect(cv::Point(static_cast<int>(p.x) - 1, static_cast<int>(p.y) - 1), cv::Size(3, 3)) & frame;
        change += cv::mean(diff(w))[0] + cv::mean(diff(w))[1] + cv::mean(diff(w))[2];
      }
      EXPECT_GT(change / 15, 4.0) << "size " << size << ": the face at " << f.centre << " is not in the pixels";
    }
  }
}

TEST(SynthScene, DeterministicFromItsSeed) {
  const SceneOptions o = small();
  const Scene a = render_scene(o);
  SceneOptions one_thread = o;
  one_thread.threads = 1;
  const Scene b = render_scene(one_thread);
  EXPECT_EQ(cv::norm(a.image, b.image, cv::NORM_INF), 0);
  ASSERT_EQ(a.faces.size(), b.faces.size());
  for (std::size_t i = 0; i < a.faces.size(); ++i) {
    EXPECT_EQ(a.faces[i].footprint, b.faces[i].footprint);
    for (std::size_t p = 0; p < 5; ++p) EXPECT_EQ(a.faces[i].landmarks[p], b.faces[i].landmarks[p]);
  }
  SceneOptions other = o;
  other.seed = 8;
  EXPECT_GT(cv::norm(render_scene(other).image, a.image, cv::NORM_L1), 0);
}

TEST(SynthScene, FacesThatDoNotFitAreAClearError) {
  SceneOptions o = small(128);
  o.faces = 40;
  try {
    render_scene(o);
    FAIL() << "no error";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("do not fit into a 640x480 frame"), std::string::npos) << e.what();
  }
  o.face_size = 4;
  EXPECT_THROW(render_scene(o), qface::Error);
}

TEST(SynthScene, MatcherIsOneToOneGreedyByScoreWithinASizeFactor) {
  std::vector<SceneFace> faces(2);
  for (std::size_t i = 0; i < 2; ++i) {
    faces[i].size = 40;
    for (auto& p : faces[i].landmarks) p = {100.0 + 200.0 * static_cast<double>(i), 100.0};
  }
  const std::vector<Detection> dets = {
      {{80, 80, 40, 40}, 0.7},    // face 0
      {{85, 85, 30, 30}, 0.9},    // face 0 too, higher score: takes it; the 0.7 box becomes a false detection
      {{290, 90, 15, 15}, 0.8},   // centroid inside, but side 15 < 40 / 2: false
      {{250, 50, 100, 100}, 0.6}, // face 1: side 100 within 2x of 40? no (> 80): false
      {{270, 70, 60, 60}, 0.5},   // face 1
      {{500, 500, 40, 40}, 0.99}, // nowhere near a face
  };
  const MatchResult m = match_detections(faces, dets);
  EXPECT_EQ(m.matched, 2);
  EXPECT_EQ(m.false_detections, 4);
  EXPECT_EQ(m.face_of, (std::vector<int>{-1, 0, -1, -1, 1, -1}));
  EXPECT_TRUE(m.found[0] && m.found[1]);
}
