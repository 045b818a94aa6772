// Synthetic detection scenes: a W x H frame with a busy background (noise
// texture over gradients, clutter shapes and text that are not faces) and K
// synth faces of one requested size, each under its own nuisance draw (pose,
// expression, light, occlusion, blur, noise, JPEG, low resolution: the
// generator's web-crawl distribution), so that a face detector's recall can
// be measured against exact ground truth (`qface bench detect`).
//
// Face size: the side, in frame pixels, of the face's 112 x 112 aligned-crop
// square (data/alignment.h's template; the square follows the face's roll).
// It is fixed by the five landmarks alone (their least-squares similarity
// onto the template), so any detector's box convention can be compared with
// it. A face is rendered as a loose crop (render_loose: the whole head, some
// neck and the renderer's own backdrop) at about the requested size, so the
// nuisances act at the frame's resolution as a camera's would, then scaled by
// at most ~1.2x so that its square is exactly the requested size, and
// blended through a feathered mask of the head and neck: no square edge gives
// the face away. Faces never overlap (each owns a disjoint footprint), and
// their landmarks lie inside the frame (a rolled square's corner may not).
// Everything is deterministic from the seed.
#pragma once

#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <vector>

#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"
#include "qface/synth/render.h"

namespace qface::synth {

struct SceneOptions {
  int width = 1920, height = 1080;
  int faces = 12;
  double face_size = 48;  // side of each face's aligned-crop square, frame pixels
  uint64_t seed = 1;
  int threads = 1;  // faces rendered in parallel (the pixels do not depend on it)
  // The generator's nuisance distribution, without its share of deliberately
  // unrecognizable images (extreme blur, resolution or occlusion): those are
  // built to hold no face, and a detector benchmark would only measure how
  // many of them the generator made.
  NuisanceOptions nuisance = [] {
    NuisanceOptions n;
    n.unrecognizable = 0;
    return n;
  }();
  PopulationOptions population;
};

struct SceneFace {
  Landmarks landmarks;                // frame pixels (exact: projected from the face model)
  std::array<cv::Point2d, 4> square;  // aligned-crop square: the crop's top-left, top-right, bottom-right, bottom-left
  cv::Point2d centre;                 // the square's centre
  double size = 0;                    // the square's side (SceneOptions::face_size)
  cv::Rect2d box;                     // the square's axis-aligned bounds (larger than size x size when rolled)
  cv::Rect footprint;                 // frame pixels the face's blend may touch (disjoint between faces)
  int64_t identity = 0;
  ImageNuisance nuisance;
};

struct Scene {
  cv::Mat image;  // 8-bit BGR, height x width
  std::vector<SceneFace> faces;
};

// The scene; throws qface::Error when the options are out of range or the
// faces do not fit into the frame without overlapping.
Scene render_scene(const SceneOptions& options);

// The same frame without its faces: equal to render_scene's image outside
// the faces' footprints (the background does not depend on the faces).
cv::Mat render_scene_background(const SceneOptions& options);

// The centroid of the five landmarks: the point a detection must contain.
cv::Point2d landmark_centroid(const Landmarks& landmarks);

// Detections against a scene's faces, fair to detectors whose box
// conventions differ (forehead-to-chin, eyebrows-to-chin, square or not): a
// detection matches a face when the face's landmark centroid lies inside the
// box and the box's side (the square root of its area) is within a factor
// `size_factor` of the face size. Greedy by score: detections in falling
// score order each take the nearest still unmatched face they match (centroid
// to box centre), so a detection matches at most one face and a face at most
// one detection; the rest are false detections.
struct Detection {
  cv::Rect2d box;
  double score = 0;
};
struct MatchResult {
  std::vector<int> face_of;       // per detection (input order): matched face index, or -1
  std::vector<bool> found;        // per face
  int matched = 0, false_detections = 0;
};
MatchResult match_detections(const std::vector<SceneFace>& faces, const std::vector<Detection>& detections,
                             double size_factor = 2.0);

}  // namespace qface::synth
