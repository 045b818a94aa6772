#include "qface/synth/identity.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "qface/synth/rng.h"

namespace qface::synth {
namespace {

double lerp(double a, double b, double t) { return a + (b - a) * t; }

using Bgr = std::array<double, 3>;

Bgr mix(const Bgr& a, const Bgr& b, double t) {
  return {lerp(a[0], b[0], t), lerp(a[1], b[1], t), lerp(a[2], b[2], t)};
}

// Piecewise-linear palette lookup, t in [0, 1].
Bgr palette(const std::vector<Bgr>& colours, double t) {
  t = std::clamp(t, 0.0, 1.0) * static_cast<double>(colours.size() - 1);
  const auto i = std::min<std::size_t>(static_cast<std::size_t>(t), colours.size() - 2);
  return mix(colours[i], colours[i + 1], t - static_cast<double>(i));
}

// Gene indices (named so that decode reads as a table).
enum G : int {
  kHeadW, kHeadH, kJawW, kJawSq, kCheek, kEyeY, kEyeSep, kEyeW, kEyeH, kEyeTilt, kIrisR, kIrisCol, kIrisHue,
  kBrowGap, kBrowThick, kBrowLen, kBrowArch, kBrowTilt, kNoseY, kNoseW, kNoseD, kBridge, kMouthY, kMouthW,
  kLipU, kLipL, kLipCol, kEar, kEarY, kSkinTone, kSkinWarm, kHairTone, kHairRed, kTexAmp, kTexFreq, kFreckle,
  kBlush, kMoles, kScar, kHairStyle, kHairline, kHairVol, kPart, kBeard
};
static_assert(kBeard + 1 == kGenes);

}  // namespace

Identity decode_identity(const std::array<double, kGenes>& g, int64_t index, int64_t family, uint64_t texture_seed) {
  Identity id;
  id.index = index;
  id.family = family;
  id.genes = g;
  id.texture_seed = texture_seed;
  id.head_w = lerp(0.58, 0.74, g[kHeadW]);
  id.head_h = lerp(0.88, 1.04, g[kHeadH]);
  id.head_depth = 0.85 * id.head_w;
  id.jaw_width = lerp(0.55, 0.92, g[kJawW]);
  id.jaw_square = lerp(1.8, 3.6, g[kJawSq]);
  id.cheek = g[kCheek];
  id.eye_y = lerp(-0.07, 0.05, g[kEyeY]);
  id.eye_sep = lerp(0.235, 0.30, g[kEyeSep]);
  id.eye_w = lerp(0.105, 0.145, g[kEyeW]);
  id.eye_h = lerp(0.038, 0.068, g[kEyeH]);
  id.eye_tilt = lerp(-0.18, 0.22, g[kEyeTilt]);
  id.iris_r = lerp(0.75, 1.0, g[kIrisR]) * id.eye_h * 0.85;
  // Iris: dark brown .. brown .. hazel .. green .. blue .. grey-blue.
  id.iris = palette({{20, 30, 45}, {30, 60, 100}, {40, 100, 120}, {70, 120, 80}, {150, 110, 60}, {140, 130, 120}},
                    g[kIrisCol] * (0.55 + 0.45 * g[kIrisHue]));
  id.brow_gap = lerp(0.07, 0.14, g[kBrowGap]);
  id.brow_thick = lerp(0.018, 0.05, g[kBrowThick]);
  id.brow_len = lerp(0.16, 0.26, g[kBrowLen]);
  id.brow_arch = lerp(-0.01, 0.05, g[kBrowArch]);
  id.brow_tilt = lerp(-0.12, 0.15, g[kBrowTilt]);
  id.nose_y = id.eye_y + lerp(0.245, 0.365, g[kNoseY]);
  id.nose_w = lerp(0.09, 0.15, g[kNoseW]);
  id.nose_depth = lerp(0.16, 0.32, g[kNoseD]);
  id.bridge_w = lerp(0.03, 0.07, g[kBridge]);
  id.mouth_y = id.nose_y + lerp(0.255, 0.365, g[kMouthY]);
  id.mouth_w = lerp(0.18, 0.26, g[kMouthW]);
  id.lip_upper = lerp(0.018, 0.045, g[kLipU]);
  id.lip_lower = lerp(0.025, 0.06, g[kLipL]);
  id.ear_size = lerp(0.17, 0.27, g[kEar]);
  id.ear_y = lerp(0.08, 0.22, g[kEarY]);
  // Skin tone: a continuum from light to dark, with warmth.
  const Bgr light{185, 205, 238}, mid{110, 150, 200}, dark{50, 75, 115};
  Bgr skin = palette({light, mid, dark}, g[kSkinTone]);
  skin = mix(skin, {skin[0] * 0.85, skin[1] * 0.95, std::min(255.0, skin[2] * 1.05)}, g[kSkinWarm]);
  id.skin = skin;
  id.lip = mix(skin, {skin[0] * 0.6, skin[1] * 0.55, skin[2] * 0.85}, lerp(0.5, 1.0, g[kLipCol]));
  // Hair: darker skin makes dark hair more likely (tone pulled towards black).
  const double hair_t = std::clamp(g[kHairTone] * (1.0 - 0.6 * g[kSkinTone]), 0.0, 1.0);
  Bgr hair = palette({{18, 18, 22}, {25, 35, 55}, {40, 65, 100}, {70, 110, 150}, {110, 170, 210}, {170, 170, 175}},
                     hair_t);
  if (g[kHairRed] > 0.85 && hair_t > 0.3 && hair_t < 0.8) hair = {30, 70, 170};  // red hair
  id.hair = hair;
  id.texture_amp = lerp(0.02, 0.09, g[kTexAmp]);
  id.texture_freq = lerp(10, 28, g[kTexFreq]);
  id.freckles = g[kFreckle] > 0.75 ? (g[kFreckle] - 0.75) * 4 : 0.0;
  id.blush = g[kBlush];
  // Moles: 0-3, positions derived from the texture seed (so twins share them).
  Rng mole_rng(texture_seed ^ 0x6d6f6c65ULL);
  const int moles = g[kMoles] < 0.45 ? 0 : g[kMoles] < 0.75 ? 1 : g[kMoles] < 0.92 ? 2 : 3;
  for (int i = 0; i < moles; ++i) {
    Mark m;
    m.x = mole_rng.uniform(-0.55, 0.55) * id.head_w;
    m.y = mole_rng.uniform(-0.35, 0.7) * id.head_h;
    m.r = mole_rng.uniform(0.012, 0.028);
    id.moles.push_back(m);
  }
  id.scar = g[kScar] > 0.9;
  if (id.scar) {
    id.scar_x0 = mole_rng.uniform(-0.5, 0.5);
    id.scar_y0 = mole_rng.uniform(-0.5, 0.5);
    const double a = mole_rng.uniform(0, 3.14159), len = mole_rng.uniform(0.12, 0.25);
    id.scar_x1 = id.scar_x0 + len * std::cos(a);
    id.scar_y1 = id.scar_y0 + len * std::sin(a);
  }
  id.hair_style = std::min(5, static_cast<int>(g[kHairStyle] * 6));
  id.hairline = lerp(-0.75, -0.42, g[kHairline]) * id.head_h;
  id.hair_volume = lerp(0.04, 0.22, g[kHairVol]);
  id.part = lerp(-0.4, 0.4, g[kPart]);
  id.beard = g[kBeard] < 0.62 ? 0 : g[kBeard] < 0.78 ? 1 : g[kBeard] < 0.9 ? 2 : 3;
  return id;
}

std::vector<Identity> sample_population(uint64_t seed, uint64_t stream, int64_t count, const PopulationOptions& o) {
  std::vector<Identity> out;
  out.reserve(static_cast<std::size_t>(std::max<int64_t>(count, 0)));
  // Probability that a new family has 2-4 members, so that the expected share
  // of identities in families is family_fraction (mean family size 3).
  const double ff = std::clamp(o.family_fraction, 0.0, 0.999);
  const double p_family = ff / (3.0 - 2.0 * ff);
  Rng fam_rng(derive_seed(seed, stream, 0xfa111eULL));
  int64_t family = 0;
  while (static_cast<int64_t>(out.size()) < count) {
    Rng rng(derive_seed(seed, stream, static_cast<uint64_t>(family)));
    int64_t size = 1;
    bool twins = false;
    if (fam_rng.chance(p_family)) {
      size = fam_rng.integer(2, 4);
      twins = fam_rng.chance(o.twin_fraction);
      if (twins) size = 2;
    }
    size = std::min<int64_t>(size, count - static_cast<int64_t>(out.size()));
    std::array<double, kGenes> base{};
    for (double& v : base) v = rng.uniform();
    const uint64_t family_texture = rng.next();
    const double spread = twins ? o.twin_spread : o.family_spread;
    for (int64_t m = 0; m < size; ++m) {
      std::array<double, kGenes> genes = base;
      if (size > 1)
        for (double& v : genes) v = std::clamp(v + spread * rng.normal(), 0.0, 1.0);
      const uint64_t texture = twins ? family_texture : rng.next();
      Identity id = decode_identity(genes, static_cast<int64_t>(out.size()), family, texture);
      id.twin = twins;
      out.push_back(std::move(id));
    }
    ++family;
  }
  return out;
}

nlohmann::json identity_to_json(const Identity& id) {
  nlohmann::json j;
  j["index"] = id.index;
  j["family"] = id.family;
  j["twin"] = id.twin;
  j["hair_style"] = id.hair_style;
  j["beard"] = id.beard;
  j["moles"] = id.moles.size();
  j["scar"] = id.scar;
  std::vector<double> genes(id.genes.begin(), id.genes.end());
  for (double& v : genes) v = std::round(v * 1e6) / 1e6;
  j["genes"] = genes;
  return j;
}

}  // namespace qface::synth
