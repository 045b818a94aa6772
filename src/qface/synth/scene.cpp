#include "qface/synth/scene.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "qface/core/error.h"
#include "qface/core/parallel.h"
#include "qface/data/alignment.h"
#include "qface/synth/rng.h"

namespace qface::synth {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Seed streams of the scenes. A scene's seed is its own (not a dataset's), so
// these only need to differ from each other; they sit above writer.h's
// streams all the same, so that a scene seeded like a dataset shares nothing with it.
enum SceneStream : uint64_t { kIdsScene = 500, kSceneFace, kSceneLayout, kSceneBackground };

// A face's loose crop is rendered at this multiple of the face size:
// render_loose puts the aligned square at 0.55..0.8 of the crop, so the
// square comes out within ~20 % of the requested size and the resampling
// onto the frame stays mild (the nuisances keep their pixel scale).
constexpr double kLooseFace = 0.675;

// The blend mask, in template (112 x 112 crop) coordinates: an ellipse around
// the head (hair, ears, a little of the renderer's backdrop), feathered over
// its outer fifth, and the neck below it down to the crop's border. A head
// cut off at the chin is less like a person in a photo than the renderer's
// head on its neck (a CNN detector uses such context).
constexpr double kMaskCx = 56, kMaskCy = 58, kMaskRx = 58, kMaskRy = 66, kFeather = 0.2;
constexpr double kNeckHalfWidth = 22, kNeckTop = 84, kNeckFeather = 6;

double smoothstep(double e0, double e1, double x) {
  const double t = std::clamp((x - e0) / (e1 - e0), 0.0, 1.0);
  return t * t * (3 - 2 * t);
}

cv::Point2d apply(const cv::Matx23d& m, const cv::Point2d& p) {
  return {m(0, 0) * p.x + m(0, 1) * p.y + m(0, 2), m(1, 0) * p.x + m(1, 1) * p.y + m(1, 2)};
}

void check(const SceneOptions& o) {
  require(o.width >= 64 && o.height >= 64 && o.width <= 16384 && o.height <= 16384,
          "scene: frame must be 64..16384 pixels a side, got {}x{}", o.width, o.height);
  require(o.faces >= 0 && o.faces <= 10000, "scene: faces must be 0..10000, got {}", o.faces);
  require(o.face_size >= 8 && o.face_size <= 1024, "scene: face size must be 8..1024 pixels, got {}", o.face_size);
  require(o.threads >= 1, "scene: threads must be at least 1, got {}", o.threads);
}

// Smooth noise: a coarse grid of normal values (one luminance and a weaker
// colour part per node) interpolated bicubically over cells of `cell` pixels.
cv::Mat smooth_noise(int width, int height, int cell, double chroma, Rng& rng) {
  const int gw = width / cell + 4, gh = height / cell + 4;
  cv::Mat grid(gh, gw, CV_32FC3);
  for (int y = 0; y < gh; ++y)
    for (int x = 0; x < gw; ++x) {
      const double l = rng.normal();
      auto& v = grid.at<cv::Vec3f>(y, x);
      for (int c = 0; c < 3; ++c) v[c] = static_cast<float>(l + chroma * rng.normal());
    }
  cv::Mat big;
  cv::resize(grid, big, cv::Size(gw * cell, gh * cell), 0, 0, cv::INTER_CUBIC);
  return big(cv::Rect(cell, cell, width, height)).clone();  // away from the grid's border
}

cv::Scalar random_colour(Rng& rng) { return {rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)}; }

