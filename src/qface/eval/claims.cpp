#include "qface/eval/claims.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "qface/core/error.h"

namespace qface::eval {

Verdict verdict(const Claim& c) {
  const double bound = c.kind == ClaimKind::kNotWorse ? -c.margin : 0.0;
  if (c.interval.lo > bound) return Verdict::kHolds;
  if (c.interval.hi < bound) return Verdict::kDoesNotHold;
  return Verdict::kNotResolved;
}

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kHolds: return "holds";
    case Verdict::kDoesNotHold: return "does not hold";
    case Verdict::kNotResolved: return "not resolved";
  }
  return "?";
}

Verdict verdict_from_name(const std::string& name) {
  for (Verdict v : {Verdict::kHolds, Verdict::kDoesNotHold, Verdict::kNotResolved})
    if (name == verdict_name(v)) return v;
  fail("unknown verdict '{}'", name);
}

namespace {

std::string rule(const Claim& c) {
  return c.kind == ClaimKind::kNotWorse
             ? fmt::format("non-inferiority, margin {:g} {}", c.margin * c.display_scale, c.unit)
             : std::string("CI above 0");
}

}  // namespace

int claim_digits(const Claim& c) {
  // Enough decimals that the interval's width shows two significant digits
  // (a pAUC difference of 0.0002 would otherwise print as +0.000 [+0.000, +0.000]).
  const double s = c.display_scale;
  const double width = (c.interval.hi - c.interval.lo) * s;
  const int needed = width > 0 ? static_cast<int>(std::ceil(-std::log10(width))) + 1 : 0;
  return std::clamp(needed, s >= 100 ? 2 : 3, 6);
}

std::string measured(const Claim& c) {
  const double s = c.display_scale;
  const int digits = claim_digits(c);
  return fmt::format("{:+.{}f} [{:+.{}f}, {:+.{}f}]{}", c.interval.estimate * s, digits, c.interval.lo * s, digits,
                     c.interval.hi * s, digits, c.unit.empty() ? "" : " " + c.unit);
}

nlohmann::json to_json(const Claim& c) {
  return {{"paper", c.paper},
          {"statement", c.statement},
          {"measure", c.measure},
          {"interval", to_json(c.interval)},
          {"rule", rule(c)},
          {"kind", c.kind == ClaimKind::kNotWorse ? "not_worse" : "greater"},
          {"margin", c.margin},
          {"display_scale", c.display_scale},
          {"unit", c.unit},
          {"verdict", verdict_name(verdict(c))},
          {"predicted", verdict_name(c.predicted)},
          {"prediction", c.prediction},
          {"as_predicted", verdict(c) == c.predicted},
          {"interval_over", c.interval_over}};
}

std::string claims_markdown(const std::vector<Claim>& claims) {
  std::string t =
      "| paper | claim | measured | estimate (95 % CI) | interval over | rule | predicted | verdict | as predicted |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  for (const Claim& c : claims)
    t += fmt::format("| {} | {} | {} | {} | {} | {} | {} | **{}** | {} |\n", c.paper, c.statement, c.measure, measured(c),
                     c.interval_over, rule(c), verdict_name(c.predicted), verdict_name(verdict(c)),
                     verdict(c) == c.predicted ? "yes" : "**no**");
  return t;
}

}  // namespace qface::eval
