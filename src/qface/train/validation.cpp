#include "qface/train/validation.h"

#include <torch/torch.h>

#include <filesystem>
#include <iterator>

#include "qface/core/error.h"
#include "qface/data/bin_set.h"
#include "qface/eval/verify.h"
#include "qface/infer/embed.h"
#include "qface/train/sharded_classifier.h"

namespace qface::train {

Validator::Validator(const std::vector<std::string>& bin_paths, int64_t batch, std::shared_ptr<Dist> dist)
    : batch_(batch), dist_(std::move(dist)) {
  require(batch > 0, "validation.batch_size must be positive, got {}", batch);
  for (const auto& path : bin_paths) {
    data::BinSet bin = data::read_bin_set(path);
    Set s{.name = std::filesystem::path(path).stem().string(),
          .path = path,
          .num_images = static_cast<int64_t>(bin.images.size()),
          .issame = std::move(bin.issame)};
    const auto [first, count] = shard_range(s.num_images, dist_->rank(), dist_->world_size());
    s.first = first;
    std::move(bin.images.begin() + first, bin.images.begin() + first + count, std::back_inserter(s.images));
    sets_.push_back(std::move(s));
  }
}

nlohmann::json Validator::run(backbones::BackboneImpl& model) const {
  const bool was_training = model.is_training();
  model.eval();
  infer::InferenceOptions options;  // the live model: no folding, fp32
  // This rank's share of every set: rows [plain embedding, plain norm,
  // flipped embedding, flipped norm].
  const int64_t dim = model.embedding_size(), cols = 2 * dim + 2;
  std::vector<torch::Tensor> local;
  std::exception_ptr error;
  try {
    for (const Set& s : sets_) {
      torch::Tensor rows = torch::empty({0, cols});
      if (!s.images.empty()) {
        const std::string where =
            dist_->world_size() == 1 ? s.path
                                      : fmt::format("{} (rank {}'s share: image numbers count from {})", s.path,
                                                    dist_->rank(), s.first);
        const infer::PlainAndFlipped f = infer::embed_encoded(model, s.images, where, static_cast<int>(batch_), options);
        rows = torch::cat({f.plain.embeddings, f.plain.norms.reshape({-1, 1}), f.flipped.embeddings,
                           f.flipped.norms.reshape({-1, 1})},
                          1);
      }
      local.push_back(rows);
      if (after_share_) after_share_(static_cast<int64_t>(s.images.size()), s.num_images);
    }
  } catch (...) {
    error = std::current_exception();
  }
  if (any_rank(*dist_, error != nullptr)) {
    model.train(was_training);
    if (error) std::rethrow_exception(error);
    fail("validation failed on another rank (see its error)");
  }

  nlohmann::json out = nlohmann::json::object();
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    const Set& s = sets_[i];
    torch::Tensor rows = local[i];
    if (dist_->world_size() > 1) {
      // all_gather needs equal shapes: every share padded to the largest.
      const int world = dist_->world_size();
      const int64_t largest = shard_range(s.num_images, 0, world).second;
      torch::Tensor padded = torch::zeros({largest, cols});
      padded.narrow(0, 0, rows.size(0)).copy_(rows);
      torch::Tensor all = dist_->all_gather(padded);
      std::vector<torch::Tensor> shares;
      for (int r = 0; r < world; ++r)
        shares.push_back(all.narrow(0, r * largest, shard_range(s.num_images, r, world).second));
      rows = torch::cat(shares);
    }
    const eval::ModeInput f{.plain = rows.narrow(1, 0, dim).contiguous(),
                            .plain_norms = rows.select(1, dim).contiguous(),
                            .flipped = rows.narrow(1, dim + 1, dim).contiguous(),
                            .flipped_norms = rows.select(1, 2 * dim + 1).contiguous()};
    const eval::VerifySet v = eval::verify_modes(s.name, f, s.issame);
    const eval::VerifyResult &plain = v.modes[0].second, &flip_fused = v.modes[1].second;
    out[s.name] = {{"pairs", plain.pairs},
                   {"acc", plain.accuracy_mean},
                   {"acc_std", plain.accuracy_std},
                   {"acc_flip", flip_fused.accuracy_mean},
                   {"tar_far_1e-3", plain.tar_json(1e-3)},
                   {"tar_far_1e-2", plain.tar_json(1e-2)},
                   {"norm_mean", f.plain_norms.mean().item<double>()}};
  }
  model.train(was_training);
  return out;
}

}  // namespace qface::train