// Clutter that is not a face: posters and windows, discs, wires, fences,
// facades, outlines and lettering, some of them translucent.
void draw_clutter(cv::Mat& img, Rng& rng) {
  const int W = img.cols, H = img.rows;
  const double area = static_cast<double>(W) * H;
  const int count = static_cast<int>(std::lround(area / 1e6 * rng.uniform(40, 90)));
  const double max_size = 0.3 * std::min(W, H);
  for (int i = 0; i < count; ++i) {
    const double size = std::exp(rng.uniform(std::log(6.0), std::log(max_size)));
    const cv::Point2d c(rng.uniform(-0.05, 1.05) * W, rng.uniform(-0.05, 1.05) * H);
    const cv::Scalar col = random_colour(rng);
    const int kind = static_cast<int>(rng.integer(0, 6));
    const bool translucent = rng.chance(0.3);
    const double alpha = rng.uniform(0.25, 0.7);
    const cv::Rect roi = cv::Rect(cv::Point(static_cast<int>(c.x - 2 * size) - 4, static_cast<int>(c.y - 2 * size) - 4),
                                  cv::Point(static_cast<int>(c.x + 2 * size) + 5, static_cast<int>(c.y + 2 * size) + 5)) &
                         cv::Rect(0, 0, W, H);
    if (roi.empty()) continue;
    cv::Mat before;
    if (translucent) before = img(roi).clone();
    const double w = size * rng.uniform(0.3, 1.0), h = size * rng.uniform(0.3, 1.0);
    const int thick = std::max(1, static_cast<int>(std::lround(rng.uniform(1, 1 + size / 25))));
    switch (kind) {
      case 0: {  // poster, window, sign: a filled rectangle, sometimes framed
        const cv::Rect r(cv::Point(static_cast<int>(c.x - w / 2), static_cast<int>(c.y - h / 2)),
                         cv::Size(static_cast<int>(w) + 1, static_cast<int>(h) + 1));
        cv::rectangle(img, r, col, cv::FILLED, cv::LINE_AA);
        if (rng.chance(0.5)) cv::rectangle(img, r, random_colour(rng), thick, cv::LINE_AA);
        break;
      }
      case 1:  // disc or ellipse (lamps, balls, plates)
        cv::ellipse(img, cv::RotatedRect(c, cv::Size2f(static_cast<float>(w), static_cast<float>(h)),
                                         static_cast<float>(rng.uniform(0, 180))),
                    col, cv::FILLED, cv::LINE_AA);
        break;
      case 2: {  // wires, poles, edges
        const double a = rng.uniform(0, kPi), len = size * rng.uniform(1, 4);
        const cv::Point2d d(std::cos(a) * len / 2, std::sin(a) * len / 2);
        cv::line(img, c - d, c + d, col, thick, cv::LINE_AA);
        break;
      }
      case 3: {  // lettering
        std::string text;
        const int letters = static_cast<int>(rng.integer(2, 9));
        for (int k = 0; k < letters; ++k) {
          const int64_t x = rng.integer(0, 35);
          text += static_cast<char>(x < 26 ? 'A' + x : '0' + (x - 26));
        }
        const double scale = std::max(0.3, size / 40);
        cv::putText(img, text, c, static_cast<int>(rng.integer(0, 4)), scale, col,
                    std::max(1, static_cast<int>(scale * rng.uniform(1, 3))), cv::LINE_AA);
        break;
      }
      case 4: {  // facade or tiles: a grid of small rectangles
        const int nx = static_cast<int>(rng.integer(2, 6)), ny = static_cast<int>(rng.integer(2, 5));
        const double cw = w / nx, ch = h / ny;
        for (int yy = 0; yy < ny; ++yy)
          for (int xx = 0; xx < nx; ++xx)
            cv::rectangle(img,
                          cv::Rect(static_cast<int>(c.x - w / 2 + xx * cw), static_cast<int>(c.y - h / 2 + yy * ch),
                                   std::max(1, static_cast<int>(cw * 0.7)), std::max(1, static_cast<int>(ch * 0.7))),
                          col, cv::FILLED, cv::LINE_AA);
        break;
      }
      case 5: {  // fence or blinds: parallel stripes
        const int n = static_cast<int>(rng.integer(3, 10));
        const double a = rng.uniform(0, kPi), gap = size / n;
        const cv::Point2d d(std::cos(a) * size / 2, std::sin(a) * size / 2), step(-std::sin(a) * gap, std::cos(a) * gap);
        for (int k = 0; k < n; ++k) {
          const cv::Point2d o = c + step * (k - n / 2.0);
          cv::line(img, o - d, o + d, col, std::max(1, static_cast<int>(gap / 3)), cv::LINE_AA);
        }
        break;
      }
      default: {  // an outline of 3 to 6 corners
        std::vector<cv::Point> pts;
        const int n = static_cast<int>(rng.integer(3, 6));
        for (int k = 0; k < n; ++k)
          pts.emplace_back(static_cast<int>(c.x + rng.uniform(-size, size) / 2),
                           static_cast<int>(c.y + rng.uniform(-size, size) / 2));
        cv::polylines(img, std::vector<std::vector<cv::Point>>{pts}, true, col, thick, cv::LINE_AA);
      }
    }
    if (translucent) {
      cv::Mat area = img(roi);
      cv::addWeighted(area, alpha, before, 1 - alpha, 0, area);
    }
  }
}

