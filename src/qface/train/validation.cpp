#include "qface/train/validation.h"

#include <torch/torch.h>

#include <filesystem>

#include "qface/core/error.h"
#include "qface/eval/features.h"
#include "qface/eval/verify.h"
#include "qface/infer/embed.h"

namespace qface::train {

BinVerification verify_encoded(backbones::BackboneImpl& model, const std::vector<std::string>& images,
                               const std::vector<uint8_t>& issame, const std::string& source, int64_t batch,
                               const infer::InferenceOptions& options) {
  BinVerification v;
  v.features = infer::embed_encoded(model, images, source, static_cast<int>(batch), options);
  const infer::PlainAndFlipped& e = v.features;
  auto [fused, fused_norms] = eval::fuse_flip(e.plain.embeddings, e.plain.norms, e.flipped.embeddings, e.flipped.norms);
  v.plain = eval::verify_embeddings(e.plain.embeddings, issame);
  v.flip_fused = eval::verify_embeddings(fused, issame);
  return v;
}

Validator::Validator(const std::vector<std::string>& bin_paths, int64_t batch) : batch_(batch) {
  require(batch > 0, "validation.batch_size must be positive, got {}", batch);
  for (const auto& path : bin_paths) {
    eval::BinPairs pairs = eval::read_bin_pairs(path, true);
    sets_.push_back({std::filesystem::path(path).stem().string(), path, std::move(pairs.images_bytes),
                     std::move(pairs.issame)});
  }
}

nlohmann::json Validator::run(backbones::BackboneImpl& model) const {
  const bool was_training = model.is_training();
  model.eval();
  nlohmann::json out = nlohmann::json::object();
  infer::InferenceOptions options;  // the live model: no folding, fp32
  for (const Set& s : sets_) {
    const BinVerification v = verify_encoded(model, s.images, s.issame, s.path, batch_, options);
    out[s.name] = {{"pairs", v.plain.pairs},
                   {"acc", v.plain.accuracy_mean},
                   {"acc_std", v.plain.accuracy_std},
                   {"acc_flip", v.flip_fused.accuracy_mean},
                   {"tar_far_1e-3", v.plain.tar_json(1e-3)},
                   {"tar_far_1e-2", v.plain.tar_json(1e-2)},
                   {"norm_mean", v.features.plain.norms.mean().item<double>()}};
  }
  model.train(was_training);
  return out;
}

}  // namespace qface::train
