// The training set DIR/train.rec, train.idx: identities with a log-normal
// image count each, optional label noise and identity-free images.
#include <algorithm>
#include <cmath>

#include "qface/data/recordio.h"
#include "qface/synth/rng.h"
#include "qface/synth/writer.h"

namespace qface::synth::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

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

}  // namespace

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
  manifest["identities"]["train"] = identities_json(ids);
  const json free_note{{"share", o.identity_free},
                       {"images", free.ids.size()},
                       {"note", "identity -1, free_identity: index of a fresh identity (not stored)"}};
  manifest["train"] = {{"file", "train.rec"}, {"index", "train.idx"}, {"classes", o.ids},
                       {"identity_free", free_note}, {"records", std::move(records)}};
  *free_images = static_cast<int64_t>(free.ids.size());
  return static_cast<int64_t>(items.size());
}

}  // namespace qface::synth::detail