cv::Mat background(int W, int H, uint64_t seed) {
  Rng rng(derive_seed(seed, kSceneBackground, 0));
  // Two-colour gradient under a broad light fall-off.
  const cv::Vec3d c0(rng.uniform(20, 235), rng.uniform(20, 235), rng.uniform(20, 235));
  const cv::Vec3d c1(rng.uniform(20, 235), rng.uniform(20, 235), rng.uniform(20, 235));
  const double a = rng.uniform(0, 2 * kPi), ca = std::cos(a), sa = std::sin(a);
  const cv::Point2d light(rng.uniform(0, W), rng.uniform(0, H));
  const double light_gain = rng.uniform(0.0, 0.35), diag = std::hypot(W, H);
  cv::Mat f(H, W, CV_32FC3);
  for (int y = 0; y < H; ++y) {
    auto* row = f.ptr<cv::Vec3f>(y);
    for (int x = 0; x < W; ++x) {
      const double t = std::clamp(0.5 + ((x - W / 2.0) * ca + (y - H / 2.0) * sa) / diag, 0.0, 1.0);
      const double g = 1 + light_gain * (0.5 - std::hypot(x - light.x, y - light.y) / diag);
      for (int c = 0; c < 3; ++c) row[x][c] = static_cast<float>((c0[c] + (c1[c] - c0[c]) * t) * g);
    }
  }
  // Texture at four scales: large blotches (walls, foliage) down to grain.
  const int cells[4] = {240, 60, 15, 4};
  const double amps[4] = {rng.uniform(10, 35), rng.uniform(6, 20), rng.uniform(3, 14), rng.uniform(2, 8)};
  for (int k = 0; k < 4; ++k) f += smooth_noise(W, H, cells[k], 0.4, rng) * amps[k];
  cv::Mat img;
  f.convertTo(img, CV_8UC3);
  draw_clutter(img, rng);
  // The camera: lens softness and sensor noise over the whole frame.
  cv::GaussianBlur(img, img, cv::Size(0, 0), rng.uniform(0.5, 1.2));
  const double sigma = rng.uniform(1.0, 4.0);
  for (int y = 0; y < H; ++y) {
    auto* row = img.ptr<cv::Vec3b>(y);
    for (int x = 0; x < W; ++x) {
      const double l = sigma * rng.normal();
      for (int c = 0; c < 3; ++c) row[x][c] = cv::saturate_cast<uchar>(row[x][c] + l);
    }
  }
  return img;
}

// One face rendered as a loose crop, with its blend mask and the crop's
// similarity onto the 112 x 112 template.
struct Loose {
  Rendered r;
  cv::Mat alpha;              // CV_32F, crop size
  cv::Matx23d to_template;    // crop pixels -> template pixels
  double square = 0;          // side of the aligned-crop square in crop pixels
};

