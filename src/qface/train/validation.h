// Periodic validation during training: the 1:1 protocol (docs/method.md) on .bin
// verification sets, embedded with the backbone being trained (eval mode, no
// BatchNorm folding), plain and flip-fused, plus the mean feature norm of each
// set. With qface synth data the sets are the quality strata (val_high,
// val_mixed, val_low), so this is accuracy and mean norm per stratum.
//
// Data parallel, every rank validates: each embeds its contiguous share of
// every set's images (as shard_range splits classes), the features are
// all-gathered, and every rank runs the protocol on all of them, so all ranks
// get the same numbers in about 1/W of the time, and none waits in a
// collective while another validates alone.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qface/backbones/backbone.h"
#include "qface/eval/verify.h"
#include "qface/infer/embed.h"
#include "qface/train/distributed.h"

namespace qface::train {

class Validator {
 public:
  // Reads every set once (errors name the file) and keeps this rank's share
  // of its images; `batch` images per forward.
  Validator(const std::vector<std::string>& bin_paths, int64_t batch, std::shared_ptr<Dist> dist = Dist::single());

  bool empty() const { return sets_.empty(); }

  // {"<set>": {"acc", "acc_std", "acc_flip", "tar_far_1e-3", "tar_far_1e-2" (null when the
  // impostors do not resolve it), "norm_mean", "pairs"}, ...}
  // The model is put in eval mode and restored to training mode afterwards.
  // A collective: every rank calls it, with the same weights; an error on one
  // rank (an image that does not decode) is raised on every rank.
  nlohmann::json run(backbones::BackboneImpl& model) const;

  // Called on each rank after it embedded its share of a set, with the
  // share's and the set's image counts (tests stand in a large set's cost).
  void after_share(std::function<void(int64_t share, int64_t set_images)> f) { after_share_ = std::move(f); }

 private:
  struct Set {
    std::string name, path;
    int64_t num_images = 0;           // in the whole set
    int64_t first = 0;                // this rank's share: images [first, first + images.size())
    std::vector<std::string> images;  // encoded
    std::vector<uint8_t> issame;
  };
  std::vector<Set> sets_;
  int64_t batch_;
  std::shared_ptr<Dist> dist_;
  std::function<void(int64_t, int64_t)> after_share_;
};

}  // namespace qface::train
