// 1:1 verification pair sets: the quality strata val_high / val_mixed /
// val_low (write_val) and the cross-quality set val_cross (a low-quality probe
// against a high-quality reference, the AdaFace paper's low-quality setting),
// all through write_pair_set; and val_reference, the clean renders the
// strata's images are measured against.
#include <map>

#include "qface/core/fs.h"
#include "qface/data/bin_set.h"
#include "qface/synth/rng.h"
#include "qface/synth/writer.h"

namespace qface::synth::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The two identities of pair p (genuine: a == b).
std::pair<int64_t, int64_t> pair_identities(Rng& rng, bool same, const std::vector<Identity>& ids,
                                            const std::map<int64_t, std::vector<int64_t>>& families) {
  const auto n = static_cast<int64_t>(ids.size());
  const int64_t a = rng.integer(0, n - 1);
  int64_t b = a;
  if (!same) {
    const auto& fam = families.at(ids[static_cast<std::size_t>(a)].family);
    if (fam.size() > 1 && rng.chance(0.5)) {  // look-alike impostor
      while (b == a) b = fam[static_cast<std::size_t>(rng.integer(0, static_cast<int64_t>(fam.size()) - 1))];
    } else {
      b = rng.integer(0, n - 2);
      if (b >= a) ++b;
    }
  }
  return {a, b};
}

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

}  // namespace

json write_pair_set(const fs::path& out, const SynthOptions& o, const std::vector<Identity>& ids, int64_t pairs,
                    const PairSetSpec& spec) {
  std::map<int64_t, std::vector<int64_t>> families;
  for (const auto& id : ids) families[id.family].push_back(id.index);
  std::vector<Job> jobs(static_cast<std::size_t>(2 * pairs));
  std::vector<bool> issame(static_cast<std::size_t>(pairs));
  for (int64_t p = 0; p < pairs; ++p) {
    Rng rng(derive_seed(o.seed, spec.pair_stream, static_cast<uint64_t>(p)));
    const bool same = p % 2 == 0;  // alternating: every fold is balanced
    const auto [a, b] = pair_identities(rng, same, ids, families);
    issame[static_cast<std::size_t>(p)] = same;
    const bool flip = rng.chance(0.5);  // drawn for every set: the stream's layout does not depend on `shuffle`
    for (int side = 0; side < 2; ++side) {
      const int band = spec.shuffle && flip ? 1 - side : side;
      Rng irng(derive_seed(o.seed, spec.image_stream, static_cast<uint64_t>(2 * p + side)));
      const int64_t who = side == 0 ? a : b;
      jobs[static_cast<std::size_t>(2 * p + side)] =
          Job{&ids[static_cast<std::size_t>(who)],
              sample_nuisance_in_band(irng, o.nuisance, spec.lo[band], spec.hi[band]), 0};
    }
  }
  data::BinSet bin;
  bin.issame.assign(issame.begin(), issame.end());
  bin.images.resize(jobs.size());
  json images = json::array();
  render_jobs(jobs, o, spec.name, [&](std::size_t k, Done&& d) {
    json j = image_json(jobs[k], d);
    j["index"] = k;
    images.push_back(std::move(j));
    bin.images[k] = std::move(d.jpeg);
  });
  data::write_bin_set(out / (spec.name + ".bin"), bin);
  json side;
  side["file"] = spec.name + ".bin";
  side["issame"] = json::array();
  side["identity"] = json::array();
  side["quality"] = json::array();
  for (int64_t p = 0; p < pairs; ++p) {
    const auto& j0 = jobs[static_cast<std::size_t>(2 * p)];
    const auto& j1 = jobs[static_cast<std::size_t>(2 * p + 1)];
    side["issame"].push_back(static_cast<bool>(issame[static_cast<std::size_t>(p)]));
    side["identity"].push_back({j0.identity->index, j1.identity->index});
    side["quality"].push_back({r4(j0.nuisance.quality()), r4(j1.nuisance.quality())});
  }
  write_file_atomic(out / (spec.name + ".json"), side.dump() + "\n");
  side["images"] = std::move(images);
  return side;
}

int64_t write_val(const fs::path& out, const SynthOptions& o, json& manifest) {
  const auto ids = sample_population(o.seed, kIdsVal, o.val_ids, o.population);
  manifest["identities"]["val"] = identities_json(ids);
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

int64_t write_val_cross(const fs::path& out, const SynthOptions& o, json& manifest) {
  const int64_t n = o.val_cross_pairs < 0 ? o.val_pairs : o.val_cross_pairs;
  if (n == 0) return 0;
  const int64_t pairs = n + n % 2;  // even: half genuine, half impostor
  // The verification identities of val_high / val_mixed / val_low (the same
  // draw), with pairs and images from streams of their own: the other sets keep their bytes.
  const auto ids = sample_population(o.seed, kIdsVal, o.val_ids, o.population);
  PairSetSpec spec;
  spec.name = "val_cross";
  spec.pair_stream = kValCrossPair;
  spec.image_stream = kValCrossImage;
  spec.lo[0] = o.low_lo;  // image 2i: the low-quality probe
  spec.hi[0] = o.low_hi;
  spec.lo[1] = o.high_lo;  // image 2i + 1: the high-quality reference
  spec.hi[1] = 1.0;
  json side = write_pair_set(out, o, ids, pairs, spec);
  side["note"] = "image 2i: low-quality probe (quality_bands.low), 2i+1: high-quality reference (quality_bands.high)";
  manifest["val_cross"] = std::move(side);
  return pairs;
}

}  // namespace qface::synth::detail
