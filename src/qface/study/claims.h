// The papers' claims measured on one seed's models (AdaFace, MagFace, the
// ArcFace baseline and the controls evaluated on the same pairs and images),
// each with a 95 % identity (cluster) bootstrap interval, the verdict the
// mechanism predicts (written before the results, docs/study.md) and the
// measured verdict (eval/claims.h), plus the per-stratum differences to
// ArcFace. Which rows appear depends on which heads were trained; across
// seeds, claims_across_seeds() gives each claim a t interval over the
// per-seed estimates (the seeds are the independent units there).
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "qface/eval/bootstrap.h"
#include "qface/eval/claims.h"
#include "qface/study/model_eval.h"

namespace qface::study {

// Non-inferiority margin of the "no loss" / "about as good" claims: 1 point of accuracy.
inline constexpr double kNoLossMargin = 0.01;

struct ClaimsResult {
  std::vector<std::string> ids;     // stable key per claim ("adaface_low", ...), parallel to claims
  std::vector<eval::Claim> claims;
  nlohmann::json differences;       // {"adaface": {"val_low": {"acc": interval, "acc_flip": ...}, ...}, "magface": ...}
  nlohmann::json recognizability;   // Spearman of each head's norm with the ensemble recognizability, per stratum and pooled
  nlohmann::json within_strata;     // {"magface": {"val_low": interval of pAUC(BRISQUE) - pAUC(norm)}, ...}
  // Surveillance protocols (when evaluated), 95 % paired bootstrap over probes:
  // {"vs_arcface": {head: {protocol: {"rank1": interval, "tpir_fpir_0.1": interval}}},  (norm-weighted fusion)
  //  "fusion": {head: {protocol: {"norm_minus_mean": interval, "topk_minus_mean": interval}}}}  (rank-1)
  nlohmann::json surveillance;
};

// "Surveillance-to-Single" for "surveillance_to_single".
std::string protocol_title(const std::string& protocol);

ClaimsResult measure_claims(const std::map<std::string, ModelEval>& by_head, const EvalData& data,
                            const eval::BootstrapOptions& options);

// The claims present in every seed (same ids, same order as the first seed),
// each with a Student-t interval over the per-seed estimates (paired: every
// head of a seed trained on the same data with the same seed). Needs >= 2 seeds.
ClaimsResult claims_across_seeds(const std::vector<ClaimsResult>& per_seed, double level = 0.95);

// The cross-quality FAR the claims use: the smallest of kCrossFars at which
// the set holds at least 10 / FAR impostor pairs (10 accepted impostors), or
// 0 when none is.
double claim_far(int64_t impostors);

// The fixed-z controls and other run names of the main job, as a title
// ("adaface_z+1" -> "AdaFace z ≡ +1").
std::string head_title(const std::string& run);

}  // namespace qface::study
