#include "qface/synth/nuisance.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "qface/core/error.h"

namespace qface::synth {

const char* nuisance_name(int k) {
  static const char* names[kNuisances] = {"pose", "expression", "illumination", "occlusion", "blur",
                                          "noise", "jpeg", "lowres", "clutter"};
  return names[k];
}

const std::array<double, kNuisances>& quality_weights() {
  static const std::array<double, kNuisances> w{0.55, 0.20, 0.45, 0.70, 0.85, 0.50, 0.35, 0.90, 0.05};
  return w;
}

double quality_of(const std::array<double, kNuisances>& s) {
  double q = 1.0;
  for (int k = 0; k < kNuisances; ++k) q *= 1.0 - quality_weights()[k] * std::clamp(s[k], 0.0, 1.0);
  return q;
}

void derive(ImageNuisance& n, Rng& rng) {
  constexpr double kPi = 3.14159265358979323846;
  for (double& v : n.s) v = std::clamp(v, 0.0, 1.0);
  // Pose.
  const double phi = rng.uniform(0, 2 * kPi);
  n.yaw = 50.0 * n.s[kPose] * std::cos(phi);
  n.pitch = 35.0 * n.s[kPose] * std::sin(phi);
  n.roll = rng.normal(0, 8);
  // Expression: random mix, the largest component equals the strength.
  double c[4] = {rng.uniform(), rng.uniform() * 0.8, rng.chance(0.25) ? rng.uniform() : 0.0, rng.uniform() * 0.6};
  const double cmax = std::max({c[0], c[1], c[2], c[3], 1e-9});
  n.smile = n.s[kExpression] * c[0] / cmax;
  n.mouth_open = n.s[kExpression] * c[1] / cmax;
  n.blink = n.s[kExpression] * c[2] / cmax;
  n.brow_raise = n.s[kExpression] * c[3] / cmax;
  // Illumination.
  const double li = n.s[kIllumination];
  const double dir = rng.uniform(0, 2 * kPi);
  const double off = 70.0 * li + rng.uniform(0, 12);
  n.light_azimuth = off * std::cos(dir);
  n.light_elevation = 15.0 + off * 0.6 * std::sin(dir);
  n.light_directional = 0.35 + 0.45 * li;
  n.exposure = 1.0 + (rng.chance(0.6) ? -0.5 : 0.5) * li * rng.uniform(0.5, 1.0);
  const double cast = 0.35 * li * rng.uniform(0.3, 1.0);
  const double hue = rng.uniform(0, 2 * kPi);
  n.light_colour = {1.0 + cast * std::cos(hue), 1.0 + cast * std::cos(hue + 2.094), 1.0 + cast * std::cos(hue + 4.189)};
  // Occlusion (placement drawn whatever the strength, so that the random
  // stream after it does not depend on whether the face is occluded).
  const int occluder = 1 + static_cast<int>(rng.integer(0, 3));
  n.occluder = n.s[kOcclusion] > 0 ? static_cast<Occluder>(occluder) : Occluder::kNone;
  n.occluder_x = rng.uniform(-0.4, 0.4);
  n.occluder_y = rng.uniform(-0.3, 0.5);
  n.occluder_angle = rng.uniform(-0.8, 0.8);
  const double g = rng.uniform(10, 80);
  const double g0 = rng.uniform(0, 60), g1 = rng.uniform(0, 60), g2 = rng.uniform(0, 60);
  n.occluder_colour = {g + g0, g + g1, g + g2};
  // Blur.
  n.blur_kind = rng.chance(0.5) ? BlurKind::kDefocus : BlurKind::kMotion;
  n.blur_extent = (n.blur_kind == BlurKind::kDefocus ? 3.2 : 11.0) * n.s[kBlur];
  n.blur_angle = rng.uniform(0, 180);
  n.noise_sigma = 32.0 * n.s[kNoise];
  n.jpeg_quality = static_cast<int>(std::lround(95.0 - 87.0 * n.s[kJpeg]));
  n.lowres_size = static_cast<int>(std::lround(112.0 * std::pow(8.0 / 112.0, n.s[kLowres])));
  n.detail_seed = rng.next();
}

ImageNuisance sample_nuisance(Rng& rng, const NuisanceOptions& o) {
  ImageNuisance n;
  const double sev = std::clamp(o.severity, 0.0, 1.0);
  for (int k = 0; k < kNuisances; ++k) {
    const double presence = o.presence[k] + (1.0 - o.presence[k]) * sev;
    const double exponent = o.exponent[k] * (1.0 - sev) + 0.5 * sev;
    const bool present = rng.chance(presence);
    const double u = rng.uniform();
    n.s[k] = present ? std::pow(u, exponent) : 0.0;
  }
  if (rng.chance(o.unrecognizable)) {
    // Identity truly gone: one of extreme blur, resolution or occlusion, plus a second nuisance.
    n.unrecognizable = true;
    static const int kinds[3] = {kBlur, kLowres, kOcclusion};
    const int64_t main = rng.integer(0, 2);
    n.s[kinds[main]] = rng.uniform(0.95, 1.0);
    const int other = kinds[(main + rng.integer(1, 2)) % 3];
    n.s[other] = std::max(n.s[other], rng.uniform(0.7, 1.0));
  }
  derive(n, rng);
  return n;
}

ImageNuisance sample_unrecognizable(Rng& rng, const NuisanceOptions& options) {
  NuisanceOptions o = options;
  o.unrecognizable = 1.0;
  return sample_nuisance(rng, o);
}

ImageNuisance sample_nuisance_in_band(Rng& rng, const NuisanceOptions& options, double q_lo, double q_hi) {
  require(q_lo <= q_hi && q_hi > 0 && q_lo < 1, "synth: empty quality band [{}, {}]", q_lo, q_hi);
  NuisanceOptions o = options;
  o.unrecognizable = 0.0;
  // The lower the band, the more severe the distribution we draw from.
  const double mid = 0.5 * (q_lo + q_hi);
  o.severity = std::clamp(1.1 - 1.3 * mid, 0.0, 1.0);
  for (int attempt = 0; attempt < 100000; ++attempt) {
    ImageNuisance n = sample_nuisance(rng, o);
    const double q = n.quality();
    if (q >= q_lo && q <= q_hi) return n;
    // Widen towards more severe draws when the band is hard to hit.
    if (attempt % 200 == 199) o.severity = std::min(1.0, o.severity + (q > q_hi ? 0.1 : -0.1));
  }
  fail("synth: could not draw a nuisance with quality in [{}, {}]", q_lo, q_hi);
}

nlohmann::json nuisance_to_json(const ImageNuisance& n) {
  auto r = [](double v) { return std::round(v * 1e4) / 1e4; };
  nlohmann::json j;
  nlohmann::json s;
  for (int k = 0; k < kNuisances; ++k) s[nuisance_name(k)] = r(n.s[k]);
  j["strength"] = s;
  j["unrecognizable"] = n.unrecognizable;
  j["yaw"] = r(n.yaw);
  j["pitch"] = r(n.pitch);
  j["roll"] = r(n.roll);
  j["smile"] = r(n.smile);
  j["mouth_open"] = r(n.mouth_open);
  j["blink"] = r(n.blink);
  j["brow_raise"] = r(n.brow_raise);
  j["light_azimuth"] = r(n.light_azimuth);
  j["light_elevation"] = r(n.light_elevation);
  j["exposure"] = r(n.exposure);
  static const char* occ[] = {"none", "sunglasses", "mask", "hand", "hair_strand"};
  j["occluder"] = occ[static_cast<int>(n.occluder)];
  j["blur"] = n.blur_kind == BlurKind::kDefocus ? "defocus" : "motion";
  j["blur_extent_px"] = r(n.blur_extent);
  j["noise_sigma"] = r(n.noise_sigma);
  j["jpeg_quality"] = n.jpeg_quality;
  j["lowres_px"] = n.lowres_size;
  return j;
}

}  // namespace qface::synth