Loose render_face(const Identity& id, const ImageNuisance& n, double face_size) {
  Loose f;
  const int L = std::max(12, static_cast<int>(std::lround(face_size / kLooseFace)));
  f.r = render_loose(id, n, L);
  f.to_template = data::similarity_transform(f.r.landmarks);
  f.square = 112.0 / std::hypot(f.to_template(0, 0), f.to_template(1, 0));
  f.alpha = cv::Mat(L, L, CV_32F);
  // Fade to zero at the crop's border too (the ellipse may reach it when the
  // face sits high or large in its crop): never a hard edge.
  const double border = 0.06 * L + 1;
  for (int y = 0; y < L; ++y)
    for (int x = 0; x < L; ++x) {
      const cv::Point2d t = apply(f.to_template, {static_cast<double>(x), static_cast<double>(y)});
      const double r = std::hypot((t.x - kMaskCx) / kMaskRx, (t.y - kMaskCy) / kMaskRy);
      const double edge = std::min({x + 0.5, y + 0.5, L - 0.5 - x, L - 0.5 - y}) / border;
      const double head = 1 - smoothstep(1 - kFeather, 1, r);
      const double neck = (1 - smoothstep(kNeckHalfWidth - kNeckFeather, kNeckHalfWidth, std::abs(t.x - kMaskCx))) *
                          smoothstep(kNeckTop, kNeckTop + kNeckFeather, t.y);
      f.alpha.at<float>(y, x) = static_cast<float>(std::max(head, neck) * smoothstep(0, 1, edge));
    }
  return f;
}

}  // namespace

cv::Mat render_scene_background(const SceneOptions& o) {
  check(o);
  return background(o.width, o.height, o.seed);
}

Scene render_scene(const SceneOptions& o) {
  check(o);
  Scene scene;
  scene.image = background(o.width, o.height, o.seed);
  if (o.faces == 0) return scene;
  const auto ids = sample_population(o.seed, kIdsScene, o.faces, o.population);
  const std::size_t K = static_cast<std::size_t>(o.faces);
  std::vector<Loose> loose(K);
  std::vector<ImageNuisance> nuisances(K);
  parallel_for(o.faces, o.threads, [&](int64_t i) {
    Rng rng(derive_seed(o.seed, kSceneFace, static_cast<uint64_t>(i)));
    nuisances[static_cast<std::size_t>(i)] = sample_nuisance(rng, o.nuisance);
    loose[static_cast<std::size_t>(i)] = render_face(ids[static_cast<std::size_t>(i)], nuisances[static_cast<std::size_t>(i)], o.face_size);
  });

  // Placement: each face's footprint (its scaled crop) goes into its own cell
  // of a grid of cells a little larger than the largest footprint, so faces
  // never overlap and never leave the frame; the cells are drawn at random
  // and the footprint jittered within its cell.
  std::vector<double> scale(K), side(K);
  double largest = 0;
  for (std::size_t i = 0; i < K; ++i) {
    scale[i] = o.face_size / loose[i].square;
    side[i] = scale[i] * loose[i].r.image.cols;
    largest = std::max(largest, side[i]);
  }
  const int cell = static_cast<int>(std::ceil(largest)) + 2;
  const int cols = o.width / cell, rows = o.height / cell;
  require(static_cast<int64_t>(cols) * rows >= o.faces,
          "scene: {} faces of {:g} px do not fit into a {}x{} frame without overlapping (room for {}; a face "
          "with its head and blend margin needs {} px)",
          o.faces, o.face_size, o.width, o.height, static_cast<int64_t>(cols) * rows, cell);
  Rng lay(derive_seed(o.seed, kSceneLayout, 0));
  std::vector<int> cells(static_cast<std::size_t>(cols * rows));
  std::iota(cells.begin(), cells.end(), 0);
  for (std::size_t i = 0; i < K; ++i)  // partial Fisher-Yates: the first K cells
    std::swap(cells[i], cells[static_cast<std::size_t>(lay.integer(static_cast<int64_t>(i), static_cast<int64_t>(cells.size()) - 1))]);
  const double ox = lay.uniform(0, o.width - cols * cell), oy = lay.uniform(0, o.height - rows * cell);

  const cv::Rect frame(0, 0, o.width, o.height);
  const std::array<cv::Point2d, 4> corners = {cv::Point2d(-0.5, -0.5), cv::Point2d(111.5, -0.5),
                                              cv::Point2d(111.5, 111.5), cv::Point2d(-0.5, 111.5)};
  for (std::size_t i = 0; i < K; ++i) {
    const Loose& f = loose[i];
    const double k = scale[i];
    const int c = cells[i];
    // Footprint [x0, x0 + side) in pixel-edge coordinates; crop pixel p
    // (centre coordinates) lands at k (p + 0.5) + x0 - 0.5.
    const double x0 = ox + (c % cols) * cell + lay.uniform(0, cell - 2 - side[i]);
    const double y0 = oy + (c / cols) * cell + lay.uniform(0, cell - 2 - side[i]);
    const cv::Matx23d to_frame(k, 0, 0.5 * k + x0 - 0.5, 0, k, 0.5 * k + y0 - 0.5);
    const cv::Rect fp = cv::Rect(cv::Point(static_cast<int>(std::floor(x0)), static_cast<int>(std::floor(y0))),
                                 cv::Point(static_cast<int>(std::ceil(x0 + side[i])), static_cast<int>(std::ceil(y0 + side[i])))) &
                        frame;
    cv::Matx23d local = to_frame;
    local(0, 2) -= fp.x;
    local(1, 2) -= fp.y;
    cv::Mat patch, alpha;
    cv::warpAffine(f.r.image, patch, local, fp.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    cv::warpAffine(f.alpha, alpha, local, fp.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0));
    cv::Mat roi = scene.image(fp);
    for (int y = 0; y < fp.height; ++y) {
      const auto* pr = patch.ptr<cv::Vec3b>(y);
      const auto* ar = alpha.ptr<float>(y);
      auto* out = roi.ptr<cv::Vec3b>(y);
      for (int x = 0; x < fp.width; ++x) {
        const float w = ar[x];
        if (w <= 0) continue;
        for (int ch = 0; ch < 3; ++ch) out[x][ch] = cv::saturate_cast<uchar>(w * pr[x][ch] + (1 - w) * out[x][ch]);
      }
    }

    SceneFace face;
    for (std::size_t p = 0; p < 5; ++p) face.landmarks[p] = apply(to_frame, f.r.landmarks[p]);
    cv::Matx23d from_template;
    cv::invertAffineTransform(f.to_template, from_template);
    for (std::size_t p = 0; p < 4; ++p) face.square[p] = apply(to_frame, apply(from_template, corners[p]));
    face.centre = apply(to_frame, apply(from_template, {55.5, 55.5}));
    face.size = k * f.square;
    double l = 1e30, t = 1e30, r = -1e30, b = -1e30;
    for (const auto& p : face.square) l = std::min(l, p.x), t = std::min(t, p.y), r = std::max(r, p.x), b = std::max(b, p.y);
    face.box = cv::Rect2d(l, t, r - l, b - t);
    face.footprint = fp;
    face.identity = ids[i].index;
    face.nuisance = nuisances[i];
    scene.faces.push_back(face);
  }
  return scene;
}

