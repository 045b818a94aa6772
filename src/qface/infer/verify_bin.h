// A verification .bin set through a model: its images embedded plain and
// flipped (embed_encoded), then the 1:1 protocol (docs/method.md) in both feature modes
// (eval::verify_modes). Used by `qface eval verify --arch` and the main job;
// training-time validation embeds its share per rank and calls
// eval::verify_modes on the gathered features.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "qface/backbones/backbone.h"
#include "qface/eval/verify.h"
#include "qface/infer/embed.h"

namespace qface::infer {

struct BinVerification {
  PlainAndFlipped features;          // `flipped` empty without flip
  torch::Tensor fused, fused_norms;  // flip-fused features; undefined without flip
  eval::VerifySet result;            // modes "plain" and, with flip, "flip_fused"
  const eval::VerifyResult& plain() const { return result.modes.front().second; }
};

// `set` names the set in the result, `source` the file in errors; the model
// is used as it is (prepare_for_inference is the caller's business).
BinVerification verify_encoded(backbones::BackboneImpl& model, const std::string& set,
                               const std::vector<std::string>& images, std::span<const uint8_t> issame,
                               const std::string& source, int batch, const InferenceOptions& options,
                               const eval::VerifyOptions& verify = {}, bool flip = true);

}  // namespace qface::infer
