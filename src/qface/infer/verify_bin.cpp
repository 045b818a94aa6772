#include "qface/infer/verify_bin.h"

#include "qface/core/error.h"

namespace qface::infer {

BinVerification verify_encoded(backbones::BackboneImpl& model, const std::string& set,
                               const std::vector<std::string>& images, std::span<const uint8_t> issame,
                               const std::string& source, int batch, const InferenceOptions& options,
                               const eval::VerifyOptions& verify, bool flip) {
  require(images.size() == 2 * issame.size(), "{}: {} images for {} pairs", source, images.size(), issame.size());
  BinVerification v;
  v.features = embed_encoded(model, images, source, batch, options, flip);
  const eval::ModeInput in{.plain = v.features.plain.embeddings,
                           .plain_norms = v.features.plain.norms,
                           .flipped = flip ? v.features.flipped.embeddings : torch::Tensor(),
                           .flipped_norms = flip ? v.features.flipped.norms : torch::Tensor()};
  v.result = eval::verify_modes(set, in, issame, verify, &v.fused, &v.fused_norms);
  return v;
}

}  // namespace qface::infer
