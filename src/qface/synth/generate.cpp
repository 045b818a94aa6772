#include "qface/synth/generate.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/bin_set.h"
#include "qface/data/recordio.h"
#include "qface/synth/render.h"
#include "qface/synth/rng.h"
#include "qface/synth/writer.h"

namespace qface::synth {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace detail;  // writer.h: seed streams, render jobs, the shared set writers

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

namespace {

void check_options(const SynthOptions& o) {
  require(o.ids >= 2, "synth: --ids must be at least 2, got {}", o.ids);
  require(o.per_id >= 2, "synth: --per-id must be at least 2, got {}", o.per_id);
  require(o.threads >= 1, "synth: --threads must be at least 1, got {}", o.threads);
  require(o.label_noise >= 0 && o.label_noise < 1, "synth: --label-noise must be in [0, 1), got {}", o.label_noise);
  require(o.identity_free >= 0 && o.identity_free < 1, "synth: --identity-free must be in [0, 1), got {}",
          o.identity_free);
  require(o.tail_probe >= 0, "synth: --tail-probe must be at least 0, got {}", o.tail_probe);
  require(o.val_cross_pairs >= -1, "synth: val_cross pairs must be >= 0 (-1: val_pairs), got {}", o.val_cross_pairs);
  require(o.nuisance.unrecognizable >= 0 && o.nuisance.unrecognizable <= 1,
          "synth: --unrecognizable must be in [0, 1], got {}", o.nuisance.unrecognizable);
  require(o.val_ids >= 4 && o.val_pairs >= 2, "synth: need at least 4 val identities and 2 val pairs");
  require(o.ijb_subjects >= 2, "synth: need at least 2 IJB subjects, got {}", o.ijb_subjects);
  require(o.tf_ids >= 1 && o.tf_distractors >= 1, "synth: need TinyFace identities and distractors");
  require(o.jpeg_quality >= 1 && o.jpeg_quality <= 100, "synth: JPEG quality must be 1..100");
  require(o.ijbs_subjects >= 1 && o.ijbs_unenrolled >= 0, "synth: need at least 1 enrolled surveillance subject");
  require(o.ijbs_max_videos >= 1 && o.ijbs_max_videos <= 255, "synth: surveillance videos per subject must be 1..255");
  require(o.ijbs_frames >= 1 && o.ijbs_frames <= 3000, "synth: surveillance frames per video must be 1..3000");
  require(o.ijbs_booking >= 1 && o.ijbs_booking <= 255, "synth: booking photos per subject must be 1..255");
}

// ---------------------------------------------------------------- training set
// Identity-free images (SynthOptions::identity_free): which training items
// are replaced, from a stream of their own (share 0: none, and nothing else
// moves), and one fresh identity each. Why a fresh identity under the
// unrecognizable recipe: degradation alone leaves identity in the image (skin,
// hair and iris colour, hair style survive the recipe, and trained models
// place 43-51 % of the degraded training images with their own identity,
// docs/study.md), so the identity is removed by construction; one new identity
// per image, not one stand-in per class, so that nothing recurs within a class
// that a model could learn as the class (that would be label noise, a
// different phenomenon). The degradation keeps these images in the low-quality
// tail, where AdaFace's premise puts them: what sets them apart from a class's
// genuine images is their low quality, the cue the paper's norm-adaptive margin uses.
struct FreeItems {
  std::vector<int64_t> of;  // per item: index into `ids`, or -1 (ordinary item)
  std::vector<Identity> ids;
};

template <class Item>
FreeItems choose_identity_free(const std::vector<Item>& items, const SynthOptions& o) {
  FreeItems f;
  f.of.assign(items.size(), -1);
  if (o.identity_free <= 0) return f;
  int64_t n = 0;
  for (std::size_t k = 0; k < items.size(); ++k) {
    const uint64_t key = static_cast<uint64_t>(items[k].identity) << 24 | static_cast<uint64_t>(items[k].index);
    Rng rng(derive_seed(o.seed, kFreeChoice, key));
    if (rng.chance(o.identity_free)) f.of[k] = n++;
  }
  f.ids = sample_population(o.seed, kIdsFree, n, free_population(o));
  return f;
}

int64_t write_train(const fs::path& out, const SynthOptions& o, json& manifest, int64_t* free_images) {
  const auto ids = sample_population(o.seed, kIdsTrain, o.ids, o.population);
  struct Item {
    int64_t label, identity, index;
  };
  std::vector<Item> items;
  for (int64_t i = 0; i < o.ids; ++i) {
    Rng rng(derive_seed(o.seed, kCounts, static_cast<uint64_t>(i)));
    const double k = static_cast<double>(o.per_id) * std::exp(o.per_id_spread * rng.normal());
    const int64_t count = std::clamp<int64_t>(std::llround(k), std::max<int64_t>(2, o.per_id / 4), 3 * o.per_id);
    for (int64_t j = 0; j < count; ++j) {
      Rng nrng(derive_seed(o.seed, kLabelNoise, static_cast<uint64_t>(i) << 24 | static_cast<uint64_t>(j)));
      int64_t label = i;
      if (nrng.chance(o.label_noise)) {
        label = nrng.integer(0, o.ids - 2);
        if (label >= i) ++label;
      }
      items.push_back({label, i, j});
    }
  }
  // Records are grouped by the (possibly wrong) label, as in a crawled folder tree.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.label < b.label; });
  const FreeItems free = choose_identity_free(items, o);
  std::vector<Job> jobs(items.size());
  for (std::size_t k = 0; k < items.size(); ++k) {
    const uint64_t key = static_cast<uint64_t>(items[k].identity) << 24 | static_cast<uint64_t>(items[k].index);
    if (const int64_t f = free.of[k]; f >= 0) {
      Rng rng(derive_seed(o.seed, kFreeImage, key));
      jobs[k] = Job{&free.ids[static_cast<std::size_t>(f)], sample_unrecognizable(rng, o.nuisance), 0};
      continue;
    }
    Rng rng(derive_seed(o.seed, kTrainImage, key));
    jobs[k] = Job{&ids[static_cast<std::size_t>(items[k].identity)], sample_nuisance(rng, o.nuisance), 0};
  }
  data::FaceRecordWriter writer(out / "train.rec");
  json records = json::array();
  render_jobs(jobs, o, "train", [&](std::size_t k, Done&& d) {
    const uint64_t key = writer.add_image(d.jpeg, items[k].label);
    json j = image_json(jobs[k], d);
    j["key"] = key;
    j["label"] = items[k].label;
    const bool identity_free = free.of[k] >= 0;
    j["noisy_label"] = !identity_free && items[k].label != items[k].identity;
    j["identity_free"] = identity_free;
    if (identity_free) {  // nobody's image: its fresh identity is no training identity
      j["free_identity"] = j["identity"];
      j["identity"] = -1;
    }
    records.push_back(std::move(j));
  });
  writer.finish(o.ids);
  json idj = json::array();
  for (const auto& id : ids) idj.push_back(identity_to_json(id));
  manifest["identities"]["train"] = std::move(idj);
  const json free_note{{"share", o.identity_free},
                       {"images", free.ids.size()},
                       {"note", "identity -1, free_identity: index of a fresh identity (not stored)"}};
  manifest["train"] = {{"file", "train.rec"}, {"index", "train.idx"}, {"classes", o.ids},
                       {"identity_free", free_note}, {"records", std::move(records)}};
  *free_images = static_cast<int64_t>(free.ids.size());
  return static_cast<int64_t>(items.size());
}

// ---------------------------------------------------------- verification sets
// Clean renders of every verification identity (frontal, neutral, every
// nuisance strength 0: quality 1), two per identity as one genuine pair each,
// so the set is an ordinary .bin. They measure each verification image's
// empirical recognizability: its similarity to its own identity's clean face.
void write_val_reference(const fs::path& out, const SynthOptions& o, const std::vector<Identity>& ids, json& manifest) {
  std::vector<Job> jobs;
  for (const Identity& id : ids)
    for (uint64_t k = 0; k < 2; ++k) {
      Rng rng(derive_seed(o.seed, kValReference, static_cast<uint64_t>(id.index) << 8 | k));
      ImageNuisance n;
      derive(n, rng);
      n.roll = 0;
      jobs.push_back(Job{&id, n, 0});
    }
  data::BinSet bin;
  bin.issame.assign(ids.size(), true);
  bin.images.resize(jobs.size());
  json identity = json::array();
  render_jobs(jobs, o, "val_reference", [&](std::size_t k, Done&& d) { bin.images[k] = std::move(d.jpeg); });
  for (const Job& j : jobs) identity.push_back(j.identity->index);
  data::write_bin_set(out / "val_reference.bin", bin);
  manifest["val_reference"] = {{"file", "val_reference.bin"},
                               {"note", "two clean renders (quality 1) per verification identity"},
                               {"identity", identity}};
}

int64_t write_val(const fs::path& out, const SynthOptions& o, json& manifest) {
  const auto ids = sample_population(o.seed, kIdsVal, o.val_ids, o.population);
  json idj = json::array();
  for (const auto& id : ids) idj.push_back(identity_to_json(id));
  manifest["identities"]["val"] = std::move(idj);
  const int64_t pairs = o.val_pairs + (o.val_pairs % 2);  // even: half genuine, half impostor
  // Bands: high = both high; low = both low; mixed = one of each (random order).
  const char* names[3] = {"val_high", "val_mixed", "val_low"};
  for (int set = 0; set < 3; ++set) {
    PairSetSpec spec;
    spec.name = names[set];
    spec.pair_stream = kValPair + static_cast<uint64_t>(set) * 1000;
    spec.image_stream = kValImage + static_cast<uint64_t>(set) * 1000;
    for (int side = 0; side < 2; ++side) {
      const bool high = set == 0 || (set == 1 && side == 0);
      spec.lo[side] = high ? o.high_lo : o.low_lo;
      spec.hi[side] = high ? 1.0 : o.low_hi;
    }
    spec.shuffle = set == 1;
    manifest[names[set]] = write_pair_set(out, o, ids, pairs, spec);
  }
  write_val_reference(out, o, ids, manifest);
  return 3 * pairs;
}

// ----------------------------------------------------------------- IJB-style
struct IjbCounts {
  int64_t images = 0, templates = 0;
};

IjbCounts write_ijb(const fs::path& out, const SynthOptions& o, json& manifest) {
  const int64_t S = o.ijb_subjects;
  const auto ids = sample_population(o.seed, kIdsIjb, S, o.population);
  json idj = json::array();
  for (const auto& id : ids) idj.push_back(identity_to_json(id));
  manifest["identities"]["ijb"] = std::move(idj);
  NuisanceOptions nopt = o.nuisance;
  nopt.severity = 0.25;  // mixed quality, harder than training on average
  struct Img {
    int64_t subject, tmpl, media;
  };
  std::vector<Img> imgs;
  std::vector<Job> jobs;
  int64_t media_id = 0;
  for (int64_t s = 0; s < S; ++s) {
    Rng lay(derive_seed(o.seed, kIjbLayout, static_cast<uint64_t>(s)));
    for (int t = 0; t < 3; ++t) {
      const int64_t tid = s * 3 + t + 1;
      const int64_t medias = lay.integer(1, 4);
      for (int64_t m = 0; m < medias; ++m) {
        ++media_id;
        const bool video = lay.chance(0.4);
        const int64_t frames = video ? lay.integer(2, 3) : 1;
        Rng mrng(derive_seed(o.seed, kIjbImage, static_cast<uint64_t>(media_id)));
        const ImageNuisance base = sample_nuisance(mrng, nopt);
        const int size = static_cast<int>(mrng.integer(120, 160));
        for (int64_t f = 0; f < frames; ++f) {
          ImageNuisance n = base;
          if (f > 0) {  // frames of one video: same capture, small motion
            n.yaw += mrng.normal(0, 3);
            n.pitch += mrng.normal(0, 2);
            n.roll += mrng.normal(0, 2);
          }
          jobs.push_back(Job{&ids[static_cast<std::size_t>(s)], n, size});
          imgs.push_back({s, tid, media_id});
        }
      }
    }
  }
  ensure_dir(out / "ijb" / "images");
  ensure_dir(out / "ijb" / "meta");
  std::string tid_mid, pts;
  json files;
  render_jobs(jobs, o, "ijb", [&](std::size_t k, Done&& d) {
    const std::string name = std::to_string(k + 1) + ".jpg";
    write_file_atomic(out / "ijb" / "images" / name, d.jpeg);
    tid_mid += fmt::format("{} {} {}\n", name, imgs[k].tmpl, imgs[k].media);
    // Detector score: a monotone function of the true quality.
    const double score = 0.3 + 0.7 * jobs[k].nuisance.quality();
    pts += name;
    for (const auto& p : d.landmarks) pts += fmt::format(" {:.3f} {:.3f}", p.x, p.y);
    pts += fmt::format(" {:.4f}\n", score);
    json j = image_json(jobs[k], d);
    j["subject"] = imgs[k].subject + 1;
    j["template"] = imgs[k].tmpl;
    j["media"] = imgs[k].media;
    j["size"] = jobs[k].loose_size;
    files["ijb/images/" + name] = std::move(j);
  });
  write_file_atomic(out / "ijb" / "meta" / "synth_face_tid_mid.txt", tid_mid);
  write_file_atomic(out / "ijb" / "meta" / "synth_name_5pts_score.txt", pts);
  // 1:1 template pairs: every genuine pair, and impostors (random and look-alike).
  std::set<std::pair<int64_t, int64_t>> seen;
  std::string pairs;
  auto add_pair = [&](int64_t a, int64_t b, int label) {
    if (a == b) return;
    const auto key = std::minmax(a, b);
    if (!seen.insert(key).second) return;
    pairs += fmt::format("{} {} {}\n", key.first, key.second, label);
  };
  std::map<int64_t, std::vector<int64_t>> families;
  for (const auto& id : ids) families[id.family].push_back(id.index);
  for (int64_t s = 0; s < S; ++s) {
    Rng prng(derive_seed(o.seed, kIjbLayout + 7, static_cast<uint64_t>(s)));
    for (int t = 0; t < 3; ++t)
      for (int u = t + 1; u < 3; ++u) add_pair(s * 3 + t + 1, s * 3 + u + 1, 1);
    for (int t = 0; t < 3; ++t) {
      for (int k = 0; k < 4; ++k) {
        int64_t other = prng.integer(0, S - 2);
        if (other >= s) ++other;
        add_pair(s * 3 + t + 1, other * 3 + prng.integer(0, 2) + 1, 0);
      }
      for (int64_t other : families[ids[static_cast<std::size_t>(s)].family])
        if (other != s) add_pair(s * 3 + t + 1, other * 3 + prng.integer(0, 2) + 1, 0);
    }
  }
  write_file_atomic(out / "ijb" / "meta" / "synth_template_pair_label.txt", pairs);
  // 1:N: gallery template 0 of the first (G1) / second (G2) half of the subjects; probes: templates 1, 2 of all.
  std::string g1 = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n", g2 = g1, probe = g1;
  for (std::size_t k = 0; k < imgs.size(); ++k) {
    const std::string row = fmt::format("{},{},{}.jpg\n", imgs[k].tmpl, imgs[k].subject + 1, k + 1);
    const int t = static_cast<int>((imgs[k].tmpl - 1) % 3);
    if (t == 0) (imgs[k].subject < S / 2 ? g1 : g2) += row;
    else probe += row;
  }
  write_file_atomic(out / "ijb" / "meta" / "synth_1N_gallery_G1.csv", g1);
  write_file_atomic(out / "ijb" / "meta" / "synth_1N_gallery_G2.csv", g2);
  write_file_atomic(out / "ijb" / "meta" / "synth_1N_probe_mixed.csv", probe);
  manifest["ijb"] = {{"subjects", S}, {"templates", 3 * S}, {"media", media_id}, {"images", std::move(files)}};
  return {static_cast<int64_t>(jobs.size()), 3 * S};
}

// ------------------------------------------------------------- TinyFace-style
int64_t write_tinyface(const fs::path& out, const SynthOptions& o, json& manifest) {
  const auto ids = sample_population(o.seed, kIdsTiny, o.tf_ids, o.population);
  const auto dis = sample_population(o.seed, kIdsDistractor, o.tf_distractors, o.population);
  NuisanceOptions nopt = o.nuisance;
  nopt.severity = 0.2;
  std::vector<LabelledFile> imgs;
  std::vector<Job> jobs;
  auto add = [&](const Identity& id, const std::string& folder, int64_t label, int64_t n, uint64_t key) {
    Rng rng(derive_seed(o.seed, kTinyImage, key));
    ImageNuisance nu = sample_nuisance(rng, nopt);
    // Surveillance-like: always low resolution (16..40 px faces).
    nu.s[kLowres] = std::max(nu.s[kLowres], rng.uniform(0.4, 0.74));
    derive(nu, rng);
    jobs.push_back(Job{&id, nu, 0});
    imgs.push_back({"tinyface/" + folder + "/" + std::to_string(label) + "_" + std::to_string(n) + ".jpg", label});
  };
  for (int64_t i = 0; i < o.tf_ids; ++i) {
    const auto& id = ids[static_cast<std::size_t>(i)];
    for (int64_t n = 1; n <= 2; ++n) add(id, "gallery", i + 1, n, static_cast<uint64_t>(i) * 16 + static_cast<uint64_t>(n));
    for (int64_t n = 1; n <= 2; ++n) add(id, "probe", i + 1, n, static_cast<uint64_t>(i) * 16 + 8 + static_cast<uint64_t>(n));
  }
  for (int64_t i = 0; i < o.tf_distractors; ++i) {
    const auto& id = dis[static_cast<std::size_t>(i)];
    const int64_t label = o.tf_ids + 1 + i;  // never a probe/gallery label
    const int64_t count = 1 + static_cast<int64_t>(mix64(o.seed ^ static_cast<uint64_t>(i)) % 3);
    for (int64_t n = 1; n <= count; ++n)
      add(id, "distractor", label, n, (1ULL << 40) + static_cast<uint64_t>(i) * 16 + static_cast<uint64_t>(n));
  }
  json files = write_labelled_images(out, jobs, imgs, o, "tinyface");
  manifest["tinyface"] = {{"identities", o.tf_ids}, {"distractor_identities", o.tf_distractors}, {"files", std::move(files)}};
  return static_cast<int64_t>(jobs.size());
}

// ------------------------------------------------- IJB-S-style (surveillance)
constexpr const char* kSurveillanceVersion = "qface-ijbs-1";
// Largest change of any nuisance strength between consecutive frames of a video.
constexpr double kMaxFrameStep = 0.15;
constexpr double kTwoPi = 6.283185307179586;

// Sets the pose strength from an exact yaw / pitch (degrees), the inverse of
// derive()'s mapping; returns the (yaw, pitch) to put back after derive().
std::pair<double, double> set_pose(ImageNuisance& n, double yaw, double pitch) {
  const double s = std::hypot(yaw / 50.0, pitch / 35.0);
  if (s > 1) yaw /= s, pitch /= s;
  n.s[kPose] = std::min(1.0, s);
  return {yaw, pitch};
}

// A controlled still (single photo, booking set): mild nuisances, exact pose.
ImageNuisance still_nuisance(Rng& rng, double yaw, double pitch) {
  ImageNuisance n;
  n.s[kExpression] = rng.uniform(0, 0.12);
  n.s[kIllumination] = rng.uniform(0, 0.15);
  n.s[kJpeg] = rng.uniform(0, 0.1);
  n.s[kClutter] = rng.uniform(0, 0.1);
  const auto [y, p] = set_pose(n, yaw + rng.uniform(-3, 3), pitch + rng.uniform(-3, 3));
  derive(n, rng);
  n.yaw = y;
  n.pitch = p;
  return n;
}

// One surveillance video: a subject walking towards (or away from) a camera
// mounted above. Along the video, smoothly: the distance (lowres strength
// from far to near), the pose (yaw drift plus gait sway, camera pitch), motion
// blur (walking speed and direction), sensor noise and compression level; an
// object may cross in front of the face (occlusion rising and falling as it
// enters and leaves). Light, background, clothing and the other directions
// are one draw shared by all frames (the same scene); the noise pattern is
// fresh per frame. No strength moves by more than kMaxFrameStep per frame.
std::vector<ImageNuisance> video_nuisances(uint64_t seed, uint64_t key, int frames_mean) {
  Rng lay(derive_seed(seed, kIjbsVideo, key));
  const int lo = std::max(6, static_cast<int>(std::lround(0.75 * frames_mean)));
  const int hi = std::max(lo, static_cast<int>(std::lround(1.25 * frames_mean)));
  const int F = static_cast<int>(lay.integer(lo, hi));
  const bool approach = lay.chance(0.7);
  const double far = lay.uniform(0.45, 0.75), near = lay.uniform(0.05, 0.25);
  const double yaw0 = lay.uniform(-35, 35), yaw1 = std::clamp(yaw0 + lay.uniform(-30, 30), -45.0, 45.0);
  const double pitch0 = lay.uniform(-18, -4), pitch1 = std::clamp(pitch0 + lay.uniform(-5, 5), -24.0, 0.0);
  const double cycles = lay.uniform(0.8, 2.0), phase = lay.uniform(0, 1);  // gait
  const double blur0 = lay.uniform(0.0, 0.25), blur1 = lay.uniform(0.0, 0.3), blur_angle = lay.uniform(0, 180);
  const double noise0 = lay.uniform(0.05, 0.35), noise_drift = lay.uniform(-0.1, 0.1);
  const double jpeg0 = lay.uniform(0.2, 0.55), jpeg_phase = lay.uniform(0, 1);
  const double illum = lay.uniform(0.05, 0.45), expr = lay.uniform(0, 0.25), clutter = lay.uniform(0, 0.5);
  const bool occluded = lay.chance(0.5);
  const double occ_start = lay.uniform(0, 0.5), occ_dir = lay.chance(0.5) ? 1.0 : -1.0, occ_y = lay.uniform(-0.2, 0.4);
  // The object crosses x = -1.2 .. 1.2 (face half-widths) in occ_len of the
  // video; coverage (strength) peaks at x = 0: slow enough for the step limit.
  double occ_peak = lay.uniform(0.3, 0.9);
  const double occ_len = std::max(lay.uniform(0.3, 0.6), 2 * occ_peak / (kMaxFrameStep * (F - 1)));
  occ_peak = std::min(occ_peak, kMaxFrameStep * (F - 1) * occ_len / 2);
  const Rng scene = lay.fork();

  std::vector<ImageNuisance> out(static_cast<std::size_t>(F));
  std::vector<std::pair<double, double>> pose(out.size());
  std::vector<double> occ_x(out.size(), 0.0);
  for (int f = 0; f < F; ++f) {
    const double t = static_cast<double>(f) / (F - 1), ease = t * t * (3 - 2 * t);
    const double gait = std::sin(kTwoPi * (cycles * t + phase));
    ImageNuisance& n = out[static_cast<std::size_t>(f)];
    n.s[kLowres] = approach ? far + (near - far) * t : near + (far - near) * t;
    n.s[kBlur] = std::clamp(blur0 + (blur1 - blur0) * t + 0.05 * gait, 0.0, 1.0);
    n.s[kNoise] = std::clamp(noise0 + noise_drift * t, 0.0, 1.0);
    n.s[kJpeg] = std::clamp(jpeg0 + 0.08 * std::sin(kTwoPi * (t + jpeg_phase)), 0.0, 1.0);
    n.s[kIllumination] = illum;
    n.s[kExpression] = expr;
    n.s[kClutter] = clutter;
    if (occluded) {
      const double u = (t - occ_start) / occ_len;
      if (u > 0 && u < 1) {
        const double x = occ_dir * (-1.2 + 2.4 * u);
        occ_x[static_cast<std::size_t>(f)] = x;
        n.s[kOcclusion] = occ_peak * std::max(0.0, 1 - std::abs(x) / 1.2);
      }
    }
    pose[static_cast<std::size_t>(f)] = set_pose(n, yaw0 + (yaw1 - yaw0) * ease + 4 * gait,
                                                 pitch0 + (pitch1 - pitch0) * t + 1.5 * std::sin(2 * kTwoPi * (cycles * t + phase)));
  }
  // Safety net: the rate limit holds whatever the draws (strengths move towards their targets).
  for (int f = 1; f < F; ++f)
    for (int k = 0; k < kNuisances; ++k) {
      const double prev = out[static_cast<std::size_t>(f - 1)].s[static_cast<std::size_t>(k)];
      double& v = out[static_cast<std::size_t>(f)].s[static_cast<std::size_t>(k)];
      v = std::clamp(v, prev - kMaxFrameStep, prev + kMaxFrameStep);
    }
  for (int f = 0; f < F; ++f) {
    ImageNuisance& n = out[static_cast<std::size_t>(f)];
    Rng r = scene;  // the same directions for every frame
    derive(n, r);
    n.yaw = pose[static_cast<std::size_t>(f)].first;
    n.pitch = pose[static_cast<std::size_t>(f)].second;
    n.blur_kind = BlurKind::kMotion;
    n.blur_extent = 11.0 * n.s[kBlur];
    n.blur_angle = blur_angle + 15.0 * f / (F - 1);
    n.occluder = n.s[kOcclusion] > 0 ? Occluder::kHand : Occluder::kNone;
    n.occluder_x = occ_x[static_cast<std::size_t>(f)];
    n.occluder_y = occ_y;
    n.noise_seed = derive_seed(seed, kIjbsNoise, key << 12 | static_cast<uint64_t>(f)) | 1;
  }
  return out;
}

SynthSummary write_surveillance(const fs::path& out, const SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dir = out / "ijbs";
  std::error_code ec;
  fs::remove_all(dir, ec);  // an older set (other sizes) must not leave frames behind
  ensure_dir(dir / "images");
  const int64_t E = o.ijbs_subjects, S = o.ijbs_subjects + o.ijbs_unenrolled;
  const auto ids = sample_population(o.seed, kIdsIjbs, S, o.population);
  struct Row {
    int64_t tmpl, subject;
    std::string file, media;
    int64_t video = 0, frame = -1;
  };
  std::vector<Row> rows;
  std::vector<Job> jobs;
  json subjects = json::array(), videos = json::array();
  std::vector<int64_t> singles, bookings, all_videos, s2s_gallery, s2s_probes;
  int64_t next_template = 1;
  static const double kBookingYaw[5] = {0, -45, 45, -25, 25};
  for (int64_t s = 0; s < S; ++s) {
    const int64_t subject = s + 1;
    const bool enrolled = s < E;
    const Identity& id = ids[static_cast<std::size_t>(s)];
    Rng lay(derive_seed(o.seed, kIjbsLayout, static_cast<uint64_t>(s)));
    // Every other enrolled subject has at least two videos, so that the
    // surveillance-to-surveillance protocol has mated probes.
    const int64_t nvideo = o.ijbs_max_videos >= 2 && enrolled && s % 2 == 0 ? lay.integer(2, o.ijbs_max_videos)
                                                                             : lay.integer(1, o.ijbs_max_videos);
    json js{{"subject", subject}, {"identity", id.index}, {"family", id.family}, {"enrolled", enrolled}};
    const std::string stem = fmt::format("images/{:04d}_", subject);
    if (enrolled) {
      const int64_t single = next_template++;
      Rng rng(derive_seed(o.seed, kIjbsStill, static_cast<uint64_t>(s) << 8));
      jobs.push_back(Job{&id, still_nuisance(rng, 0, 0), 0});
      rows.push_back({single, subject, stem + "single.jpg", "single"});
      singles.push_back(single);
      const int64_t booking = next_template++;
      for (int k = 0; k < o.ijbs_booking; ++k) {
        Rng brng(derive_seed(o.seed, kIjbsStill, static_cast<uint64_t>(s) << 8 | static_cast<uint64_t>(k + 1)));
        const double yaw = k < 5 ? kBookingYaw[k] : brng.uniform(-45, 45);
        jobs.push_back(Job{&id, still_nuisance(brng, yaw, 0), 0});
        rows.push_back({booking, subject, stem + fmt::format("booking{}.jpg", k + 1), "booking"});
      }
      bookings.push_back(booking);
      js["single"] = single;
      js["booking"] = booking;
    }
    json vids = json::array();
    for (int64_t v = 0; v < nvideo; ++v) {
      const int64_t tmpl = next_template++;
      const auto frames = video_nuisances(o.seed, static_cast<uint64_t>(s) << 8 | static_cast<uint64_t>(v), o.ijbs_frames);
      json names = json::array();
      for (std::size_t f = 0; f < frames.size(); ++f) {
        jobs.push_back(Job{&id, frames[f], 0});
        rows.push_back({tmpl, subject, stem + fmt::format("video{}_{:03d}.jpg", v + 1, f + 1), "video", v + 1,
                        static_cast<int64_t>(f)});
        names.push_back(rows.back().file);
      }
      videos.push_back({{"template", tmpl}, {"subject", subject}, {"enrolled", enrolled}, {"video", v + 1},
                        {"frames", std::move(names)}});
      vids.push_back(tmpl);
      all_videos.push_back(tmpl);
      // S2S: an enrolled subject's first video is its gallery video; the rest are probes.
      (enrolled && v == 0 ? s2s_gallery : s2s_probes).push_back(tmpl);
    }
    js["videos"] = std::move(vids);
    subjects.push_back(std::move(js));
  }

  std::string csv = "TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA\n";
  json files;
  render_jobs(jobs, o, "ijbs", [&](std::size_t k, Done&& d) {
    const Row& r = rows[k];
    write_file_atomic(dir / r.file, d.jpeg);
    csv += fmt::format("{},{},{},{}\n", r.tmpl, r.subject, r.file, r.media);
    json j = image_json(jobs[k], d);
    j["template"] = r.tmpl;
    j["subject"] = r.subject;
    j["media"] = r.media;
    if (r.frame >= 0) {
      j["video"] = r.video;
      j["frame"] = r.frame;
    }
    files[r.file] = std::move(j);
  });
  write_file_atomic(dir / "templates.csv", csv);
  auto join = [](const std::vector<int64_t>& v) {
    std::string g;
    for (int64_t t : v) {
      if (!g.empty()) g += ';';
      g += std::to_string(t);
    }
    return g;
  };
  json protocols;
  auto protocol = [&](const std::string& name, const std::vector<int64_t>& probes, const std::vector<int64_t>& gallery) {
    const std::string g = join(gallery);
    std::string text = "PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS\n";
    for (int64_t p : probes) text += fmt::format("{},{}\n", p, g);
    write_file_atomic(dir / (name + ".csv"), text);
    protocols[name] = {{"file", name + ".csv"}, {"probes", probes.size()}, {"gallery_templates", gallery.size()}};
  };
  protocol("surveillance_to_single", all_videos, singles);
  protocol("surveillance_to_booking", all_videos, bookings);
  protocol("surveillance_to_surveillance", s2s_probes, s2s_gallery);

  json manifest;
  manifest["version"] = kSurveillanceVersion;
  manifest["options"] = surveillance_options_json(o);
  json w;
  for (int k = 0; k < kNuisances; ++k) w[nuisance_name(k)] = quality_weights()[static_cast<std::size_t>(k)];
  manifest["quality_formula"] = {{"formula", "q = prod_k (1 - w_k * s_k), s_k in [0, 1] the nuisance strengths"},
                                 {"weights", w}};
  manifest["max_frame_step"] = kMaxFrameStep;
  json idj = json::array();
  for (const auto& id : ids) idj.push_back(identity_to_json(id));
  manifest["identities"] = std::move(idj);
  manifest["subjects"] = std::move(subjects);
  manifest["videos"] = std::move(videos);
  manifest["protocols"] = std::move(protocols);
  manifest["files"] = std::move(files);
  write_file_atomic(dir / "manifest.json", manifest.dump() + "\n");  // last: marks the set complete
  SynthSummary sum;
  sum.ijbs_images = static_cast<int64_t>(jobs.size());
  sum.ijbs_templates = next_template - 1;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("synth: surveillance set: {} subjects ({} enrolled), {} templates, {} images, {} frames in {} videos ({:.1f} s)",
               S, E, sum.ijbs_templates, sum.ijbs_images, sum.ijbs_images - E * (1 + o.ijbs_booking),
               all_videos.size(), sum.seconds);
  return sum;
}

// Our own threads do the parallel work; OpenCV's pool would only contend.
struct SingleThreadedOpenCv {
  int n = cv::getNumThreads();
  SingleThreadedOpenCv() { cv::setNumThreads(1); }
  ~SingleThreadedOpenCv() { cv::setNumThreads(n); }
};

}  // namespace

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

bool ensure_surveillance(const fs::path& out, const SynthOptions& o, SynthSummary* summary) {
  check_options(o);
  const fs::path m = out / "ijbs" / "manifest.json";
  if (fs::exists(m)) {
    try {
      const json have = json::parse(read_file(m));
      if (have.value("version", std::string()) == kSurveillanceVersion &&
          have.value("options", json()) == surveillance_options_json(o))
        return false;
    } catch (const json::exception&) {
      // unreadable: write it again
    }
  }
  ensure_dir(out);
  SingleThreadedOpenCv cv_threads;
  const SynthSummary s = write_surveillance(out, o);
  if (summary) {
    summary->ijbs_images = s.ijbs_images;
    summary->ijbs_templates = s.ijbs_templates;
  }
  return true;
}

void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn) {
  threads = std::max(1, std::min<int>(threads, static_cast<int>(std::max<int64_t>(n, 1))));
  if (threads == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex mu;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int64_t i; (i = next.fetch_add(1)) < n;) {
        try {
          fn(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!error) error = std::current_exception();
          next = n;
        }
      }
    });
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
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

