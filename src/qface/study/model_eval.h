// The main job's evaluation of one trained model on a `qface synth` data
// folder, with everything the claims need kept per item so that two models
// can be compared on the same pairs and images (paired bootstrap):
//  - per quality stratum (val_high, val_mixed, val_low): the 10-fold protocol
//    on plain features (and flip-fused when asked), each pair's correctness
//    under its fold's threshold, each image's feature norm and its empirical
//    recognizability (cosine to its identity's clean renders, val_reference);
//  - quality as a score on the pooled strata: EDC (threshold fixed at FMR
//    1e-3 of the full set, pAUC to 20 %) and MagFace's ERC for the norm,
//    BRISQUE, the ground truth (oracle) and random order; Spearman with the
//    ground truth;
//  - clustering of the pooled verification images by identity, plain and
//    quality-ordered (the norm), at the model's cosine threshold for FMR 1e-3;
//  - when the folder holds the surveillance set (DIR/ijbs): the three IJB-S
//    protocols with mean, norm-weighted and top-5 frame fusion, each probe's
//    outcome kept (eval/ijbs.h).
// Results are cached in <run>/eval/model_eval.json (and ijbs_eval.json) under
// a fingerprint of the model file, the settings and the data; the report JSONs
// go next to them.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qface/backbones/backbone.h"
#include "qface/eval/ijbs.h"
#include "qface/infer/embed.h"
#include "qface/study/protocols.h"

namespace qface::study {

struct EvalSettings {
  bool flip = true;    // also the flip-fused protocol (AdaFace's norm-weighted fusion)
  bool bf16 = false;   // inference under bf16 autocast (the main job: as the recipe trains)
  int batch = 64;
  double cluster_core = 0.5;  // quality-ordered clustering: share of images (highest norm) that may link clusters
  int cluster_k = 20;
  uint64_t seed = 0;   // the random-order quality baseline
  nlohmann::json to_json() const;
};

// Model-independent truth of a data folder, loaded once per job.
struct Stratum {
  std::string name;                  // "val_high"
  std::vector<std::string> images;   // encoded, pairs (2i, 2i+1)
  std::vector<uint8_t> issame;
  std::vector<int64_t> identity;     // per image (verification identity index)
  std::vector<double> gt;            // per image: the generator's quality
  std::vector<double> brisque;       // per image: BRISQUE (lower is better), cached in the data folder
};
struct EvalData {
  std::filesystem::path dir;
  std::vector<Stratum> strata;
  std::vector<std::string> reference_images;  // clean renders
  std::vector<int64_t> reference_identity;
  std::optional<eval::IjbsMeta> ijbs;  // DIR/ijbs (surveillance protocols) when present
  ProtocolData protocols;              // val_cross, tinyface/, tail_probe/ (study/protocols.h), when present
};
// Reads val_{high,mixed,low}.bin, their sidecars, the manifest's ground truth,
// val_reference.bin and the surveillance set's meta (DIR/ijbs, when there);
// computes BRISQUE once and keeps it in <dir>/brisque.json.
EvalData load_eval_data(const std::filesystem::path& dir);

struct StratumResult {
  std::string name;
  double acc = 0, acc_std = 0;
  std::optional<double> acc_flip, acc_flip_std;
  nlohmann::json tar;                   // {"1e-3": x | null, "1e-2": ...} (plain, null = unresolved)
  std::vector<double> correct, correct_flip;  // per pair, 0/1
  std::vector<double> norm, recog;      // per image
  std::vector<double> score;            // per pair, cosine (plain)
  double spearman_gt = 0, spearman_recog = 0;  // of the norm
  nlohmann::json quality;               // EDC per score (norm, brisque, gt) on this stratum's pairs
};

struct ModelEval {
  std::string name;
  std::vector<StratumResult> strata;    // in EvalData order
  nlohmann::json quality;               // pooled: per score {edc pauc, pauc_minus_ideal, fnmr0, spearman_vs_gt}
  double cluster_threshold = 0;
  nlohmann::json cluster;               // {"plain": metrics, "quality_ordered": metrics}
  std::vector<double> bcubed_p_plain, bcubed_r_plain, bcubed_p_quality, bcubed_r_quality;  // per pooled image
  std::map<std::string, eval::IjbsResult> ijbs;  // per fusion (kSurveillanceFusions) when the data has DIR/ijbs
  ProtocolEval protocols;                          // cross-quality, TinyFace-style, tail check
  nlohmann::json to_json() const;  // without `ijbs` and `protocols` (cached on their own)
  static ModelEval from_json(const nlohmann::json& j);
};

// Frame fusions of the surveillance evaluation: plain average, norm-weighted
// (the quality-aware fusion AdaFace and MagFace imply), the 5 highest-norm frames.
inline const std::vector<std::string> kSurveillanceFusions = {"mean", "norm", "topk:5"};

// Evaluates (or reads back from eval_dir/model_eval.json when the model file
// and settings are unchanged) and writes the report's eval.verify,
// eval.quality, eval.cluster (and eval.ijbs) JSONs into eval_dir.
// `centres`: the trained head's class centres for the tail check (class_centres()).
ModelEval evaluate_model(const std::filesystem::path& model, const std::string& name, const EvalData& data,
                         const EvalSettings& settings, const std::filesystem::path& eval_dir,
                         const torch::Tensor& centres = {});

// Pooled (all strata, in order) per-image and per-pair views.
std::vector<double> pooled_images(const EvalData& data, std::vector<double> Stratum::*field);
std::vector<double> pooled_pairs(const ModelEval& m, std::vector<double> StratumResult::*field);
std::vector<double> pooled_images(const ModelEval& m, std::vector<double> StratumResult::*field);

// The trained network of a `qface train` model file, ready for inference in
// the settings' precision (options receive it).
backbones::Backbone load_for_eval(const std::filesystem::path& model_path, const EvalSettings& settings,
                                  infer::InferenceOptions& options);

}  // namespace qface::study
