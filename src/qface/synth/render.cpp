#include "qface/synth/render.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "qface/synth/rng.h"

namespace qface::synth {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kShift = 4;  // fillPoly sub-pixel bits
constexpr double kSub = 16.0;

using Bgr = std::array<double, 3>;

cv::Scalar sc(const Bgr& c) { return {c[0], c[1], c[2]}; }
Bgr scale(const Bgr& c, double f) { return {c[0] * f, c[1] * f, c[2] * f}; }
Bgr mixc(const Bgr& a, const Bgr& b, double t) {
  return {a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t};
}

// Smooth value noise on a hashed lattice, in [-1, 1].
double value_noise(uint64_t seed, double x, double y) {
  const double fx = std::floor(x), fy = std::floor(y);
  const auto ix = static_cast<int64_t>(fx), iy = static_cast<int64_t>(fy);
  auto h = [seed](int64_t a, int64_t b) {
    const uint64_t v = mix64(seed ^ (static_cast<uint64_t>(a) * 0x9E3779B1ULL) ^ (static_cast<uint64_t>(b) * 0x85EBCA77ULL << 1));
    return static_cast<double>(v >> 11) * 0x1.0p-52 - 1.0;
  };
  double tx = x - fx, ty = y - fy;
  tx = tx * tx * (3 - 2 * tx);
  ty = ty * ty * (3 - 2 * ty);
  const double a = h(ix, iy), b = h(ix + 1, iy), c = h(ix, iy + 1), d = h(ix + 1, iy + 1);
  return (a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty;
}

// The 3-D face: an ellipsoid head (semi-axes head_w, head_h, head_depth) seen
// by an orthographic camera after yaw / pitch / roll; face-plane points are
// lifted onto its surface. `T` maps projected coordinates to output pixels.
struct Scene {
  const Identity& id;
  const ImageNuisance& n;
  cv::Matx33d R;  // rotation, face -> camera
  cv::Matx23d T;  // projected -> pixels
  cv::Matx23d Tinv;
  double scale = 1;  // pixels per face unit
  cv::Mat fg, mask;  // albedo and coverage

  Scene(const Identity& i, const ImageNuisance& nu) : id(i), n(nu) {
    const double y = nu.yaw * kPi / 180, p = nu.pitch * kPi / 180, r = nu.roll * kPi / 180;
    const cv::Matx33d Ry(std::cos(y), 0, std::sin(y), 0, 1, 0, -std::sin(y), 0, std::cos(y));
    const cv::Matx33d Rx(1, 0, 0, 0, std::cos(p), -std::sin(p), 0, std::sin(p), std::cos(p));
    const cv::Matx33d Rz(std::cos(r), -std::sin(r), 0, std::sin(r), std::cos(r), 0, 0, 0, 1);
    R = Rz * Rx * Ry;
  }

  double surface_z(double x, double y) const {
    const double t = 1.0 - (x / id.head_w) * (x / id.head_w) - (y / id.head_h) * (y / id.head_h);
    return t > 0 ? id.head_depth * std::sqrt(t) : 0.0;
  }
  cv::Vec3d lift(double x, double y, double dz = 0) const { return {x, y, surface_z(x, y) + dz}; }
  cv::Point2d project(const cv::Vec3d& p) const {
    const cv::Vec3d q = R * p;
    return {T(0, 0) * q[0] + T(0, 1) * q[1] + T(0, 2), T(1, 0) * q[0] + T(1, 1) * q[1] + T(1, 2)};
  }
  cv::Point2d proj_raw(const cv::Vec3d& p) const {
    const cv::Vec3d q = R * p;
    return {q[0], q[1]};
  }
  cv::Point2d P(double x, double y, double dz = 0) const { return project(lift(x, y, dz)); }
  // Is the surface at (x, y) facing the camera?
  bool visible(double x, double y) const {
    const double a = id.head_w, b = id.head_h, c = id.head_depth;
    const double z = surface_z(x, y);
    cv::Vec3d nrm(x / (a * a), y / (b * b), z / (c * c));
    return (R * nrm)[2] > 0.02 * cv::norm(nrm);
  }

  std::vector<cv::Point> to_fixed(const std::vector<cv::Point2d>& pts) const {
    std::vector<cv::Point> out;
    out.reserve(pts.size());
    for (const auto& p : pts) out.emplace_back(cvRound(p.x * kSub), cvRound(p.y * kSub));
    return out;
  }
  void fill(const std::vector<cv::Point2d>& pts, const Bgr& colour, bool cover = true) {
    const auto fx = to_fixed(pts);
    const cv::Point* pp = fx.data();
    const int np = static_cast<int>(fx.size());
    cv::fillPoly(fg, &pp, &np, 1, sc(colour), cv::LINE_AA, kShift);
    if (cover) cv::fillPoly(mask, &pp, &np, 1, cv::Scalar(255), cv::LINE_AA, kShift);
  }
  // Alpha-blended polygon (tinted lenses, shadows, stubble).
  void blend(const std::vector<cv::Point2d>& pts, const Bgr& colour, double alpha) {
    const auto fx = to_fixed(pts);
    cv::Rect box = cv::boundingRect(fx);
    box = cv::Rect(box.x / 16 - 2, box.y / 16 - 2, box.width / 16 + 5, box.height / 16 + 5) &
          cv::Rect(0, 0, fg.cols, fg.rows);
    if (box.area() <= 0) return;
    cv::Mat m = cv::Mat::zeros(box.size(), CV_8U);
    std::vector<cv::Point> local;
    for (const auto& p : fx) local.emplace_back(p.x - box.x * 16, p.y - box.y * 16);
    const cv::Point* pp = local.data();
    const int np = static_cast<int>(local.size());
    cv::fillPoly(m, &pp, &np, 1, cv::Scalar(255), cv::LINE_AA, kShift);
    cv::Mat roi = fg(box);
    for (int yy = 0; yy < roi.rows; ++yy) {
      auto* row = roi.ptr<cv::Vec3b>(yy);
      const auto* mr = m.ptr<uchar>(yy);
      for (int xx = 0; xx < roi.cols; ++xx) {
        if (!mr[xx]) continue;
        const double a = alpha * mr[xx] / 255.0;
        for (int ch = 0; ch < 3; ++ch)
          row[xx][ch] = cv::saturate_cast<uchar>(row[xx][ch] * (1 - a) + colour[ch] * a);
      }
    }
  }
  void line(const std::vector<cv::Point2d>& pts, const Bgr& colour, double width_units) {
    const auto fx = to_fixed(pts);
    const int th = std::max(1, static_cast<int>(std::lround(width_units * scale)));
    for (std::size_t i = 1; i < fx.size(); ++i) cv::line(fg, fx[i - 1], fx[i], sc(colour), th, cv::LINE_AA, kShift);
  }
  // Ellipse in the face plane, lifted onto the head.
  std::vector<cv::Point2d> ellipse(double cx, double cy, double rx, double ry, double angle = 0, double dz = 0.005,
                                   int k = 28) const {
    std::vector<cv::Point2d> pts;
    for (int i = 0; i < k; ++i) {
      const double t = 2 * kPi * i / k;
      const double ex = rx * std::cos(t), ey = ry * std::sin(t);
      pts.push_back(P(cx + ex * std::cos(angle) - ey * std::sin(angle), cy + ex * std::sin(angle) + ey * std::cos(angle), dz));
    }
    return pts;
  }
};

// Jaw: x scale of the lower face at height y (superellipse profile, narrower chin).
double jaw_factor(const Identity& id, double y) {
  if (y <= 0) return 1.0;
  const double t = std::min(1.0, y / id.head_h);
  const double ell = std::sqrt(std::max(1e-9, 1 - t * t));
  const double sup = std::pow(std::max(1e-9, 1 - std::pow(t, id.jaw_square)), 1.0 / id.jaw_square);
  return (sup / ell) * (1.0 - (1.0 - id.jaw_width) * t * t);
}

Landmarks face_landmarks_3d(const Scene& s, std::array<cv::Vec3d, 5>& pts) {
  const Identity& id = s.id;
  const double mw = id.mouth_w * (1 + 0.22 * s.n.smile), my = id.mouth_y - 0.035 * s.n.smile;
  pts[0] = s.lift(-id.eye_sep, id.eye_y);
  pts[1] = s.lift(id.eye_sep, id.eye_y);
  pts[2] = s.lift(0, id.nose_y, id.nose_depth);
  pts[3] = s.lift(-mw, my);
  pts[4] = s.lift(mw, my);
  Landmarks raw;
  for (int i = 0; i < 5; ++i) raw[static_cast<std::size_t>(i)] = s.proj_raw(pts[static_cast<std::size_t>(i)]);
  return raw;
}

void draw_background(cv::Mat& bg, const ImageNuisance& n, Rng& rng) {
  const Bgr c0{rng.uniform(30, 230), rng.uniform(30, 230), rng.uniform(30, 230)};
  const Bgr c1{rng.uniform(30, 230), rng.uniform(30, 230), rng.uniform(30, 230)};
  const double ang = rng.uniform(0, 2 * kPi);
  const double ca = std::cos(ang), sa = std::sin(ang);
  for (int y = 0; y < bg.rows; ++y) {
    auto* row = bg.ptr<cv::Vec3b>(y);
    for (int x = 0; x < bg.cols; ++x) {
      const double t = std::clamp(0.5 + ((x - bg.cols / 2.0) * ca + (y - bg.rows / 2.0) * sa) / bg.cols, 0.0, 1.0);
      for (int ch = 0; ch < 3; ++ch) row[x][ch] = cv::saturate_cast<uchar>(c0[ch] + (c1[ch] - c0[ch]) * t);
    }
  }
  const int shapes = static_cast<int>(std::lround(2 + 40 * n.s[kClutter]));
  const double W = bg.cols;
  for (int i = 0; i < shapes; ++i) {
    const cv::Scalar col(rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255));
    const cv::Point p1(static_cast<int>(rng.uniform(0, W)), static_cast<int>(rng.uniform(0, W)));
    const cv::Point p2(static_cast<int>(rng.uniform(0, W)), static_cast<int>(rng.uniform(0, W)));
    switch (rng.integer(0, 3)) {
      case 0: cv::rectangle(bg, p1, p1 + (p2 - p1) / 3, col, -1, cv::LINE_AA); break;
      case 1: cv::circle(bg, p1, static_cast<int>(rng.uniform(3, W / 8)), col, -1, cv::LINE_AA); break;
      case 2: cv::line(bg, p1, p2, col, static_cast<int>(rng.uniform(1, 5)), cv::LINE_AA); break;
      default: {
        // Text-like strokes (signs, posters).
        for (int k = 0; k < 6; ++k)
          cv::line(bg, p1 + cv::Point(k * 6, 0), p1 + cv::Point(k * 6 + 3, -9), col, 2, cv::LINE_AA);
      }
    }
  }
  if (n.s[kClutter] > 0.3) cv::GaussianBlur(bg, bg, cv::Size(0, 0), 0.8);
  else cv::GaussianBlur(bg, bg, cv::Size(0, 0), 2.5);  // plain, out-of-focus background
}

void draw_hair_back(Scene& s) {
  const Identity& id = s.id;
  if (id.hair_style != 3) return;
  std::vector<cv::Point2d> pts;
  const double w = id.head_w * (1.12 + id.hair_volume), top = -id.head_h * (1.0 + id.hair_volume);
  const double bottom = id.head_h * (1.25 + 0.3 * id.genes[3]);
  for (int i = 0; i <= 20; ++i) {
    const double t = kPi + kPi * i / 20.0;
    pts.push_back(s.project({w * std::cos(t), top * -std::sin(t) * -1.0, -0.2}));
  }
  pts.push_back(s.project({w * 1.05, bottom, -0.3}));
  pts.push_back(s.project({-w * 1.05, bottom, -0.3}));
  s.fill(pts, scale(id.hair, 0.8));
}

void draw_neck_and_clothes(Scene& s, Rng& rng) {
  const Identity& id = s.id;
  const double nw = 0.42 * id.head_w;
  s.fill({s.project({-nw, 0.5 * id.head_h, -0.3}), s.project({nw, 0.5 * id.head_h, -0.3}),
          s.project({nw * 1.1, 1.6, -0.3}), s.project({-nw * 1.1, 1.6, -0.3})},
         scale(id.skin, 0.8));
  const Bgr cloth{rng.uniform(20, 220), rng.uniform(20, 220), rng.uniform(20, 220)};
  std::vector<cv::Point2d> c = {s.project({-nw * 1.1, 1.32, -0.35}), s.project({0, 1.45, -0.35}),
                                s.project({nw * 1.1, 1.32, -0.35}), s.project({1.7, 1.6, -0.4}),
                                s.project({1.9, 2.6, -0.4}),        s.project({-1.9, 2.6, -0.4}),
                                s.project({-1.7, 1.6, -0.4})};
  s.fill(c, cloth);
}

void draw_ears(Scene& s) {
  const Identity& id = s.id;
  for (int side : {-1, 1}) {
    std::vector<cv::Point2d> pts;
    for (int i = 0; i < 20; ++i) {
      const double t = 2 * kPi * i / 20;
      const double x = side * (id.head_w * 0.97 + id.ear_size * 0.32 * (1 + std::cos(t)));
      const double y = id.ear_y + id.ear_size * 0.55 * std::sin(t);
      pts.push_back(s.project({x, y, -0.05}));
    }
    s.fill(pts, scale(id.skin, 0.93));
  }
}

std::vector<cv::Point2d> head_outline_3d(const Scene& s) {
  // Convex hull of the projected (jaw-deformed) head surface.
  const Identity& id = s.id;
  std::vector<cv::Point2f> pts;
  for (int i = 0; i <= 16; ++i) {
    const double v = -kPi / 2 + kPi * i / 16;  // latitude
    for (int j = 0; j < 24; ++j) {
      const double u = 2 * kPi * j / 24;
      const double y = id.head_h * std::sin(v);
      double x = id.head_w * std::cos(v) * std::cos(u);
      const double z = id.head_depth * std::cos(v) * std::sin(u);
      x *= jaw_factor(id, y);
      const cv::Point2d p = s.project({x, y, z});
      pts.emplace_back(static_cast<float>(p.x), static_cast<float>(p.y));
    }
  }
  std::vector<cv::Point2f> hull;
  cv::convexHull(pts, hull);
  std::vector<cv::Point2d> out(hull.begin(), hull.end());
  return out;
}

void draw_beard(Scene& s, Rng& rng) {
  const Identity& id = s.id;
  if (id.beard == 0) return;
  const Bgr col = scale(id.hair, 0.9);
  if (id.beard == 1 || id.beard == 3) {
    std::vector<cv::Point2d> pts;
    const double y0 = id.nose_y + 0.05;
    for (int i = 0; i <= 12; ++i) {  // along the jaw, left to right
      const double t = kPi * i / 12.0;
      const double y = y0 + (id.head_h * 0.98 - y0) * std::sin(t);
      const double x = -std::cos(t) * id.head_w * 0.97 * jaw_factor(id, y) * std::sqrt(std::max(0.0, 1 - (y / id.head_h) * (y / id.head_h)));
      pts.push_back(s.P(x, y, 0.003));
    }
    for (int i = 0; i <= 8; ++i) {  // back across under the mouth
      const double t = kPi * i / 8.0;
      pts.push_back(s.P(id.mouth_w * 1.2 * std::cos(t), id.mouth_y + id.lip_lower + 0.05 + 0.04 * std::sin(t), 0.003));
    }
    s.blend(pts, col, id.beard == 1 ? 0.35 : 0.85);
  }
  if (id.beard >= 2) {
    const double y = id.mouth_y - id.lip_upper;
    s.blend({s.P(-id.mouth_w * 1.15, y + 0.03), s.P(-id.mouth_w * 0.6, y - 0.05), s.P(0, y - 0.06),
             s.P(id.mouth_w * 0.6, y - 0.05), s.P(id.mouth_w * 1.15, y + 0.03), s.P(0, y - 0.01)},
            col, 0.9);
  }
  (void)rng;
}

void draw_eyes_and_brows(Scene& s) {
  const Identity& id = s.id;
  const double open = std::max(0.06, 1.0 - 0.92 * s.n.blink);
  for (int side : {-1, 1}) {
    const double cx = side * id.eye_sep, cy = id.eye_y;
    if (!s.visible(cx, cy)) continue;
    const double tilt = -side * id.eye_tilt;  // outer corner up for positive tilt
    auto at = [&](double ex, double ey) {
      return s.P(cx + ex * std::cos(tilt) - ey * std::sin(tilt), cy + ex * std::sin(tilt) + ey * std::cos(tilt), 0.004);
    };
    // Eye socket shadow.
    std::vector<cv::Point2d> socket;
    for (int i = 0; i < 24; ++i) {
      const double t = 2 * kPi * i / 24;
      socket.push_back(at(id.eye_w * 1.25 * std::cos(t), -0.01 + id.eye_h * 1.6 * std::sin(t)));
    }
    s.blend(socket, scale(id.skin, 0.72), 0.35);
    std::vector<cv::Point2d> almond, upper;
    const int K = 16;
    for (int i = 0; i <= K; ++i) {
      const double t = static_cast<double>(i) / K, ex = -id.eye_w + 2 * id.eye_w * t;
      const double skew = 1.0 + 0.25 * side * (t - 0.5);
      almond.push_back(at(ex, -id.eye_h * open * std::sin(kPi * t) * skew));
      upper.push_back(almond.back());
    }
    for (int i = K - 1; i >= 1; --i) {
      const double t = static_cast<double>(i) / K, ex = -id.eye_w + 2 * id.eye_w * t;
      almond.push_back(at(ex, id.eye_h * 0.75 * open * std::sin(kPi * t)));
    }
    s.fill(almond, {225, 232, 238}, false);
    if (open > 0.2) {
      // Iris and pupil, clipped to the almond by redrawing the lids afterwards.
      const double look = 0.012 * std::sin(static_cast<double>(s.n.detail_seed % 628) / 100.0);
      std::vector<cv::Point2d> iris, pupil;
      for (int i = 0; i < 24; ++i) {
        const double t = 2 * kPi * i / 24;
        iris.push_back(at(look + id.iris_r * std::cos(t), id.iris_r * std::sin(t) * 0.98));
        pupil.push_back(at(look + id.iris_r * 0.42 * std::cos(t), id.iris_r * 0.42 * std::sin(t)));
      }
      s.fill(iris, id.iris, false);
      s.fill(pupil, {12, 12, 14}, false);
      // Lids: skin ring between the almond and a larger ellipse.
      std::vector<cv::Point2d> lid_top = upper, lid_bot;
      for (int i = K; i >= 0; --i) {
        const double t = static_cast<double>(i) / K, ex = -id.eye_w * 1.3 + 2.6 * id.eye_w * t;
        lid_top.push_back(at(ex, -id.eye_h * 2.2 * std::sin(kPi * t) - 0.01));
      }
      s.fill(lid_top, scale(id.skin, 0.9), false);
      for (int i = 0; i <= K; ++i) {
        const double t = static_cast<double>(i) / K, ex = -id.eye_w + 2 * id.eye_w * t;
        lid_bot.push_back(at(ex, id.eye_h * 0.75 * open * std::sin(kPi * t)));
      }
      for (int i = K; i >= 0; --i) {
        const double t = static_cast<double>(i) / K, ex = -id.eye_w * 1.3 + 2.6 * id.eye_w * t;
        lid_bot.push_back(at(ex, id.eye_h * 2.0 * std::sin(kPi * t) + 0.01));
      }
      s.fill(lid_bot, scale(id.skin, 0.95), false);
    }
    // Lash line and crease.
    s.line(upper, {25, 22, 25}, 0.014);
    std::vector<cv::Point2d> crease;
    for (int i = 2; i <= K - 2; ++i) {
      const double t = static_cast<double>(i) / K, ex = -id.eye_w + 2 * id.eye_w * t;
      crease.push_back(at(ex, -id.eye_h * open * std::sin(kPi * t) - 0.03));
    }
    s.line(crease, scale(id.skin, 0.7), 0.008);
    // Brow.
    const double by = cy - id.eye_h - id.brow_gap - 0.05 * s.n.brow_raise;
    std::vector<cv::Point2d> brow;
    const double bx0 = side * (id.eye_sep - id.brow_len * 0.45), bx1 = side * (id.eye_sep + id.brow_len * 0.55);
    for (int i = 0; i <= 10; ++i) {
      const double t = i / 10.0;
      const double x = bx0 + (bx1 - bx0) * t;
      const double y = by - id.brow_arch * std::sin(kPi * t) - id.brow_tilt * (t - 0.5) * 0.2;
      brow.push_back(s.P(x, y - id.brow_thick * (1.0 - 0.5 * t), 0.006));
    }
    for (int i = 10; i >= 0; --i) {
      const double t = i / 10.0;
      const double x = bx0 + (bx1 - bx0) * t;
      const double y = by - id.brow_arch * std::sin(kPi * t) - id.brow_tilt * (t - 0.5) * 0.2;
      brow.push_back(s.P(x, y + id.brow_thick * 0.5 * (1.0 - 0.4 * t), 0.006));
    }
    s.fill(brow, mixc(scale(id.hair, 0.75), id.skin, 0.15), false);
  }
}

void draw_nose(Scene& s, const cv::Vec3d& light) {
  const Identity& id = s.id;
  const double ny = id.nose_y, nw = id.nose_w;
  // Side shadow on the side away from the light (in face coordinates).
  const double lx = light[0];
  const int dark_side = lx > 0 ? -1 : 1;
  const double shade = 0.15 + 0.35 * std::min(1.0, std::abs(lx) * 1.5);
  s.blend({s.P(0, id.eye_y + 0.06, 0.02), s.P(dark_side * id.bridge_w, id.eye_y + 0.08, 0.01),
           s.P(dark_side * nw * 1.05, ny + 0.01, 0.04), s.P(0, ny, id.nose_depth)},
          scale(id.skin, 0.55), shade);
  // Under-nose shadow and wings.
  std::vector<cv::Point2d> base;
  for (int i = 0; i <= 12; ++i) {
    const double t = kPi * i / 12.0;
    base.push_back(s.P(-nw * std::cos(t), ny + 0.02 + 0.035 * std::sin(t), 0.06 + 0.1 * std::sin(t)));
  }
  s.blend(base, scale(id.skin, 0.6), 0.55);
  for (int side : {-1, 1}) {
    s.fill(s.ellipse(side * nw * 0.45, ny + 0.035, nw * 0.28, 0.018, side * 0.3, 0.09, 16), scale(id.skin, 0.3), false);
    std::vector<cv::Point2d> wing;
    for (int i = 0; i <= 8; ++i) {
      const double t = -kPi / 2 + kPi * i / 8.0;
      wing.push_back(s.P(side * (nw * 0.75 + 0.03 * std::cos(t)), ny + 0.01 + 0.04 * std::sin(t), 0.07));
    }
    s.line(wing, scale(id.skin, 0.55), 0.01);
  }
  // Tip highlight.
  s.blend(s.ellipse(0, ny - 0.02, nw * 0.35, 0.03, 0, id.nose_depth * 0.9, 14), scale(id.skin, 1.15), 0.5);
}

void draw_mouth(Scene& s) {
  const Identity& id = s.id;
  const double smile = s.n.smile, open = s.n.mouth_open;
  const double mw = id.mouth_w * (1 + 0.22 * smile), my = id.mouth_y;
  const double lift = 0.035 * smile, drop = 0.08 * open;
  auto line_y = [&](double t) { return my - lift * std::pow(std::abs(2 * t - 1), 2) + 0.01 * smile; };
  std::vector<cv::Point2d> upper, lower, inner;
  const int K = 16;
  for (int i = 0; i <= K; ++i) {  // upper lip top edge, cupid's bow
    const double t = static_cast<double>(i) / K, x = -mw + 2 * mw * t;
    const double bow = 1.0 - 0.35 * std::exp(-std::pow((t - 0.5) / 0.06, 2));
    upper.push_back(s.P(x, line_y(t) - id.lip_upper * std::sin(kPi * t) * bow - drop * 0.1 * std::sin(kPi * t)));
  }
  for (int i = K; i >= 0; --i) {
    const double t = static_cast<double>(i) / K, x = -mw + 2 * mw * t;
    upper.push_back(s.P(x, line_y(t) - drop * 0.1 * std::sin(kPi * t)));
  }
  for (int i = 0; i <= K; ++i) {
    const double t = static_cast<double>(i) / K, x = -mw + 2 * mw * t;
    lower.push_back(s.P(x, line_y(t) + drop * std::sin(kPi * t)));
  }
  for (int i = K; i >= 0; --i) {
    const double t = static_cast<double>(i) / K, x = -mw + 2 * mw * t;
    lower.push_back(s.P(x, line_y(t) + drop * std::sin(kPi * t) + id.lip_lower * std::sin(kPi * t)));
  }
  if (open > 0.05) {
    for (int i = 0; i <= K; ++i) {
      const double t = static_cast<double>(i) / K, x = -mw * 0.95 + 1.9 * mw * t;
      inner.push_back(s.P(x, line_y(t) - drop * 0.1 * std::sin(kPi * t)));
    }
    for (int i = K; i >= 0; --i) {
      const double t = static_cast<double>(i) / K, x = -mw * 0.95 + 1.9 * mw * t;
      inner.push_back(s.P(x, line_y(t) + drop * std::sin(kPi * t)));
    }
    s.fill(inner, {30, 25, 60}, false);
    std::vector<cv::Point2d> teeth;
    for (int i = 0; i <= K; ++i) {
      const double t = static_cast<double>(i) / K, x = -mw * 0.7 + 1.4 * mw * t;
      teeth.push_back(s.P(x, line_y(t)));
    }
    for (int i = K; i >= 0; --i) {
      const double t = static_cast<double>(i) / K, x = -mw * 0.7 + 1.4 * mw * t;
      teeth.push_back(s.P(x, line_y(t) + std::min(0.03, drop * 0.45) * std::sin(kPi * t)));
    }
    s.fill(teeth, {215, 225, 230}, false);
  }
  s.fill(upper, scale(id.lip, 0.92), false);
  s.fill(lower, id.lip, false);
  std::vector<cv::Point2d> seam;
  for (int i = 0; i <= K; ++i) {
    const double t = static_cast<double>(i) / K;
    seam.push_back(s.P(-mw + 2 * mw * t, line_y(t) - drop * 0.1 * std::sin(kPi * t)));
  }
  s.line(seam, scale(id.lip, 0.45), 0.008);
  // Chin shadow.
  s.blend(s.ellipse(0, my + id.lip_lower + 0.09, mw * 0.6, 0.03, 0, 0.005, 16), scale(id.skin, 0.8), 0.25);
}

void draw_marks(Scene& s) {
  const Identity& id = s.id;
  for (const Mark& m : id.moles)
    if (s.visible(m.x, m.y)) s.fill(s.ellipse(m.x, m.y, m.r, m.r * 0.9, 0, 0.005, 12), {30, 40, 60}, false);
  if (id.scar) {
    std::vector<cv::Point2d> pts;
    for (int i = 0; i <= 6; ++i) {
      const double t = i / 6.0;
      pts.push_back(s.P(id.scar_x0 + (id.scar_x1 - id.scar_x0) * t, id.scar_y0 + (id.scar_y1 - id.scar_y0) * t, 0.005));
    }
    s.line(pts, {120, 130, 205}, 0.012);
  }
  if (id.freckles > 0) {
    Rng fr(id.texture_seed ^ 0xf7ec1e5ULL);
    const int count = static_cast<int>(10 + 50 * id.freckles);
    for (int i = 0; i < count; ++i) {
      const double x = fr.uniform(-0.45, 0.45), y = id.nose_y + fr.normal(0, 0.08);
      if (s.visible(x, y)) s.blend(s.ellipse(x, y, 0.009, 0.009, 0, 0.005, 8), scale(id.skin, 0.7), 0.6);
    }
  }
  if (id.blush > 0.6)
    for (int side : {-1, 1})
      if (s.visible(side * 0.42, id.nose_y))
        s.blend(s.ellipse(side * 0.42 * id.head_w / 0.8, id.nose_y, 0.13, 0.08, 0, 0.005, 20),
                {id.skin[0] * 0.85, id.skin[1] * 0.8, std::min(255.0, id.skin[2] * 1.05)}, 0.3 * (id.blush - 0.6) / 0.4);
}

void draw_hair_front(Scene& s) {
  const Identity& id = s.id;
  const double w = id.head_w, h = id.head_h;
  const double vol = id.hair_style == 0 ? 0.015 : id.hair_volume * (id.hair_style == 5 ? 1.6 : 1.0);
  const double side_bottom = id.hair_style == 3 ? h * 0.7 : id.ear_y - 0.12;
  std::vector<cv::Point2d> pts;
  // Outer boundary: from the left side bottom, over the top, to the right side bottom.
  const int K = 36;
  for (int i = 0; i <= K; ++i) {
    const double t = kPi + kPi * i / K;  // pi .. 2 pi (top half)
    double r = 1.0 + vol;
    if (id.hair_style == 5) r += 0.05 * std::abs(std::sin(7 * t));
    const double x = w * r * std::cos(t), y = h * r * std::sin(t);
    pts.push_back(s.project({x, y, std::max(0.0, id.head_depth * 0.3 * -std::sin(t)) * 0.0 + 0.0}));
  }
  pts.push_back(s.project({w * (1.0 + vol * 0.6), side_bottom, 0.0}));
  // Inner boundary (hairline), right to left.
  const double temple_y = id.ear_y - 0.12;
  const int M = 20;
  for (int i = 0; i <= M; ++i) {
    const double t = static_cast<double>(i) / M;  // 0 right temple .. 1 left temple
    const double x = w * 0.97 * std::cos(kPi * t);
    double y;
    if (id.hair_style == 4) {  // bangs: a fringe down to the brows, jagged
      y = id.eye_y - id.eye_h - id.brow_gap - 0.05 + 0.03 * std::sin(kPi * t * 9) * (i % 2 ? 1 : -1);
      y = std::min(y, temple_y + (id.hairline - temple_y) * std::sin(kPi * t) + 0.6);
    } else {
      const double part_shift = id.hair_style == 2 ? 0.08 * std::sin(kPi * (t - 0.5 + id.part * 0.3)) : 0.0;
      y = temple_y + (id.hairline - temple_y) * std::pow(std::sin(kPi * t), 0.6) + part_shift;
    }
    if (i == 0 || i == M) y = side_bottom;
    pts.push_back(s.P(x, y, 0.01));
  }
  pts.push_back(s.project({-w * (1.0 + vol * 0.6), side_bottom, 0.0}));
  if (id.hair_style == 0) s.blend(pts, mixc(id.hair, id.skin, 0.35), 0.75);
  else s.fill(pts, id.hair);
  // Strands: texture lines in a darker tone, from the identity's seed.
  if (id.hair_style != 0) {
    Rng hr(id.texture_seed ^ 0x4a1eULL);
    const int strands = 18;
    for (int i = 0; i < strands; ++i) {
      const double t = hr.uniform(0.1, 0.9);
      const double x0 = w * 0.9 * std::cos(kPi * (1 + t)) * 0.95, y0 = h * (1 + vol * 0.5) * std::sin(kPi * (1 + t));
      const double x1 = x0 * 0.6 + (id.part * 0.3), y1 = id.hairline * 0.9;
      std::vector<cv::Point2d> l = {s.project({x0, y0, 0.0}), s.P((x0 + x1) / 2, (y0 + y1) / 2 - 0.05, 0.02),
                                    s.P(x1, y1, 0.02)};
      s.line(l, scale(id.hair, hr.chance(0.5) ? 0.7 : 1.25), 0.008);
    }
    if (id.hair_style == 2) {
      const double px = id.part * w * 0.6;
      s.line({s.project({px, -h * (1 + vol), 0.0}), s.P(px * 1.1, id.hairline - 0.05, 0.02)}, scale(id.hair, 0.55), 0.012);
    }
  }
}

void draw_occluder(Scene& s) {
  const Identity& id = s.id;
  const ImageNuisance& n = s.n;
  const double st = n.s[kOcclusion];
  switch (n.occluder) {
    case Occluder::kNone: return;
    case Occluder::kSunglasses: {
      const double r = 0.07 + 0.08 * st;
      for (int side : {-1, 1}) {
        auto lens = s.ellipse(side * id.eye_sep, id.eye_y + 0.01, r * 1.25, r, 0, 0.05, 24);
        s.blend(lens, n.occluder_colour, 0.25 + 0.75 * st);
        lens.push_back(lens.front());
        s.line(lens, {20, 20, 20}, 0.012);
      }
      s.line({s.P(-id.eye_sep + r * 1.2, id.eye_y - 0.02, 0.06), s.P(0, id.eye_y - 0.04, 0.2),
              s.P(id.eye_sep - r * 1.2, id.eye_y - 0.02, 0.06)},
             {20, 20, 20}, 0.014);
      return;
    }
    case Occluder::kMask: {
      const double top = id.mouth_y - 0.06 + (id.eye_y + id.eye_h + 0.06 - (id.mouth_y - 0.06)) * st;
      std::vector<cv::Point2d> pts;
      const double bottom = id.head_h * 0.97;
      for (int i = 0; i <= 12; ++i) {
        const double t = static_cast<double>(i) / 12.0;
        const double x = -id.head_w * 0.92 + 1.84 * id.head_w * t;
        pts.push_back(s.P(x, top + 0.04 * std::sin(kPi * t) * -1.0, 0.03));
      }
      for (int i = 12; i >= 0; --i) {
        const double t = kPi * i / 12.0;
        const double y = top + (bottom - top) * std::sin(t);
        const double x = -std::cos(t) * id.head_w * 0.92 * jaw_factor(id, y) *
                         std::sqrt(std::max(0.05, 1 - (y / id.head_h) * (y / id.head_h)));
        pts.push_back(s.P(x, y, 0.03));
      }
      const Bgr col = {std::min(255.0, n.occluder_colour[0] + 150), std::min(255.0, n.occluder_colour[1] + 140),
                       std::min(255.0, n.occluder_colour[2] + 120)};
      s.fill(pts, col, false);
      return;
    }
    case Occluder::kHand: {
      const double r = 0.12 + 0.38 * st;
      const Bgr skin = {std::min(255.0, id.skin[0] * 0.9 + 20), std::min(255.0, id.skin[1] * 0.9 + 15),
                        std::min(255.0, id.skin[2] * 0.95 + 10)};
      const double cx = n.occluder_x * id.head_w, cy = n.occluder_y;
      s.fill(s.ellipse(cx, cy, r, r * 0.8, n.occluder_angle, 0.25, 28), skin, false);
      for (int f = 0; f < 4; ++f) {
        const double a = n.occluder_angle - 1.2 + 0.3 * f;
        s.fill(s.ellipse(cx + r * 1.1 * std::cos(a), cy + r * 1.1 * std::sin(a), r * 0.5, r * 0.14, a, 0.25, 16),
               scale(skin, 0.97), false);
      }
      return;
    }
    case Occluder::kHairStrand: {
      const double half = 0.03 + 0.2 * st;
      const double a = n.occluder_angle + kPi / 2;
      const double dx = std::cos(a), dy = std::sin(a);
      const double cx = n.occluder_x * id.head_w, cy = n.occluder_y - 0.2;
      const double L = 1.4;
      std::vector<cv::Point2d> pts = {s.P(cx - dx * L - dy * half, cy - dy * L + dx * half, 0.05),
                                      s.P(cx + dx * L - dy * half, cy + dy * L + dx * half, 0.05),
                                      s.P(cx + dx * L + dy * half, cy + dy * L - dx * half, 0.05),
                                      s.P(cx - dx * L + dy * half, cy - dy * L - dx * half, 0.05)};
      s.fill(pts, id.hair, false);
      return;
    }
  }
}

// Lambertian shading of the ellipsoid head plus skin texture, then composite.
cv::Mat shade_and_composite(Scene& s, const cv::Mat& bg, const cv::Vec3d& light_cam) {
  const Identity& id = s.id;
  const ImageNuisance& n = s.n;
  const cv::Matx33d Rt = s.R.t();
  const double a = id.head_w, b = id.head_h, c = id.head_depth;
  const cv::Matx33d A(1 / (a * a), 0, 0, 0, 1 / (b * b), 0, 0, 0, 1 / (c * c));
  const cv::Matx33d M = s.R * A * Rt;
  const double ambient = 1.0 - n.light_directional;
  const double dir = n.light_directional;
  cv::Mat out(bg.size(), CV_8UC3);
  // Texture lattice frequency in face units.
  const double freq = id.texture_freq;
  const uint64_t tseed = id.texture_seed;
  for (int y = 0; y < out.rows; ++y) {
    const auto* fr = s.fg.ptr<cv::Vec3b>(y);
    const auto* mr = s.mask.ptr<uchar>(y);
    const auto* br = bg.ptr<cv::Vec3b>(y);
    auto* orow = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < out.cols; ++x) {
      const double alpha = mr[x] / 255.0;
      double bgv[3];
      for (int ch = 0; ch < 3; ++ch) bgv[ch] = br[x][ch] * (0.75 + 0.25 * n.exposure) * (0.8 + 0.2 * n.light_colour[ch]);
      if (alpha <= 0) {
        for (int ch = 0; ch < 3; ++ch) orow[x][ch] = cv::saturate_cast<uchar>(bgv[ch]);
        continue;
      }
      // Pixel -> projected coordinates -> ray hit on the ellipsoid.
      const double u = s.Tinv(0, 0) * x + s.Tinv(0, 1) * y + s.Tinv(0, 2);
      const double v = s.Tinv(1, 0) * x + s.Tinv(1, 1) * y + s.Tinv(1, 2);
      const double qa = M(2, 2), qb = 2 * (M(0, 2) * u + M(1, 2) * v),
                   qc = M(0, 0) * u * u + 2 * M(0, 1) * u * v + M(1, 1) * v * v - 1;
      const double disc = qb * qb - 4 * qa * qc;
      cv::Vec3d nrm;
      double tex = 0;
      if (disc > 0) {
        const double t = (-qb + std::sqrt(disc)) / (2 * qa);
        const cv::Vec3d p(u, v, t);
        nrm = M * p;
        const cv::Vec3d q = Rt * p;  // face coordinates
        tex = value_noise(tseed, q[0] * freq, q[1] * freq) * 0.7 + value_noise(tseed + 1, q[0] * freq * 3, q[1] * freq * 3) * 0.3;
      } else {
        nrm = cv::Vec3d(M(0, 0) * u + M(0, 1) * v, M(1, 0) * u + M(1, 1) * v, 0);
        const double l = cv::norm(nrm);
        if (l > 0) nrm *= 1.0 / l;
        nrm[2] = 0.35;
      }
      nrm *= 1.0 / std::max(1e-9, cv::norm(nrm));
      const double lambert = std::max(0.0, nrm.dot(light_cam));
      // Blinn-Phong highlight, viewer along +z.
      cv::Vec3d hv = light_cam + cv::Vec3d(0, 0, 1);
      hv *= 1.0 / std::max(1e-9, cv::norm(hv));
      const double c1 = std::max(0.0, nrm.dot(hv)), c3 = c1 * c1 * c1, c6 = c3 * c3, c12 = c6 * c6;
      const double spec = 0.10 * dir * c12 * c12;  // Blinn-Phong exponent 24
      const double shade = (ambient + dir * 1.25 * lambert) * n.exposure * (1.0 + id.texture_amp * tex);
      for (int ch = 0; ch < 3; ++ch) {
        const double f = fr[x][ch] * shade * n.light_colour[ch] + 255.0 * spec * n.exposure;
        orow[x][ch] = cv::saturate_cast<uchar>(f * alpha + bgv[ch] * (1 - alpha));
      }
    }
  }
  return out;
}