SynthSummary generate(const fs::path& out, const SynthOptions& o) {
  check_options(o);
  const auto t0 = std::chrono::steady_clock::now();
  ensure_dir(out);
  SingleThreadedOpenCv cv_threads;

  json manifest;
  manifest["version"] = kSynthVersion;
  manifest["options"] = options_json(o);
  json w;
  for (int k = 0; k < kNuisances; ++k) w[nuisance_name(k)] = quality_weights()[static_cast<std::size_t>(k)];
  manifest["quality_formula"] = {{"formula", "q = prod_k (1 - w_k * s_k), s_k in [0, 1] the nuisance strengths"},
                                 {"weights", w}};
  manifest["template_112"] = landmarks_json(data::face_template());
  SynthSummary sum;
  sum.train_ids = o.ids;
  spdlog::info("synth: preset {} seed {} -> {}", o.preset, o.seed, out.string());
  sum.train_images = write_train(out, o, manifest, &sum.identity_free_images);
  sum.val_pairs = write_val(out, o, manifest);
  sum.val_cross_pairs = write_val_cross(out, o, manifest);
  const IjbCounts ijb = write_ijb(out, o, manifest);
  sum.ijb_images = ijb.images;
  sum.ijb_templates = ijb.templates;
  sum.tinyface_images = write_tinyface(out, o, manifest);
  sum.tail_probe_images = write_tail_probe(out, o, manifest);
  write_file_atomic(out / "manifest.json", manifest.dump() + "\n");
  const SynthSummary ijbs = write_surveillance(out, o);
  sum.ijbs_images = ijbs.ijbs_images;
  sum.ijbs_templates = ijbs.ijbs_templates;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("synth: {} training images of {} identities ({} identity-free), {} val pairs, {} val_cross pairs, "
               "{} IJB images ({} templates), {} TinyFace images, {} tail-probe images, "
               "{} surveillance images ({} templates) in {:.1f} s",
               sum.train_images, sum.train_ids, sum.identity_free_images, sum.val_pairs, sum.val_cross_pairs,
               sum.ijb_images, sum.ijb_templates, sum.tinyface_images, sum.tail_probe_images, sum.ijbs_images,
               sum.ijbs_templates, sum.seconds);
  return sum;
}

