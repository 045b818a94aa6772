// SynthOptions: the presets' sizes, and the options as the manifests store
// them (equal JSON means byte-identical data).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "qface/core/error.h"
#include "qface/synth/generate.h"

namespace qface::synth {
using nlohmann::json;

json options_json(const SynthOptions& o) {
  json j;
  j["preset"] = o.preset;
  j["seed"] = o.seed;
  j["ids"] = o.ids;
  j["per_id"] = o.per_id;
  j["per_id_spread"] = o.per_id_spread;
  j["label_noise"] = o.label_noise;
  j["identity_free"] = o.identity_free;
  j["tail_probe"] = o.identity_free > 0 ? o.tail_probe : 0;
  j["family_fraction"] = o.population.family_fraction;
  j["twin_fraction"] = o.population.twin_fraction;
  j["family_spread"] = o.population.family_spread;
  j["twin_spread"] = o.population.twin_spread;
  json pres, expo;
  for (int k = 0; k < kNuisances; ++k) {
    pres[nuisance_name(k)] = o.nuisance.presence[static_cast<std::size_t>(k)];
    expo[nuisance_name(k)] = o.nuisance.exponent[static_cast<std::size_t>(k)];
  }
  j["nuisance_presence"] = pres;
  j["nuisance_exponent"] = expo;
  j["unrecognizable"] = o.nuisance.unrecognizable;
  j["jpeg_quality"] = o.jpeg_quality;
  j["val_ids"] = o.val_ids;
  j["val_pairs"] = o.val_pairs;
  j["val_cross_pairs"] = o.val_cross_pairs < 0 ? o.val_pairs : o.val_cross_pairs;
  j["quality_bands"] = {{"high", {o.high_lo, 1.0}}, {"low", {o.low_lo, o.low_hi}}};
  j["ijb_subjects"] = o.ijb_subjects;
  j["tf_ids"] = o.tf_ids;
  j["tf_distractors"] = o.tf_distractors;
  return j;
}

json surveillance_options_json(const SynthOptions& o) {
  const json all = options_json(o);
  json j;
  for (const char* k : {"preset", "seed", "family_fraction", "twin_fraction", "family_spread", "twin_spread", "jpeg_quality"})
    j[k] = all.at(k);
  j["ijbs_subjects"] = o.ijbs_subjects;
  j["ijbs_unenrolled"] = o.ijbs_unenrolled;
  j["ijbs_max_videos"] = o.ijbs_max_videos;
  j["ijbs_frames"] = o.ijbs_frames;
  j["ijbs_booking"] = o.ijbs_booking;
  return j;
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = {"tiny", "demo", "main", "full", "study"};
  return names;
}

SynthOptions preset_options(const std::string& preset) {
  SynthOptions o;
  o.preset = preset;
  if (preset == "tiny") {
    o.ids = 8;
    o.per_id = 5;
    o.val_ids = 10;
    o.val_pairs = 12;
    o.ijb_subjects = 4;
    o.tf_ids = 4;
    o.tf_distractors = 6;
    o.tail_probe = 12;
    o.ijbs_subjects = 4;
    o.ijbs_unenrolled = 2;
    o.ijbs_frames = 6;
    o.ijbs_booking = 3;
  } else if (preset == "demo") {
    // Sized for the main job's 15-minute budget on 2 cores (three heads).
    o.ids = 300;
    o.per_id = 28;
    o.val_ids = 300;
    o.val_pairs = 3000;
    o.ijb_subjects = 50;
    o.tf_ids = 60;
    o.tf_distractors = 200;
    o.tail_probe = 300;  // one image of every class per kind
    o.ijbs_subjects = 64;
    o.ijbs_unenrolled = 32;  // ~48 non-mated probes: TPIR at FPIR 10 % resolved
  } else if (preset == "main") {
    // The main job (`qface demo`, make run): the demo's evaluation sets (2000
    // pairs each, so that four models evaluate within the 15-minute budget)
    // with few training identities, trained for several epochs: 100 x 30
    // images, 3 epochs per head (configs/synth_demo.toml) get the heads
    // closer to a fit than 300 x 28 for one epoch in the same time.
    o = preset_options("demo");
    o.preset = "main";
    o.ids = 100;
    o.per_id = 30;
    o.val_pairs = 2000;
    o.tail_probe = 200;
  } else if (preset == "study") {
    // The study (`qface study`): the full preset's evaluation sets with 150
    // training identities x 30 images, 14 epochs per head
    // (configs/synth_study.toml): 6 runs x 4 seeds in about 7 hours.
    o = preset_options("full");
    o.preset = "study";
    o.ids = 150;
    o.per_id = 30;
    o.tail_probe = 300;
  } else if (preset == "full") {
    // The full-size evaluation sets (the study preset starts from these).
    o.ids = 500;
    o.per_id = 32;
    o.val_ids = 600;
    o.val_pairs = 5000;
    o.ijb_subjects = 300;
    o.tf_ids = 300;
    o.tf_distractors = 2000;
    o.tail_probe = 500;  // one image of every class per kind
    o.ijbs_subjects = 160;
    o.ijbs_unenrolled = 60;  // ~120 non-mated probes: TPIR at FPIR 1 % resolved
    o.ijbs_max_videos = 3;
    o.ijbs_frames = 30;
    o.ijbs_booking = 5;
  } else {
    fail("synth: unknown preset '{}' (choose one of: {})", preset, fmt::join(preset_names(), ", "));
  }
  return o;
}

}  // namespace qface::synth
