// Per-image nuisances and the ground-truth quality formula.
//
// Each nuisance has a strength s_k in [0, 1] (0 = absent, 1 = as bad as the
// generator makes it); the physical values (angles, blur extent, noise sigma,
// JPEG quality, resolution, ...) are functions of the strengths and of a few
// random directions that do not change how bad the image is:
//
//   pose          yaw = 50 deg * s cos(phi), pitch = 35 deg * s sin(phi)   (roll: free, undone by alignment)
//   expression    smile / mouth-open / blink / brow-raise, the largest = s
//   illumination  light off-axis angle 70 deg * s, directional share 0.35 + 0.45 s,
//                 exposure x (1 +- 0.5 s), colour cast 0.35 s
//   occlusion     sunglasses / mask / hand / hair strand covering a share growing with s
//   blur          defocus sigma 3.2 s px, or motion length 11 s px (at 112 x 112)
//   noise         Gaussian sensor noise sigma 32 s (8-bit levels), partly chromatic
//   jpeg          JPEG quality 95 - 87 s
//   lowres        down-sampled to 112 * (8/112)^s px, then back up
//   clutter       background clutter density (touches the face only at its border)
//
// Ground-truth quality:  q = prod_k (1 - w_k * s_k),  in [0, 1], with weights
//   pose 0.55, expression 0.20, illumination 0.45, occlusion 0.70, blur 0.85,
//   noise 0.50, jpeg 0.35, lowres 0.90, clutter 0.05.
// q falls strictly as any strength rises (every factor is positive).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "qface/synth/rng.h"

namespace qface::synth {

enum Nuisance : int { kPose, kExpression, kIllumination, kOcclusion, kBlur, kNoise, kJpeg, kLowres, kClutter, kNuisances };

const char* nuisance_name(int k);

// Weights w_k of the quality formula (see above).
const std::array<double, kNuisances>& quality_weights();

// q = prod_k (1 - w_k s_k).
double quality_of(const std::array<double, kNuisances>& strengths);

enum class Occluder : int { kNone, kSunglasses, kMask, kHand, kHairStrand };
enum class BlurKind : int { kDefocus, kMotion };

// Everything that varies per image: strengths plus the random directions.
struct ImageNuisance {
  std::array<double, kNuisances> s{};
  bool unrecognizable = false;
  // Derived physical values (filled by derive()).
  double yaw = 0, pitch = 0, roll = 0;             // degrees
  double smile = 0, mouth_open = 0, blink = 0, brow_raise = 0;
  double light_azimuth = 0, light_elevation = 0;   // degrees, 0/0 = frontal
  double light_directional = 0.35, exposure = 1.0;
  std::array<double, 3> light_colour{1, 1, 1};     // BGR gains
  Occluder occluder = Occluder::kNone;
  double occluder_x = 0, occluder_y = 0, occluder_angle = 0;  // hand / strand placement
  std::array<double, 3> occluder_colour{0, 0, 0};
  BlurKind blur_kind = BlurKind::kDefocus;
  double blur_extent = 0, blur_angle = 0;          // px at 112: sigma or motion length
  double noise_sigma = 0;
  int jpeg_quality = 95;
  int lowres_size = 112;
  uint64_t detail_seed = 0;                        // background, noise pattern, clothing
  // Sensor-noise pattern of one video frame (frames of a video share detail_seed:
  // same scene and clothing, fresh noise). 0: drawn from detail_seed's stream (stills).
  uint64_t noise_seed = 0;

  double quality() const { return quality_of(s); }
};

// Fills the physical values of `n` from its strengths, drawing directions from `rng`.
void derive(ImageNuisance& n, Rng& rng);

// The knobs of docs/method.md, Synthetic data: how strengths are drawn for
// training-like ("web-crawled") data.
struct NuisanceOptions {
  // Per nuisance: probability it is present, and the exponent a of s = u^a
  // (u uniform): a > 1 puts most mass near 0 (mostly good, long bad tail).
  // Defaults give a unimodal quality distribution with a long low tail
  // (median ~0.72, ~9 % below 0.3, ~23 % below 0.5), like crawled sets.
  std::array<double, kNuisances> presence{0.8, 0.5, 0.7, 0.08, 0.25, 0.25, 0.45, 0.18, 0.6};
  std::array<double, kNuisances> exponent{4.0, 3.0, 4.0, 2.0, 4.0, 4.0, 3.0, 4.0, 1.0};
  // Share of images made unrecognizable (extreme blur, resolution or occlusion).
  double unrecognizable = 0.03;
  // Severity in [0, 1] shifts the whole distribution towards bad images
  // (presence -> 1, exponent -> 0.5); used for the low-quality evaluation sets.
  double severity = 0.0;
};

// One draw from the web-crawl-like distribution.
ImageNuisance sample_nuisance(Rng& rng, const NuisanceOptions& options);

// A draw from the same distribution with the unrecognizable recipe forced
// (NuisanceOptions::unrecognizable = 1): identity-free training images and the
// tail probe (generate.h). Quality at most ~0.14.
ImageNuisance sample_unrecognizable(Rng& rng, const NuisanceOptions& options);

// A draw whose quality lies in [q_lo, q_hi] (rejection sampling from the
// distribution at a severity suited to the band). Deterministic in `rng`.
ImageNuisance sample_nuisance_in_band(Rng& rng, const NuisanceOptions& options, double q_lo, double q_hi);

nlohmann::json nuisance_to_json(const ImageNuisance& n);

}  // namespace qface::synth