cv::Mat preview_sheet(int rows, const SynthOptions& o) {
  require(rows >= 1 && rows <= 200, "synth: --preview takes 1..200 identities, got {}", rows);
  const auto ids = sample_population(o.seed, kIdsTrain, rows, o.population);
  const double bands[7][2] = {{0.95, 1.0}, {0.8, 0.9}, {0.65, 0.75}, {0.5, 0.6}, {0.35, 0.45}, {0.2, 0.3}, {0.0, 0.12}};
  const int cols = 7;
  cv::Mat sheet(rows * 112, cols * 112, CV_8UC3, cv::Scalar(0, 0, 0));
  parallel_for(static_cast<int64_t>(rows) * cols, o.threads, [&](int64_t k) {
    const int r = static_cast<int>(k / cols), c = static_cast<int>(k % cols);
    Rng rng(derive_seed(o.seed, kPreview, static_cast<uint64_t>(k)));
    ImageNuisance n;
    if (c == 0) {
      derive(n, rng);  // all strengths zero: the clean face
      n.roll = 0;
    } else {
      n = sample_nuisance_in_band(rng, o.nuisance, bands[c][0], bands[c][1]);
    }
    Rendered img = render_aligned(ids[static_cast<std::size_t>(r)], n);
    cv::putText(img.image, fmt::format("{:.2f}", n.quality()), {3, 11}, cv::FONT_HERSHEY_PLAIN, 0.8, {0, 255, 255}, 1,
                cv::LINE_AA);
    img.image.copyTo(sheet(cv::Rect(c * 112, r * 112, 112, 112)));
  });
  return sheet;
}

std::vector<cv::Mat> sample_faces(int64_t count, const SynthOptions& o) {
  require(count >= 1 && count <= 100000, "synth: 1..100000 faces, got {}", count);
  const auto ids = sample_population(o.seed, kIdsVal, count, o.population);  // not the training identities
  std::vector<cv::Mat> out(static_cast<std::size_t>(count));
  parallel_for(count, o.threads, [&](int64_t k) {
    Rng rng(derive_seed(o.seed, kSample, static_cast<uint64_t>(k)));
    out[static_cast<std::size_t>(k)] = render_aligned(ids[static_cast<std::size_t>(k)], sample_nuisance(rng, o.nuisance)).image;
  });
  return out;
}

}  // namespace qface::synth
