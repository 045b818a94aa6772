// Synthetic identities: a face is a vector of "genes" in [0, 1] decoded into
// head shape, jaw, eye / brow / nose / mouth geometry and spacing, skin / hair /
// eye / lip colours, skin texture, marks (moles, scar, freckles), hair style and
// facial hair. Identities come in look-alike families: members share a base gene
// vector and deviate from it by `family_spread` (siblings) or `twin_spread`
// (twins), so the task has hard impostors, as real crawled sets do.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace qface::synth {

constexpr int kGenes = 44;

struct Mark {
  double x = 0, y = 0, r = 0;  // face-plane position (units: head half-width ~0.8) and radius
};

struct Identity {
  int64_t index = 0;   // position in its population
  int64_t family = 0;  // family id within the population (equal for look-alikes)
  bool twin = false;
  std::array<double, kGenes> genes{};
  uint64_t texture_seed = 0;  // skin / hair texture pattern (shared by twins)

  // Head (face-plane units: x right, y down, origin at the face centre).
  double head_w = 0.8, head_h = 1.0, head_depth = 0.7;
  double jaw_width = 0.8;    // chin width relative to the cheek width
  double jaw_square = 2.0;   // superellipse exponent of the lower face (2 = round)
  double cheek = 0.0;        // cheekbone prominence (lighting) and width
  // Eyes.
  double eye_y = -0.12, eye_sep = 0.32, eye_w = 0.15, eye_h = 0.065, eye_tilt = 0.0, iris_r = 0.05;
  std::array<double, 3> iris{};  // BGR 0..255
  // Brows.
  double brow_gap = 0.12, brow_thick = 0.035, brow_len = 0.22, brow_arch = 0.03, brow_tilt = 0.0;
  // Nose.
  double nose_y = 0.2, nose_w = 0.11, nose_depth = 0.25, bridge_w = 0.05;
  // Mouth.
  double mouth_y = 0.45, mouth_w = 0.2, lip_upper = 0.035, lip_lower = 0.05;
  std::array<double, 3> lip{};
  // Ears.
  double ear_size = 0.22, ear_y = 0.05;
  // Colours and texture.
  std::array<double, 3> skin{}, hair{};
  double texture_amp = 0.05, texture_freq = 18, freckles = 0, blush = 0;
  std::vector<Mark> moles;
  bool scar = false;
  double scar_x0 = 0, scar_y0 = 0, scar_x1 = 0, scar_y1 = 0;
  // Hair: 0 buzz, 1 short, 2 side part, 3 long, 4 bangs, 5 curly / volume.
  int hair_style = 1;
  double hairline = -0.55, hair_volume = 0.12, part = 0.0;
  // Facial hair: 0 none, 1 stubble, 2 moustache, 3 full beard.
  int beard = 0;
};

struct PopulationOptions {
  double family_fraction = 0.35;  // share of identities that belong to a family of 2-4 look-alikes
  double twin_fraction = 0.15;    // share of those families that are (identical-looking) twins
  double family_spread = 0.10;    // gene standard deviation around the family base (siblings)
  double twin_spread = 0.035;     // gene standard deviation for twins
};

// `count` identities of stream `stream` under `seed`, deterministic.
std::vector<Identity> sample_population(uint64_t seed, uint64_t stream, int64_t count,
                                        const PopulationOptions& options);

// Decodes genes into the geometric and colour parameters.
Identity decode_identity(const std::array<double, kGenes>& genes, int64_t index, int64_t family,
                         uint64_t texture_seed);

nlohmann::json identity_to_json(const Identity& id);

}  // namespace qface::synth
