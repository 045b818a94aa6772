// `qface synth`: synthetic face datasets with ground-truth quality, written in
// the field's formats (docs/method.md, Data formats and Synthetic data):
//
//   DIR/train.rec, train.idx        InsightFace face RecordIO (header, images, identity records)
//   DIR/val_{high,mixed,low}.bin    verification pairs (pickle), balanced genuine/impostor
//   DIR/val_{high,mixed,low}.json   per pair: issame, identities, the two qualities
//   DIR/val_cross.bin, .json        cross-quality pairs: image 2i low quality, 2i+1 high (same sidecar keys)
//   DIR/val_reference.bin           two clean renders per verification identity (recognizability reference)
//   DIR/ijb/images/<n>.jpg          loose crops (face not aligned, roll kept)
//   DIR/ijb/meta/synth_face_tid_mid.txt          "image template_id media_id"
//   DIR/ijb/meta/synth_template_pair_label.txt   "t1 t2 label"
//   DIR/ijb/meta/synth_name_5pts_score.txt       "image x1 y1 ... x5 y5 score"
//   DIR/ijb/meta/synth_1N_gallery_G1.csv, _G2.csv, synth_1N_probe_mixed.csv
//                                                 "TEMPLATE_ID,SUBJECT_ID,FILENAME"
//   DIR/tinyface/{probe,gallery,distractor}/<identity>_<n>.jpg (aligned 112 x 112, low resolution)
//   DIR/tail_probe/{free,ordinary,unrecognizable}/<label>_<n>.jpg   held-out images filed under
//                                   training classes (aligned 112 x 112), only with identity_free > 0;
//   DIR/tail_probe/meta.json        their files, kinds, labels (RecordIO class) and qualities
//   DIR/manifest.json               every ground truth, keyed by record key or file
//   DIR/ijbs/                       IJB-S-style surveillance set (docs/ijbs.md), with its own
//                                   manifest.json (options, every frame's ground truth): the
//                                   files above stay byte-identical to generators without it
//
// Every image has its own seed derived from (seed, stream, index), so the
// output is byte-identical for a seed whatever the thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"

namespace qface::synth {

// 3: val_cross, identity-free training images and the tail probe (issue 35).
inline constexpr const char* kSynthVersion = "qface-synth-3";

// The identity-free share of the training set for the study and the main job
// (SynthOptions::identity_free; every preset's default is 0, which keeps the
// qface-synth-2 training files byte for byte). AdaFace's argument needs a tail
// of training images with no identity left in them; 15 % (issue 35's choice)
// makes it ~4 images of a demo class of 28 (a part of every class that a
// head can fit or leave alone), while every class keeps ~85 % genuine images.
// The study's prediction is that the head differences shrink as the share
// falls towards the 3 % of NuisanceOptions::unrecognizable.
inline constexpr double kStudyIdentityFree = 0.15;

struct SynthOptions {
  std::string preset = "demo";
  uint64_t seed = 1;
  int threads = 2;
  // Training set: identities and mean images per identity (actual counts vary,
  // log-normal with sd `per_id_spread`, clamped to [max(2, K/4), 3K]).
  int64_t ids = 300;
  int64_t per_id = 40;
  double per_id_spread = 0.4;
  // Share of training images filed under a wrong identity (crawl label noise).
  double label_noise = 0.0;
  // Share of training images that are identity-free: filed under their
  // identity k, but a render of a fresh identity (neither a training nor a
  // verification identity, a new one per image) under the unrecognizable
  // recipe, so that nothing in the image ties it to k (manifest: train record
  // "identity_free": true, "identity": -1). Chosen per image from a stream of
  // its own; the other images keep their bytes. 0 (every preset): none.
  double identity_free = 0.0;
  // Tail probe (DIR/tail_probe, written when identity_free > 0): images per
  // kind (free, ordinary, unrecognizable), filed under training classes.
  int64_t tail_probe = 300;
  PopulationOptions population;
  NuisanceOptions nuisance;
  int jpeg_quality = 95;  // storage quality of every JPEG written
  // Verification sets: identities (disjoint from training) and pairs per set.
  int64_t val_ids = 150;
  int64_t val_pairs = 600;
  double high_lo = 0.70, low_lo = 0.12, low_hi = 0.45;  // quality bands
  // Cross-quality set val_cross (low-quality probe vs high-quality reference
  // of the verification identities): pairs, -1 = val_pairs, 0 = no such set.
  int64_t val_cross_pairs = -1;
  // IJB-style set: subjects (3 templates each: 1 gallery, 2 probes).
  int64_t ijb_subjects = 50;
  // TinyFace-style set: identities with probe and gallery images, and distractor identities.
  int64_t tf_ids = 60;
  int64_t tf_distractors = 200;
  // IJB-S-style surveillance set (DIR/ijbs): enrolled subjects (a single
  // photo, a booking set and videos), subjects seen only in videos (open-set
  // probes), videos per subject (1..max), mean frames per video (each video
  // 0.75x..1.25x, at least 6), photos per booking set (frontal, profiles, 3/4 views).
  int64_t ijbs_subjects = 32;
  int64_t ijbs_unenrolled = 8;
  int ijbs_max_videos = 2;
  int ijbs_frames = 20;
  int ijbs_booking = 4;
};

// Preset sizes: "tiny" (unit tests), "demo" (the main job: 8.4k training
// images, 4 x 3000 verification pairs), "full" (the study: 16k training
// images, 4 x 5000 pairs). Throws qface::Error for an unknown name.
SynthOptions preset_options(const std::string& preset);

// "tiny", "demo", "main" (the main job), "full", "study" (qface study).
const std::vector<std::string>& preset_names();

struct SynthSummary {
  int64_t train_images = 0, train_ids = 0, val_pairs = 0, ijb_images = 0, ijb_templates = 0, tinyface_images = 0;
  int64_t ijbs_images = 0, ijbs_templates = 0;  // surveillance set: stills + frames, templates
  int64_t identity_free_images = 0;              // of train_images
  int64_t val_cross_pairs = 0, tail_probe_images = 0;
  double seconds = 0;
};

// The options that determine the data outside DIR/ijbs (everything but the
// thread count and the ijbs_* sizes), as stored in manifest.json: equal JSON
// means byte-identical data there.
nlohmann::json options_json(const SynthOptions& options);

// The options that determine DIR/ijbs (seed, population, JPEG quality, ijbs_*
// sizes), as stored in DIR/ijbs/manifest.json: equal JSON means byte-identical data.
nlohmann::json surveillance_options_json(const SynthOptions& options);

// Writes the whole dataset into `out` (created when missing), DIR/ijbs included.
SynthSummary generate(const std::filesystem::path& out, const SynthOptions& options);

// Writes only the surveillance set DIR/ijbs (replacing an older one) unless
// DIR/ijbs/manifest.json already holds these options. Returns true when it
// wrote. For folders made before the set existed: the rest stays untouched.
bool ensure_surveillance(const std::filesystem::path& out, const SynthOptions& options,
                         SynthSummary* summary = nullptr);

// Contact sheet: `ids` identities (rows) x 7 quality bands (columns, best
// left), 112 px cells with the quality printed in the corner.
cv::Mat preview_sheet(int ids, const SynthOptions& options);

// `count` aligned 112 x 112 BGR faces of `count` identities, each with a
// nuisance drawn as in the training set (all qualities): deterministic in
// (options.seed, count). For checks that need faces in memory (the precision
// guard of infer/precision.h, benchmarks).
std::vector<cv::Mat> sample_faces(int64_t count, const SynthOptions& options);

}  // namespace qface::synth
