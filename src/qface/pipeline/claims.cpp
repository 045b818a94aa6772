#include "qface/pipeline/claims.h"

#include <fmt/format.h>

#include <cmath>

#include "qface/core/error.h"
#include "qface/eval/cluster.h"
#include "qface/eval/quality.h"

namespace qface::pipeline {
using nlohmann::json;

namespace {

const StratumResult& stratum(const ModelEval& m, const std::string& name) {
  for (const auto& s : m.strata)
    if (s.name == name) return s;
  fail("claims: {} has no stratum {}", m.name, name);
}

// EDC pAUC of quality `better` minus that of quality `worse` over resampled
// pairs (positive: `worse` keeps more false non-matches in the first 20 %).
// `score` and `genuine` per pair, the qualities per image (two per pair).
eval::Interval pauc_difference(const std::vector<double>& score, const std::vector<double>& q_worse,
                               const std::vector<double>& q_better, const std::vector<uint8_t>& genuine,
                               const eval::BootstrapOptions& o) {
  const int64_t pairs = static_cast<int64_t>(score.size());
  require(2 * pairs == static_cast<int64_t>(q_worse.size()), "claims: {} image qualities for {} pairs", q_worse.size(), pairs);
  auto pair_min = [&](const std::vector<double>& q, int64_t p) { return std::min(q[2 * p], q[2 * p + 1]); };
  return eval::bootstrap(pairs, [&](std::span<const int64_t> draw) {
    eval::Comparisons c;
    std::vector<double> pw, pb;
    int64_t g = 0;
    for (int64_t p : draw) g += genuine[p];
    if (g == 0 || g == static_cast<int64_t>(draw.size())) return std::nan("");  // EDC needs both kinds
    for (int64_t p : draw) {
      c.score.push_back(static_cast<float>(score[p]));
      c.genuine.push_back(genuine[p]);
      pw.push_back(pair_min(q_worse, p));
      pb.push_back(pair_min(q_better, p));
    }
    return eval::edc(c, pw).pauc - eval::edc(c, pb).pauc;
  }, o);
}

std::vector<double> mean_over(const std::vector<std::vector<double>>& v) {
  std::vector<double> out(v.front().size(), 0.0);
  for (const auto& x : v)
    for (std::size_t i = 0; i < x.size(); ++i) out[i] += x[i] / static_cast<double>(v.size());
  return out;
}

const eval::IjbsProtocolResult& protocol_of(const ModelEval& m, const std::string& fusion, const std::string& protocol) {
  const auto it = m.ijbs.find(fusion);
  require(it != m.ijbs.end(), "claims: {} has no surveillance result with {} fusion", m.name, fusion);
  const eval::IjbsProtocolResult* p = it->second.find(protocol);
  require(p != nullptr, "claims: {} has no {} result", m.name, protocol);
  return *p;
}

// An interval as JSON, or null when the probes cannot resolve it.
json tpir_difference(const eval::IjbsProtocolResult& a, const eval::IjbsProtocolResult& b, double fpir,
                     const eval::BootstrapOptions& o) {
  if (!eval::fpir_resolved(a.summary.nonmated_probes, fpir) || a.summary.mated_probes == 0) return json();
  return eval::to_json(eval::paired_tpir_difference(a, b, fpir, o));
}

}  // namespace

std::string protocol_title(const std::string& protocol) {
  if (protocol == "surveillance_to_single") return "Surveillance-to-Single";
  if (protocol == "surveillance_to_booking") return "Surveillance-to-Booking";
  if (protocol == "surveillance_to_surveillance") return "Surveillance-to-Surveillance";
  return protocol;
}

ClaimsResult measure_claims(const std::map<std::string, ModelEval>& by_head, const EvalData& data,
                            const eval::BootstrapOptions& o) {
  ClaimsResult r;
  auto add = [&](std::string id, eval::Claim c) {
    r.ids.push_back(std::move(id));
    r.claims.push_back(std::move(c));
  };
  auto has = [&](const char* h) { return by_head.count(h) > 0; };
  std::vector<uint8_t> genuine;
  for (const Stratum& s : data.strata) genuine.insert(genuine.end(), s.issame.begin(), s.issame.end());
  const std::vector<double> gt = pooled_images(data, &Stratum::gt);
  const std::vector<double> neg_brisque = brisque_quality(pooled_images(data, &Stratum::brisque));

  // Per-stratum differences to ArcFace (plain and flip-fused accuracy).
  if (has("arcface")) {
    const ModelEval& base = by_head.at("arcface");
    for (const auto& [head, m] : by_head) {
      if (head == "arcface") continue;
      for (const Stratum& st : data.strata) {
        const StratumResult& a = stratum(m, st.name);
        const StratumResult& b = stratum(base, st.name);
        json d{{"acc", eval::to_json(eval::paired_mean_difference(a.correct, b.correct, o))}};
        if (!a.correct_flip.empty() && !b.correct_flip.empty())
          d["acc_flip"] = eval::to_json(eval::paired_mean_difference(a.correct_flip, b.correct_flip, o));
        r.differences[head][st.name] = d;
      }
      const std::vector<double> ca = pooled_pairs(m, &StratumResult::correct), cb = pooled_pairs(base, &StratumResult::correct);
      r.differences[head]["all"] = {{"acc", eval::to_json(eval::paired_mean_difference(ca, cb, o))}};
    }
  }

  // Within each stratum: EDC pAUC of BRISQUE minus that of each head's norm
  // (threshold at the stratum's own FMR 1e-3), with its interval. The pooled
  // claim mostly rewards telling the strata apart; this is the finer test.
  for (const auto& [head, m] : by_head)
    for (const Stratum& st : data.strata) {
      const StratumResult& sr = stratum(m, st.name);
      r.within_strata[head][st.name] =
          eval::to_json(pauc_difference(sr.score, brisque_quality(st.brisque), sr.norm, st.issame, o));
    }

  // Recognizability: each image's cosine to its identity's clean renders,
  // averaged over the heads (no single model's own view).
  std::vector<std::vector<double>> recogs;
  for (const auto& [head, m] : by_head) recogs.push_back(pooled_images(m, &StratumResult::recog));
  const std::vector<double> recog = mean_over(recogs);
  r.recognizability["definition"] =
      "mean over the trained heads of the cosine between an image and its identity's clean-render template";
  r.recognizability["spearman_gt_vs_recognizability"] = eval::spearman(gt, recog);
  for (const auto& [head, m] : by_head) {
    const std::vector<double> norm = pooled_images(m, &StratumResult::norm);
    r.recognizability[head] = {{"spearman_norm_gt", eval::spearman(norm, gt)},
                               {"spearman_norm_recognizability", eval::spearman(norm, recog)}};
  }

  if (has("adaface") && has("arcface")) {
    const ModelEval& a = by_head.at("adaface");
    const ModelEval& b = by_head.at("arcface");
    add("adaface_low", {.paper = "AdaFace",
                        .statement = "ahead of ArcFace on low-quality images",
                        .measure = "10-fold accuracy AdaFace − ArcFace, val_low",
                        .interval = eval::paired_mean_difference(stratum(a, "val_low").correct,
                                                                 stratum(b, "val_low").correct, o),
                        .display_scale = 100,
                        .unit = "points"});
    add("adaface_high", {.paper = "AdaFace",
                         .statement = "no loss on high-quality images",
                         .measure = "10-fold accuracy AdaFace − ArcFace, val_high",
                         .interval = eval::paired_mean_difference(stratum(a, "val_high").correct,
                                                                  stratum(b, "val_high").correct, o),
                         .kind = eval::ClaimKind::kNotWorse,
                         .margin = kNoLossMargin,
                         .display_scale = 100,
                         .unit = "points"});
  }
  if (has("adaface"))
    add("adaface_norm", {.paper = "AdaFace",
                         .statement = "the feature norm is a proxy of image quality",
                         .measure = "Spearman(AdaFace norm, true quality), all strata",
                         .interval = eval::spearman_interval(pooled_images(by_head.at("adaface"), &StratumResult::norm), gt,
                                                             {.resamples = std::min(o.resamples, 1000), .level = o.level,
                                                              .seed = o.seed})});
  if (has("magface")) {
    const ModelEval& m = by_head.at("magface");
    const std::vector<double> norm = pooled_images(m, &StratumResult::norm);
    add("magface_norm", {.paper = "MagFace",
                         .statement = "the magnitude is a quality score",
                         .measure = "Spearman(MagFace magnitude, true quality), all strata",
                         .interval = eval::spearman_interval(norm, gt, {.resamples = std::min(o.resamples, 1000),
                                                                        .level = o.level, .seed = o.seed})});
    add("magface_vs_brisque", {.paper = "MagFace",
                               .statement = "the magnitude ranks quality better than an image-quality metric (BRISQUE)",
                               .measure = "EDC pAUC(0–20 %) BRISQUE − MagFace magnitude, all strata",
                               .interval = pauc_difference(pooled_pairs(m, &StratumResult::score), neg_brisque, norm,
                                                           genuine, o),
                               .display_scale = 1,
                               .unit = ""});
    if (has("arcface")) {
      const ModelEval& b = by_head.at("arcface");
      add("magface_recognition", {.paper = "MagFace",
                                  .statement = "recognition as good as ArcFace",
                                  .measure = "10-fold accuracy MagFace − ArcFace, all strata",
                                  .interval = eval::paired_mean_difference(pooled_pairs(m, &StratumResult::correct),
                                                                           pooled_pairs(b, &StratumResult::correct), o),
                                  .kind = eval::ClaimKind::kNotWorse,
                                  .margin = kNoLossMargin,
                                  .display_scale = 100,
                                  .unit = "points"});
    }
    eval::ClusterMetrics plain, ordered;
    plain.bcubed_item_precision = m.bcubed_p_plain;
    plain.bcubed_item_recall = m.bcubed_r_plain;
    ordered.bcubed_item_precision = m.bcubed_p_quality;
    ordered.bcubed_item_recall = m.bcubed_r_quality;
    add("magface_cluster", {.paper = "MagFace",
                            .statement = "quality-aware clustering helps",
                            .measure = "BCubed F, quality-ordered (magnitude) − plain k-NN clustering, all images",
                            .interval = eval::bootstrap(static_cast<int64_t>(m.bcubed_p_plain.size()),
                                                        [&](std::span<const int64_t> draw) {
                                                          return eval::bcubed_f(ordered, draw) - eval::bcubed_f(plain, draw);
                                                        }, o)});
  }

  // Surveillance video (IJB-S style): head vs ArcFace with the norm-weighted
  // fusion, and norm-weighted vs plain fusion per head, over probes.
  if (data.ijbs && !by_head.empty() && !by_head.begin()->second.ijbs.empty()) {
    std::vector<std::string> protocols;
    for (const auto& p : data.ijbs->protocols) protocols.push_back(p.name);
    for (const auto& [head, m] : by_head)
      for (const std::string& p : protocols) {
        const eval::IjbsProtocolResult& mean = protocol_of(m, "mean", p);
        r.surveillance["fusion"][head][p] = {
            {"norm_minus_mean", eval::to_json(eval::paired_rank_difference(protocol_of(m, "norm", p), mean, 1, o))},
            {"topk_minus_mean", eval::to_json(eval::paired_rank_difference(protocol_of(m, "topk:5", p), mean, 1, o))}};
        if (head == "arcface" || !has("arcface")) continue;
        const eval::IjbsProtocolResult& a = protocol_of(m, "norm", p);
        const eval::IjbsProtocolResult& b = protocol_of(by_head.at("arcface"), "norm", p);
        r.surveillance["vs_arcface"][head][p] = {{"rank1", eval::to_json(eval::paired_rank_difference(a, b, 1, o))},
                                                 {"tpir_fpir_0.1", tpir_difference(a, b, 0.1, o)}};
      }
    if (has("adaface") && has("arcface"))
      for (const std::string& p : protocols)
        add("adaface_" + p, {.paper = "AdaFace",
                             .statement = fmt::format("ahead of ArcFace on surveillance video ({})", protocol_title(p)),
                             .measure = fmt::format("rank-1 identification AdaFace − ArcFace, {}, norm-weighted frame "
                                                    "fusion", p),
                             .interval = eval::paired_rank_difference(protocol_of(by_head.at("adaface"), "norm", p),
                                                                      protocol_of(by_head.at("arcface"), "norm", p), 1, o),
                             .display_scale = 100,
                             .unit = "points"});
    const std::string p = protocols.front();
    for (const char* head : {"adaface", "magface"})
      if (has(head)) {
        const ModelEval& m = by_head.at(head);
        add(std::string(head) + "_fusion",
            {.paper = head == std::string("adaface") ? "AdaFace" : "MagFace",
             .statement = "weighting video frames by the feature norm beats plain averaging",
             .measure = fmt::format("rank-1 identification, norm-weighted − mean frame fusion, {}", p),
             .interval = eval::paired_rank_difference(protocol_of(m, "norm", p), protocol_of(m, "mean", p), 1, o),
             .display_scale = 100,
             .unit = "points"});
      }
  }
  return r;
}

}  // namespace qface::pipeline
