#include "qface/train/validation.h"

#include <torch/torch.h>

#include <filesystem>

#include "qface/core/error.h"
#include "qface/eval/features.h"
#include "qface/eval/verify.h"
#include "qface/infer/embed.h"

namespace qface::train {

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
    infer::PlainAndFlipped r =
        infer::embed_encoded(model, s.images, s.path, static_cast<int>(batch_), options);
    auto [fused, fused_norms] =
        eval::fuse_flip(r.plain.embeddings, r.plain.norms, r.flipped.embeddings, r.flipped.norms);
    eval::VerifyResult plain = eval::verify_embeddings(r.plain.embeddings, s.issame);
    eval::VerifyResult flip = eval::verify_embeddings(fused, s.issame);
    out[s.name] = {{"pairs", plain.pairs},
                   {"acc", plain.accuracy_mean},
                   {"acc_std", plain.accuracy_std},
                   {"acc_flip", flip.accuracy_mean},
                   {"tar_far_1e-3", plain.val_mean},
                   {"norm_mean", r.plain.norms.mean().item<double>()}};
  }
  model.train(was_training);
  return out;
}

}  // namespace qface::train
