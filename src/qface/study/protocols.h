// The AdaFace paper's low-quality protocols on a `qface synth` folder, next to
// the quality strata of model_eval.h:
//  - cross-quality 1:1 (val_cross.bin): a low-quality probe against a
//    high-quality reference of the same or another identity, TAR at a FAR
//    whose threshold is set once over all the set's impostor pairs (as the
//    paper's TAR@FAR), not per fold or per stratum;
//  - TinyFace-style closed-set identification (tinyface/): low-resolution
//    probes ranked against a low-resolution gallery plus distractor
//    identities, rank-1 and rank-5 with each probe's outcome kept;
//  - the identity-free tail check (tail_probe/, when the set has one):
//    held-out identity-free and ordinary renders of training identities,
//    identified against the trained head's class centres. Identity-free images
//    should be identified at chance (1 / classes); ordinary ones far above.
// Every per-item outcome is kept with its identity, so that two models can be
// compared with an identity (cluster) bootstrap.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <span>
#include <optional>
#include <string>
#include <vector>

#include "qface/eval/bootstrap.h"

namespace qface::study {

struct EvalSettings;

struct CrossSet {  // val_cross.bin: pairs (2i probe, 2i+1 reference)
  std::vector<std::string> images;
  std::vector<uint8_t> issame;
  std::vector<int64_t> identity;  // per image
};

struct GallerySet {  // tinyface/
  std::vector<std::string> probe, gallery, distractor;  // encoded images
  std::vector<std::string> probe_label, gallery_label;
};

struct TailSet {  // tail_probe/, and the identity-free images of train.rec
  std::vector<std::string> free, ordinary;  // held-out, encoded
  std::vector<int64_t> free_label, ordinary_label;  // training class index
  // The identity-free images the models trained on (at most kTrainTailSample,
  // spread evenly over the classes): how far each head fitted (memorized) them.
  std::vector<std::string> train_free;
  std::vector<int64_t> train_free_label;
};
inline constexpr std::size_t kTrainTailSample = 1000;

struct ProtocolData {
  std::optional<CrossSet> cross;
  std::optional<GallerySet> tinyface;
  std::optional<TailSet> tail;
};

// Reads whichever of the three sets the folder holds.
ProtocolData load_protocol_data(const std::filesystem::path& dir);

// The FARs the cross-quality protocol reports (each only where the set's
// impostor pairs resolve it: at least 1 / FAR of them).
inline const std::vector<double> kCrossFars = {1e-3, 1e-2, 1e-1};

struct ProtocolEval {
  std::vector<double> cross_score;      // per pair, cosine
  nlohmann::json cross;                 // {"pairs", "impostors", "tar": {"0.01": x | null, ...}}
  std::vector<double> tinyface_rank;    // per probe, rank of the best mate (1 = first)
  nlohmann::json tinyface;              // eval::to_json(RankResult)
  std::vector<double> tail_free_hit, tail_ordinary_hit;  // per image, 1 when rank-1 is its label
  std::vector<double> tail_train_hit;   // the identity-free training images: 1 when fitted (rank-1 = label)
  nlohmann::json tail;  // {"classes", "chance", "free", "ordinary", "train_free", "free_rank1", "ordinary_rank1", "train_free_rank1"}
  nlohmann::json to_json() const;
  static ProtocolEval from_json(const nlohmann::json& j);
};

// Evaluates (or reads back from eval_dir/protocols_eval.json when the model,
// settings and data are unchanged). `centres` are the trained head's class
// centres [D, C] (undefined: the tail check is skipped).
ProtocolEval evaluate_protocols(const std::filesystem::path& model, const std::string& name, const ProtocolData& data,
                                const std::filesystem::path& data_dir, const EvalSettings& settings,
                                const torch::Tensor& centres, const std::filesystem::path& eval_dir);

// The class centres W [D, C] of a training run: the head's kernel in the
// newest checkpoint of run_dir/checkpoints (undefined when there is none).
torch::Tensor class_centres(const std::filesystem::path& run_dir);

// TAR at `far` with one threshold over all impostors (accept when score > t,
// t from eval::threshold_at_fmr); NaN when fewer than 1 / far impostors or no
// genuine pair among `items` (all pairs when empty).
double tar_at_far(const std::vector<double>& score, const std::vector<uint8_t>& genuine, double far,
                  std::span<const int64_t> items = {});

// TAR@FAR of model a minus model b on the same pairs, resampling the probes'
// identities (cluster bootstrap); each resample sets each model's threshold
// anew on its own impostors.
eval::Interval tar_difference(const std::vector<double>& a, const std::vector<double>& b,
                              const std::vector<uint8_t>& genuine, const std::vector<int64_t>& pair_identity,
                              double far, const eval::BootstrapOptions& options);

}  // namespace qface::study
