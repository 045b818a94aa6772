// The TinyFace-style set DIR/tinyface: aligned low-resolution probe and
// gallery images of a few identities, and distractor identities.
#include <algorithm>

#include "qface/synth/rng.h"
#include "qface/synth/writer.h"

namespace qface::synth::detail {
namespace fs = std::filesystem;
using nlohmann::json;

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

}  // namespace qface::synth::detail