Rendered render(const Identity& id, const ImageNuisance& n, int out_size, const cv::Matx23d* extra, int final_size) {
  Scene s(id, n);
  Rng rng(n.detail_seed);
  // Landmarks and the alignment transform (projected -> output pixels).
  std::array<cv::Vec3d, 5> lm3;
  const Landmarks raw = face_landmarks_3d(s, lm3);
  const double up = static_cast<double>(out_size) / final_size;
  // Alignment in output pixels, then (optionally) the loose-crop placement,
  // then output -> high-resolution pixels (pixel centres: h = (f + 0.5) up - 0.5).
  cv::Matx23d A = data::similarity_transform(raw, data::face_template());
  auto to3 = [](const cv::Matx23d& m) {
    return cv::Matx33d(m(0, 0), m(0, 1), m(0, 2), m(1, 0), m(1, 1), m(1, 2), 0, 0, 1);
  };
  cv::Matx33d F = to3(A);
  if (extra) F = to3(*extra) * F;
  const cv::Matx33d H(up, 0, 0.5 * (up - 1), 0, up, 0.5 * (up - 1), 0, 0, 1);
  const cv::Matx33d C = H * F;
  const cv::Matx23d T(C(0, 0), C(0, 1), C(0, 2), C(1, 0), C(1, 1), C(1, 2));
  s.T = T;
  cv::invertAffineTransform(T, s.Tinv);
  s.scale = std::sqrt(std::abs(T(0, 0) * T(1, 1) - T(0, 1) * T(1, 0)));
  s.fg = cv::Mat(out_size, out_size, CV_8UC3, cv::Scalar(0, 0, 0));
  s.mask = cv::Mat::zeros(out_size, out_size, CV_8U);

  cv::Mat bg(out_size, out_size, CV_8UC3);
  draw_background(bg, n, rng);

  // Light direction in camera coordinates (azimuth around y, elevation up).
  const double az = n.light_azimuth * kPi / 180, el = n.light_elevation * kPi / 180;
  const cv::Vec3d light_cam(std::sin(az) * std::cos(el), -std::sin(el), std::cos(az) * std::cos(el));
  const cv::Vec3d light_face = s.R.t() * light_cam;

  draw_neck_and_clothes(s, rng);
  draw_hair_back(s);
  draw_ears(s);
  s.fill(head_outline_3d(s), id.skin);
  draw_beard(s, rng);
  draw_marks(s);
  draw_nose(s, light_face);
  draw_eyes_and_brows(s);
  draw_mouth(s);
  draw_hair_front(s);
  draw_occluder(s);

  cv::Mat hi = shade_and_composite(s, bg, light_cam);
  Rendered r;
  cv::resize(hi, r.image, cv::Size(final_size, final_size), 0, 0, cv::INTER_AREA);
  for (int i = 0; i < 5; ++i) {
    const cv::Point2d p = s.project(lm3[static_cast<std::size_t>(i)]);
    // Pixel centres: output pixel k covers high-res pixels [k*up, (k+1)*up).
    r.landmarks[static_cast<std::size_t>(i)] = cv::Point2d((p.x + 0.5) / up - 0.5, (p.y + 0.5) / up - 0.5);
  }

  // Degradations at the output size, in capture order: blur, resolution, noise, JPEG.
  cv::Mat& img = r.image;
  const double fs = final_size / 112.0;
  if (n.s[kBlur] > 0) {
    if (n.blur_kind == BlurKind::kDefocus) {
      cv::GaussianBlur(img, img, cv::Size(0, 0), std::max(0.05, n.blur_extent * fs));
    } else {
      const double len = std::max(1.0, n.blur_extent * fs);
      const int k = static_cast<int>(std::ceil(len)) | 1;
      cv::Mat kernel = cv::Mat::zeros(k, k, CV_32F);
      const double a = n.blur_angle * kPi / 180;
      const cv::Point2d c((k - 1) / 2.0, (k - 1) / 2.0), d(std::cos(a) * (len - 1) / 2, std::sin(a) * (len - 1) / 2);
      cv::line(kernel, cv::Point(cvRound((c.x - d.x) * 16), cvRound((c.y - d.y) * 16)),
               cv::Point(cvRound((c.x + d.x) * 16), cvRound((c.y + d.y) * 16)), cv::Scalar(1.0), 1, cv::LINE_AA, 4);
      kernel.at<float>(k / 2, k / 2) += 1e-3f;  // never an empty kernel
      kernel /= cv::sum(kernel)[0];
      cv::filter2D(img, img, -1, kernel, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
    }
  }
  if (n.s[kLowres] > 0) {
    const int small = std::max(4, static_cast<int>(std::lround(n.lowres_size * fs)));
    if (small < final_size) {
      static const int interps[3] = {cv::INTER_LINEAR, cv::INTER_CUBIC, cv::INTER_NEAREST};
      cv::Mat lo;
      cv::resize(img, lo, cv::Size(small, small), 0, 0, cv::INTER_AREA);
      cv::resize(lo, img, img.size(), 0, 0, interps[rng.integer(0, 2)]);
    }
  }
  if (n.noise_sigma > 0) {
    const double chroma = rng.uniform(0.2, 0.6);
    Rng frame_rng(n.noise_seed);
    Rng& nr = n.noise_seed != 0 ? frame_rng : rng;  // 0: the stills' stream, unchanged
    for (int y = 0; y < img.rows; ++y) {
      auto* row = img.ptr<cv::Vec3b>(y);
      for (int x = 0; x < img.cols; ++x) {
        const double lum = nr.normal() * n.noise_sigma;
        for (int ch = 0; ch < 3; ++ch)
          row[x][ch] = cv::saturate_cast<uchar>(row[x][ch] + lum * (1 - chroma) + nr.normal() * n.noise_sigma * chroma);
      }
    }
  }
  if (n.s[kJpeg] > 0) {
    std::vector<uchar> buf;
    cv::imencode(".jpg", img, buf, {cv::IMWRITE_JPEG_QUALITY, n.jpeg_quality});
    img = cv::imdecode(buf, cv::IMREAD_COLOR);
  }
  return r;
}

}  // namespace

Rendered render_aligned(const Identity& id, const ImageNuisance& n) { return render(id, n, 224, nullptr, 112); }

Rendered render_loose(const Identity& id, const ImageNuisance& n, int size) {
  // Place the aligned 112 frame inside a size x size crop: scale, shift and the roll.
  Rng rng(n.detail_seed ^ 0x1005eULL);
  const double sc = size / 112.0 * rng.uniform(0.55, 0.8);
  const double ang = n.roll * kPi / 180;
  const double ca = sc * std::cos(ang), sa = sc * std::sin(ang);
  const cv::Point2d c(56, 60), target(size / 2.0 + rng.uniform(-0.08, 0.08) * size, size / 2.0 + rng.uniform(-0.08, 0.08) * size);
  const cv::Matx23d E(ca, -sa, target.x - (ca * c.x - sa * c.y), sa, ca, target.y - (sa * c.x + ca * c.y));
  return render(id, n, size * 2, &E, size);
}

}  // namespace qface::synth
