// Periodic validation during training: the 1:1 protocol (SPEC §5) on .bin
// verification sets, embedded with the backbone being trained (eval mode, no
// BatchNorm folding), plain and flip-fused, plus the mean feature norm of each
// set. With qface synth data the sets are the quality strata (val_high,
// val_mixed, val_low), so this is accuracy and mean norm per stratum.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "qface/backbones/backbone.h"
#include "qface/eval/verify.h"
#include "qface/infer/embed.h"

namespace qface::train {

// One .bin set through a model: its images embedded plain and flipped, and the
// 10-fold protocol on the plain and on the flip-fused features. Shared by the
// training-time Validator and the main job's final evaluation.
struct BinVerification {
  infer::PlainAndFlipped features;
  eval::VerifyResult plain, flip_fused;
};
BinVerification verify_encoded(backbones::BackboneImpl& model, const std::vector<std::string>& images,
                               const std::vector<uint8_t>& issame, const std::string& source, int64_t batch,
                               const infer::InferenceOptions& options);

class Validator {
 public:
  // Reads every set once (errors name the file); `batch` images per forward.
  Validator(const std::vector<std::string>& bin_paths, int64_t batch);

  bool empty() const { return sets_.empty(); }

  // {"<set>": {"acc", "acc_std", "acc_flip", "tar_far_1e-3", "tar_far_1e-2" (null when the
  // impostors do not resolve it), "norm_mean", "pairs"}, ...}
  // The model is put in eval mode and restored to training mode afterwards.
  nlohmann::json run(backbones::BackboneImpl& model) const;

 private:
  struct Set {
    std::string name, path;
    std::vector<std::string> images;  // encoded
    std::vector<uint8_t> issame;
  };
  std::vector<Set> sets_;
  int64_t batch_;
};

}  // namespace qface::train
