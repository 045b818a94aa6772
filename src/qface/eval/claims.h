// The papers' claims as rows with a verdict from a confidence interval:
//  - "greater" claims (A beats B; a correlation is positive): holds when the
//    interval lies above 0, does not hold when it lies below 0, and is not
//    resolved when it contains 0;
//  - "not worse" claims (no loss; A is about as good as B) are
//    non-inferiority statements with an explicit margin d: holds when the
//    interval lies above -d, does not hold when it lies below -d, otherwise
//    not resolved.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "qface/eval/bootstrap.h"

namespace qface::eval {

enum class ClaimKind { kGreater, kNotWorse };
enum class Verdict { kHolds, kDoesNotHold, kNotResolved };
Verdict verdict_from_name(const std::string& name);  // inverse of verdict_name; throws for others

struct Claim {
  std::string paper;      // "AdaFace", "MagFace"
  std::string statement;  // what the paper claims, in words
  std::string measure;    // what was measured, in words (e.g. "accuracy AdaFace - ArcFace, val_low")
  Interval interval;      // of the measured difference or statistic
  ClaimKind kind = ClaimKind::kGreater;
  double margin = 0;      // kNotWorse: the tolerated loss, in the interval's units
  double display_scale = 1;  // e.g. 100: shown as points
  std::string unit;          // e.g. "points"
  // What the paper's mechanism predicts, written before the results
  // (docs/study.md, "Predictions"): the expected verdict and why.
  Verdict predicted = Verdict::kHolds;
  std::string prediction;
  std::string interval_over = "identities";  // what the interval resamples: "identities", "probes", "seeds"
};

Verdict verdict(const Claim& c);
const char* verdict_name(Verdict v);  // "holds", "does not hold", "not resolved"

nlohmann::json to_json(const Claim& c);
// One Markdown table: claim | measured (95 % CI) | rule | prediction | verdict | as predicted.
std::string claims_markdown(const std::vector<Claim>& claims);

// Decimals that show the interval's width to two significant digits (at
// least 2 for points, 3 otherwise), and "estimate [lo, hi] unit" with them.
int claim_digits(const Claim& c);
std::string measured(const Claim& c);

}  // namespace qface::eval