cv::Point2d landmark_centroid(const Landmarks& l) {
  cv::Point2d c(0, 0);
  for (const auto& p : l) c += p;
  return c * 0.2;
}

MatchResult match_detections(const std::vector<SceneFace>& faces, const std::vector<Detection>& dets,
                             double size_factor) {
  require(size_factor >= 1, "match: size factor must be at least 1, got {}", size_factor);
  MatchResult m;
  m.face_of.assign(dets.size(), -1);
  m.found.assign(faces.size(), false);
  std::vector<std::size_t> order(dets.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return dets[a].score > dets[b].score; });
  for (std::size_t d : order) {
    const cv::Rect2d& box = dets[d].box;
    const double s = std::sqrt(std::max(0.0, box.area()));
    const cv::Point2d mid(box.x + box.width / 2, box.y + box.height / 2);
    int best = -1;
    double best_dist = 1e300;
    for (std::size_t f = 0; f < faces.size(); ++f) {
      if (m.found[f]) continue;
      const cv::Point2d c = landmark_centroid(faces[f].landmarks);
      const bool inside = c.x >= box.x && c.x <= box.x + box.width && c.y >= box.y && c.y <= box.y + box.height;
      if (!inside || s < faces[f].size / size_factor || s > faces[f].size * size_factor) continue;
      const double dist = std::hypot(c.x - mid.x, c.y - mid.y);
      if (dist < best_dist) best = static_cast<int>(f), best_dist = dist;
    }
    if (best >= 0) {
      m.face_of[d] = best;
      m.found[static_cast<std::size_t>(best)] = true;
      ++m.matched;
    } else {
      ++m.false_detections;
    }
  }
  return m;
}

}  // namespace qface::synth
