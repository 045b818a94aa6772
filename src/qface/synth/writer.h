// The set writers of `qface synth` (one file per set, generate.cpp runs them)
// and their shared machinery: the seed streams, rendering jobs on the worker
// threads, manifest entries, and the two writers more than one set uses
// (labelled aligned images in folders; 1:1 pair sets in .bin + .json).
// Internal to the synth area: not part of its interface (generate.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "qface/synth/generate.h"
#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"
#include "qface/synth/render.h"

namespace qface::synth::detail {

// Seed streams: never reuse one for two purposes.
// Append new streams at the end (existing values must never change: they fix
// the bytes of every set). 112 (kIjbLayout + 7) and 1103..2104 (val sets 1, 2)
// are taken by offsets, hence the surveillance streams start at 200.
enum Stream : uint64_t {
  kIdsTrain = 1, kIdsVal, kIdsIjb, kIdsTiny, kIdsDistractor,
  kCounts = 100, kTrainImage, kLabelNoise, kValPair, kValImage, kIjbLayout, kIjbImage, kTinyImage, kPreview,
  kValReference,
  kIdsIjbs = 200, kIjbsLayout, kIjbsStill, kIjbsVideo, kIjbsNoise,
  kSample = 300,
  // Identity-free training images (which ones, their fresh identities, their
  // nuisances), the cross-quality pair set, the held-out tail probe.
  kFreeChoice = 400, kIdsFree, kFreeImage, kValCrossPair, kValCrossImage, kIdsProbeFree, kProbeImage
};

double r4(double v);
nlohmann::json landmarks_json(const Landmarks& l);
// The manifest's list of a population's identities.
nlohmann::json identities_json(const std::vector<Identity>& ids);
// The manifest's "quality_formula": how a quality follows from the nuisance strengths.
nlohmann::json quality_formula_json();

// One image to draw.
struct Job {
  const Identity* identity = nullptr;
  ImageNuisance nuisance;
  int loose_size = 0;  // 0: aligned 112 x 112
};

struct Done {
  std::string jpeg;
  Landmarks landmarks;
};

// Renders jobs in chunks on the worker threads; `sink(i, done)` runs in order
// on the calling thread. Shows progress for long runs.
void render_jobs(const std::vector<Job>& jobs, const SynthOptions& o, const std::string& what,
                 const std::function<void(std::size_t, Done&&)>& sink);

// The manifest entry of one image: identity index, quality, nuisance, landmarks.
nlohmann::json image_json(const Job& job, const Done& d);

// Aligned images written one file each (the TinyFace-style set, the tail
// probe): jobs[k] goes to out / files[k].file (folders created). Returns the
// manifest's {file: image_json + "label"} object.
struct LabelledFile {
  std::string file;  // relative to `out`, e.g. "tinyface/probe/3_1.jpg"
  int64_t label = 0;
};
nlohmann::json write_labelled_images(const std::filesystem::path& out, const std::vector<Job>& jobs,
                                     const std::vector<LabelledFile>& files, const SynthOptions& o,
                                     const std::string& what);

// A balanced 1:1 verification set DIR/<name>.bin + DIR/<name>.json of `pairs`
// pairs (even) of the identities `ids`: pair p is genuine when p is even, else
// an impostor (a look-alike of the same family half the time when there is
// one). Image side s of a pair has a quality in band[s] = [lo, hi]; with
// `shuffle` the two bands swap sides at random per pair (val_mixed). Pair p
// draws from derive_seed(seed, pair_stream, p), image i from (image_stream, i).
// Returns the manifest entry: the .json sidecar's keys plus "images".
struct PairSetSpec {
  std::string name;
  uint64_t pair_stream = 0, image_stream = 0;
  double lo[2] = {0, 0}, hi[2] = {1, 1};
  bool shuffle = false;
};
nlohmann::json write_pair_set(const std::filesystem::path& out, const SynthOptions& o,
                              const std::vector<Identity>& ids, int64_t pairs, const PairSetSpec& spec);

// The set writers: each writes its files and its part of DIR/manifest.json.

// DIR/train.rec, train.idx (train_set.cpp). Returns the images written;
// *free_images: how many of them are identity-free.
int64_t write_train(const std::filesystem::path& out, const SynthOptions& o, nlohmann::json& manifest,
                    int64_t* free_images);

// DIR/val_{high,mixed,low}.bin + .json and val_reference.bin (pair_set.cpp).
// Returns the pairs written.
int64_t write_val(const std::filesystem::path& out, const SynthOptions& o, nlohmann::json& manifest);

// DIR/val_cross.bin + .json (pair_set.cpp): image 2i low quality, 2i+1 high.
// Returns the pairs written (0 when options.val_cross_pairs is 0).
int64_t write_val_cross(const std::filesystem::path& out, const SynthOptions& o, nlohmann::json& manifest);

// DIR/ijb (ijb_set.cpp): loose crops and the IJB-B/C-style meta files.
struct IjbCounts {
  int64_t images = 0, templates = 0;
};
IjbCounts write_ijb(const std::filesystem::path& out, const SynthOptions& o, nlohmann::json& manifest);

// DIR/tinyface (tinyface_set.cpp). Returns the images written.
int64_t write_tinyface(const std::filesystem::path& out, const SynthOptions& o, nlohmann::json& manifest);

// DIR/tail_probe (tail_probe.cpp), written when options.identity_free > 0.
// Returns the images written.
int64_t write_tail_probe(const std::filesystem::path& out, const SynthOptions& o, nlohmann::json& manifest);

// DIR/ijbs (surveillance_set.cpp), replacing an older one, with its own
// manifest.json (version kSurveillanceVersion), written last. Returns the
// ijbs_* counts and the seconds taken.
inline constexpr const char* kSurveillanceVersion = "qface-ijbs-1";
SynthSummary write_surveillance(const std::filesystem::path& out, const SynthOptions& o);

// The population options of the fresh identities of identity-free images:
// the training population's, without families (every identity independent).
PopulationOptions free_population(const SynthOptions& o);

}  // namespace qface::synth::detail
