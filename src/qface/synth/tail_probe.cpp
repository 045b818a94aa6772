// The held-out tail probe DIR/tail_probe: images filed under training classes
// that are not in train.rec, to measure what a trained model makes of the
// identity-free tail (issue 35). Three kinds, the same labels in each:
//
//   free/            identity-free: a fresh identity (its own stream, neither a
//                    training nor a verification identity) under the
//                    unrecognizable recipe, as the identity-free training images
//   ordinary/        the training identity under the training nuisance
//                    distribution (3 % of them unrecognizable, as in training)
//   unrecognizable/  the training identity under the unrecognizable recipe
//                    (identity kept, image destroyed): does degradation alone
//                    remove the identity, apart from memorization?
//
// Rank-1 of a probe image against the trained head's class centres, at
// chance, is 1 / classes.
#include <fmt/format.h>

#include "qface/core/fs.h"
#include "qface/synth/rng.h"
#include "qface/synth/writer.h"

namespace qface::synth::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kTailProbeVersion = "qface-tail-probe-1";
const char* const kKinds[3] = {"free", "ordinary", "unrecognizable"};

// Training class of probe image n of a kind: `count` classes spread evenly
// (all distinct) when count <= classes, else every class in turn.
int64_t probe_label(int64_t n, int64_t count, int64_t classes) {
  return count <= classes ? n * classes / count : n % classes;
}

}  // namespace

int64_t write_tail_probe(const fs::path& out, const SynthOptions& o, json& manifest) {
  std::error_code ec;
  fs::remove_all(out / "tail_probe", ec);  // an older probe (other options) must not leave images behind
  if (o.identity_free <= 0 || o.tail_probe <= 0) return 0;
  const auto train_ids = sample_population(o.seed, kIdsTrain, o.ids, o.population);
  const auto free_ids = sample_population(o.seed, kIdsProbeFree, o.tail_probe, free_population(o));
  std::vector<Job> jobs;
  std::vector<LabelledFile> files;
  json list = json::array();
  std::vector<int64_t> seen(static_cast<std::size_t>(o.ids), 0);
  for (int64_t n = 0; n < o.tail_probe; ++n) {
    const int64_t label = probe_label(n, o.tail_probe, o.ids);
    const int64_t m = ++seen[static_cast<std::size_t>(label)];
    for (int kind = 0; kind < 3; ++kind) {
      Rng rng(derive_seed(o.seed, kProbeImage, static_cast<uint64_t>(n) << 2 | static_cast<uint64_t>(kind)));
      const Identity& id =
          kind == 0 ? free_ids[static_cast<std::size_t>(n)] : train_ids[static_cast<std::size_t>(label)];
      const ImageNuisance nu = kind == 1 ? sample_nuisance(rng, o.nuisance) : sample_unrecognizable(rng, o.nuisance);
      jobs.push_back(Job{&id, nu, 0});
      files.push_back({fmt::format("tail_probe/{}/{}_{}.jpg", kKinds[kind], label, m), label});
      list.push_back({{"file", files.back().file},
                      {"kind", kKinds[kind]},
                      {"label", label},
                      {"identity", kind == 0 ? int64_t{-1} : label},
                      {"quality", r4(nu.quality())},
                      {"unrecognizable", nu.unrecognizable}});
    }
  }
  json images = write_labelled_images(out, jobs, files, o, "tail_probe");
  for (auto& [file, j] : images.items()) {  // the fresh identities are no population's index
    if (file.rfind("tail_probe/free/", 0) == 0) {
      j["free_identity"] = j["identity"];
      j["identity"] = -1;
    }
  }
  json meta;
  meta["version"] = kTailProbeVersion;
  meta["classes"] = o.ids;
  meta["chance_rank1"] = 1.0 / static_cast<double>(o.ids);
  meta["identity_free_share"] = o.identity_free;
  meta["per_kind"] = o.tail_probe;
  meta["kinds"] = {
      {"free", "identity-free: a fresh identity under the unrecognizable recipe, filed under `label`"},
      {"ordinary", "the training identity `label` under the training nuisance distribution, not in train.rec"},
      {"unrecognizable", "the training identity `label` under the unrecognizable recipe, not in train.rec"}};
  meta["paths"] = "relative to the dataset folder (the parent of tail_probe/)";
  meta["files"] = std::move(list);
  write_file_atomic(out / "tail_probe" / "meta.json", meta.dump() + "\n");
  manifest["tail_probe"] = {{"meta", "tail_probe/meta.json"}, {"per_kind", o.tail_probe}, {"files", std::move(images)}};
  return static_cast<int64_t>(jobs.size());
}

}  // namespace qface::synth::detail
