#include "qface/study/comparison_markdown.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "qface/core/error.h"
#include "qface/eval/claims.h"
#include "qface/study/claims.h"

namespace qface::study {
using nlohmann::json;

namespace {

// "x" for one seed, "mean ± std" (sample std) over several.
std::string across(const std::vector<double>& v, double scale, int digits) {
  if (v.empty()) return "—";
  double m = 0;
  for (double x : v) m += x / static_cast<double>(v.size());
  if (v.size() == 1) return fmt::format("{:.{}f}", m * scale, digits);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return fmt::format("{:.{}f} ± {:.{}f}", m * scale, digits, std::sqrt(ss / static_cast<double>(v.size() - 1)) * scale,
                     digits);
}

std::string ci_text(const json& i, double scale, int digits) {
  return fmt::format("{:+.{}f} [{:+.{}f}, {:+.{}f}]", i["estimate"].get<double>() * scale, digits,
                     i["lo"].get<double>() * scale, digits, i["hi"].get<double>() * scale, digits);
}

// One table column per head: " AdaFace | ArcFace |".
std::string head_columns(const std::vector<std::string>& heads) {
  std::string s;
  for (const auto& h : heads) s += fmt::format(" {} |", head_title(h));
  return s;
}

// The alignment row's cells of n columns: rule("---:|", 2) = "---:|---:|".
std::string rule(const char* cell, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += cell;
  return s;
}

// get(the head's evaluation) of every seed where it gives a value.
template <class Get>
std::vector<double> per_seed(const std::vector<SeedResult>& seeds, const std::string& head, Get get) {
  std::vector<double> v;
  for (const SeedResult& s : seeds)
    if (s.evals.count(head)) {
      const auto x = get(s.evals.at(head));
      if (x) v.push_back(*x);
    }
  return v;
}

// The claims table (per seed and across seeds when there are several) and how to read it.
std::string claims_section(const std::vector<SeedResult>& seeds) {
  std::string md = "## The papers' claims\n\n";
  if (seeds.size() == 1) {
    md += eval::claims_markdown(seeds.front().claims.claims);
  } else {
    // The verdict is the across-seed one (t interval over the per-seed
    // estimates): a single seed's interval does not hold its training noise.
    std::vector<ClaimsResult> by_seed;
    for (const SeedResult& s : seeds) by_seed.push_back(s.claims);
    const ClaimsResult all = claims_across_seeds(by_seed);
    md += "| paper | claim | measured | per seed: estimate [95 % CI over identities] | across seeds: mean [95 % t "
          "interval] | predicted | verdict | as predicted |\n|---|---|---|---|---|---|---|---|\n";
    for (std::size_t k = 0; k < all.claims.size(); ++k) {
      std::vector<std::string> cells;
      for (const SeedResult& s : seeds) {
        const auto it = std::find(s.claims.ids.begin(), s.claims.ids.end(), all.ids[k]);
        cells.push_back(eval::measured(s.claims.claims[static_cast<std::size_t>(it - s.claims.ids.begin())]));
      }
      const eval::Claim& c = all.claims[k];
      const eval::Verdict v = eval::verdict(c);
      md += fmt::format("| {} | {} | {} | {} | {} | {} | **{}** | {} |\n", c.paper, c.statement, c.measure,
                        fmt::join(cells, "; "), eval::measured(c), eval::verdict_name(c.predicted),
                        eval::verdict_name(v), v == c.predicted ? "yes" : "**no**");
    }
  }
  md += fmt::format("\nRules: a claim that A beats B (or that a correlation is positive) holds when its interval lies "
                    "above 0 and is not resolved when it contains 0; \"no loss\" and \"at least as good\" claims are "
                    "non-inferiority with a {:g}-point margin. Intervals resample identities (pairs and images of one "
                    "identity together) except where they say probes; across seeds the interval is Student's t over "
                    "the per-seed estimates. The predictions were written before the results (docs/study.md).\n\n",
                    100 * kNoLossMargin);
  return md;
}

// Accuracy, TAR@FAR and the norm's correlations per verification set.
std::string strata_section(const std::vector<SeedResult>& seeds, const EvalData& data,
                           const std::vector<std::string>& heads) {
  const bool many = seeds.size() > 1;
  std::string md = fmt::format("## Recognition per quality stratum{}\n\n", many ? " (mean ± std across seeds)" : "");
  md += "| set | metric |" + head_columns(heads) + "\n|---|---|" + rule("---:|", heads.size()) + "\n";
  for (const Stratum& st : data.strata) {
    auto row = [&](const std::string& label, double scale, int digits, auto get) {
      md += "| " + st.name + " | " + label + " |";
      for (const auto& h : heads) md += " " + across(per_seed(seeds, h, get), scale, digits) + " |";
      md += "\n";
    };
    auto S = [&](const ModelEval& m) -> const StratumResult& {
      for (const auto& r : m.strata)
        if (r.name == st.name) return r;
      fail("no stratum {}", st.name);
    };
    row("accuracy %", 100, 2, [&](const ModelEval& m) { return std::optional<double>(S(m).acc); });
    if (!many) row("fold std of accuracy %", 100, 2, [&](const ModelEval& m) { return std::optional<double>(S(m).acc_std); });
    row("accuracy, flip-fused %", 100, 2, [&](const ModelEval& m) { return S(m).acc_flip; });
    for (const auto& [key, far] : {std::pair<std::string, std::string>{"0.01", "1e-2"}, {"0.001", "1e-3"}}) {
      row(fmt::format("TAR@FAR={} %", far), 100, 2, [&](const ModelEval& m) {
        const json& t = S(m).tar;
        return t.contains(key) && t[key].is_number() ? std::optional<double>(t[key].get<double>()) : std::nullopt;
      });
    }
    row("Spearman(norm, true quality)", 1, 3, [&](const ModelEval& m) { return std::optional<double>(S(m).spearman_gt); });
    row("Spearman(norm, recognizability)", 1, 3,
        [&](const ModelEval& m) { return std::optional<double>(S(m).spearman_recog); });
    row("mean feature norm", 1, 2, [&](const ModelEval& m) {
      double s = 0;
      for (double x : S(m).norm) s += x / static_cast<double>(S(m).norm.size());
      return std::optional<double>(s);
    });
  }
  md += "\nTAR@FAR is shown only where every test fold holds at least 1/FAR impostors (— otherwise).\n\n";
  return md;
}

// Each head's accuracy minus ArcFace's per set, with its interval per seed.
std::string differences_section(const std::vector<SeedResult>& seeds, const EvalData& data,
                                const std::vector<std::string>& heads) {
  const json& first = seeds.front().claims.differences;
  if (first.is_null()) return "";
  std::vector<std::string> others;
  for (const auto& h : heads)
    if (h != "arcface") others.push_back(h);
  std::string md = "## Differences to ArcFace (accuracy points, 95 % paired bootstrap over identities)\n\n| set |";
  for (const auto& h : others) md += " " + head_title(h) + " − ArcFace |";
  md += "\n|---|" + rule("---|", others.size()) + "\n";
  std::vector<std::string> sets;
  for (const Stratum& st : data.strata) sets.push_back(st.name);
  sets.push_back("all");
  for (const auto& set : sets)
    for (const char* mode : {"acc", "acc_flip"}) {
      if (set == "all" && std::string(mode) == "acc_flip") continue;
      if (!first[others.front()][set].contains(mode)) continue;
      md += fmt::format("| {}{} |", set, std::string(mode) == "acc_flip" ? " (flip-fused)" : "");
      for (const auto& h : others) {
        std::vector<std::string> cells;
        for (const SeedResult& s : seeds) cells.push_back(ci_text(s.claims.differences[h][set][mode], 100, 2));
        md += " " + fmt::format("{}", fmt::join(cells, "; ")) + " |";
      }
      md += "\n";
    }
  return md + "\n";
}

// Within each stratum (threshold at that stratum's FMR 1e-3): the pooled EDC
// mostly rewards a score for telling the strata apart, which every score does.
std::string quality_within_strata(const std::vector<SeedResult>& seeds, const EvalData& data,
                                  const std::vector<std::string>& heads) {
  std::string md = fmt::format(
      "\nWithin each stratum (threshold fixed at FMR 1e-3 of the stratum's own comparisons; the pooled EDC "
      "above mostly rewards telling the strata apart). Last column: pAUC of BRISQUE minus the norm's, 95 % "
      "paired bootstrap over the stratum's identities, seed {} (positive: the norm ranks better):\n\n"
      "| set | model | EDC pAUC norm | BRISQUE | ground truth (oracle) | FNMR0 | BRISQUE − norm |\n"
      "|---|---|---:|---:|---:|---:|---|\n", seeds.front().seed);
  const json& w = seeds.front().claims.within_strata;
  for (const Stratum& st : data.strata)
    for (const auto& h : heads) {
      auto q3 = [&](const char* score, const char* field) {
        return across(per_seed(seeds, h, [&](const ModelEval& m) -> std::optional<double> {
          for (const auto& r : m.strata)
            if (r.name == st.name && r.quality.contains(score)) return r.quality[score][field].get<double>();
          return std::nullopt;
        }), 1, 4);
      };
      auto number = [&](const char* k) { return w.contains(h) && w[h].contains(st.name) && w[h][st.name][k].is_number(); };
      const std::string ci = number("estimate") && number("lo") && number("hi")
                                 ? fmt::format("{:+.5f} [{:+.5f}, {:+.5f}]", w[h][st.name]["estimate"].get<double>(),
                                               w[h][st.name]["lo"].get<double>(), w[h][st.name]["hi"].get<double>())
                                 : std::string("—");
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", st.name, head_title(h), q3("norm", "pauc"),
                        q3("brisque", "pauc"), q3("gt", "pauc"), q3("norm", "fnmr0"), ci);
    }
  return md;
}

// The feature norm as a quality score: EDC pooled (at FMR 1e-3 and 1e-2),
// then within each stratum, and its correlations with the true quality.
std::string quality_section(const std::vector<SeedResult>& seeds, const EvalData& data,
                            const std::vector<std::string>& heads) {
  std::string md = fmt::format("## Quality as a score (all strata pooled){}\n\n",
                               seeds.size() > 1 ? ", mean ± std across seeds" : "");
  md += "EDC: FNMR of the kept genuine comparisons at a threshold fixed once at FMR 1e-3 of all comparisons, vs the "
        "fraction discarded (lowest pair quality first); pAUC from 0 to 20 % discarded, lower is better.\n\n";
  md += "| model | EDC pAUC norm | BRISQUE | ground truth (oracle) | random | FNMR0 | Spearman(norm, true quality) | "
        "Spearman(norm, recognizability) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& h : heads) {
    auto q = [&](const char* score) {
      return across(per_seed(seeds, h, [&](const ModelEval& m) { return std::optional<double>(m.quality[score]["pauc"].get<double>()); }), 1, 4);
    };
    std::vector<double> rho_gt, rho_rec;
    for (const SeedResult& s : seeds) {
      rho_gt.push_back(s.claims.recognizability[h]["spearman_norm_gt"].get<double>());
      rho_rec.push_back(s.claims.recognizability[h]["spearman_norm_recognizability"].get<double>());
    }
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", head_title(h), q("norm"), q("brisque"), q("gt"),
                      q("random"),
                      across(per_seed(seeds, h, [&](const ModelEval& m) { return std::optional<double>(m.quality["norm"]["fnmr0"].get<double>()); }), 1, 3),
                      across(rho_gt, 1, 3), across(rho_rec, 1, 3));
  }
  md += "\nThe same with the threshold fixed at FMR 1e-2 (supplementary: at 1e-3 a weak model's FNMR0 is near 1 and "
        "leaves discarding little to remove):\n\n| model | EDC pAUC norm | BRISQUE | ground truth (oracle) | random | FNMR0 |\n"
        "|---|---:|---:|---:|---:|---:|\n";
  for (const auto& h : heads) {
    auto q2 = [&](const char* score, const char* field) {
      return across(per_seed(seeds, h, [&](const ModelEval& m) {
        const json& j = m.quality[score];
        return j.contains("fmr_1e-2") ? std::optional<double>(j["fmr_1e-2"][field].get<double>()) : std::nullopt;
      }), 1, 4);
    };
    md += fmt::format("| {} | {} | {} | {} | {} | {} |\n", head_title(h), q2("norm", "pauc"), q2("brisque", "pauc"),
                      q2("gt", "pauc"), q2("random", "pauc"), q2("norm", "fnmr0"));
  }
  md += quality_within_strata(seeds, data, heads);
  std::vector<double> gt_rec;
  for (const SeedResult& s : seeds) gt_rec.push_back(s.claims.recognizability["spearman_gt_vs_recognizability"].get<double>());
  md += fmt::format("\nRecognizability: {}. Spearman(true quality, recognizability) = {}.\n\n",
                    seeds.front().claims.recognizability["definition"].get<std::string>(), across(gt_rec, 1, 3));
  return md;
}

std::string clustering_section(const std::vector<SeedResult>& seeds, const std::vector<std::string>& heads) {
  std::string md = "## Clustering (all verification images by identity, k-NN graph at the model's FMR 1e-3 threshold)\n\n";
  md += "| model | BCubed F plain | BCubed F quality-ordered (norm core 50 %) | NMI plain | NMI quality-ordered | "
        "BCubed F plain / quality-ordered at FMR 1e-2 | at FMR 1e-1 |\n|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& h : heads) {
    auto c = [&](const char* variant, const char* metric) {
      return across(per_seed(seeds, h, [&](const ModelEval& m) {
        const json& j = m.cluster[variant];
        return std::optional<double>(std::string(metric) == "nmi" ? j["nmi"].get<double>() : j["bcubed"]["f"].get<double>());
      }), 1, 4);
    };
    auto sweep = [&](std::size_t k) {
      auto get = [&](const char* field) {
        return across(per_seed(seeds, h, [&](const ModelEval& m) {
          const json& s = m.cluster.value("sweep", json::array());
          return s.size() > k ? std::optional<double>(s[k][field].get<double>()) : std::nullopt;
        }), 1, 4);
      };
      return get("plain_bcubed_f") + " / " + get("quality_bcubed_f");
    };
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", head_title(h), c("plain", "f"), c("quality_ordered", "f"),
                      c("plain", "nmi"), c("quality_ordered", "nmi"), sweep(0), sweep(1));
  }
  return md;
}

// get(the head's protocol evaluation) of every seed where it gives a finite value.
template <class Get>
std::vector<double> protocol_per_seed(const std::vector<SeedResult>& seeds, const std::string& head, Get get) {
  std::vector<double> v;
  for (const SeedResult& s : seeds)
    if (s.evals.count(head))
      if (const std::optional<double> x = get(s.evals.at(head).protocols); x && std::isfinite(*x)) v.push_back(*x);
  return v;
}

// The paper's low-quality protocols: cross-quality 1:1 and TinyFace-style identification.
std::string low_quality_section(const std::vector<SeedResult>& seeds, const std::vector<std::string>& heads) {
  const ProtocolEval& any = seeds.front().evals.begin()->second.protocols;
  if (any.cross.is_null() && any.tinyface.is_null()) return "";
  std::string md = fmt::format("\n## Low-quality protocols{}\n\n", seeds.size() > 1 ? " (mean ± std across seeds)" : "");
  if (!any.cross.is_null())
    md += fmt::format("val_cross: {} pairs of a low-quality probe and a high-quality reference ({} impostor pairs); "
                      "TAR at one threshold set over all impostor pairs, shown where at least 1/FAR impostors "
                      "resolve it.\n", any.cross["pairs"].get<int64_t>(), any.cross["impostors"].get<int64_t>());
  if (!any.tinyface.is_null())
    md += fmt::format("tinyface: {} low-resolution probes against {} gallery images and {} distractors.\n",
                      any.tinyface["probes"].get<int64_t>(), any.tinyface["gallery"].get<int64_t>(),
                      any.tinyface["distractors"].get<int64_t>());
  md += "\n| protocol | metric |" + head_columns(heads) + "\n|---|---|" + rule("---:|", heads.size()) + "\n";
  auto row = [&](const std::string& protocol, const std::string& metric, auto get) {
    md += fmt::format("| {} | {} |", protocol, metric);
    for (const auto& h : heads) md += " " + across(protocol_per_seed(seeds, h, get), 100, 2) + " |";
    md += "\n";
  };
  if (!any.cross.is_null())
    for (double far : kCrossFars) {
      const std::string key = fmt::format("{:g}", far);
      row("val_cross", fmt::format("TAR % at FAR {:g}", far), [&](const ProtocolEval& p) -> std::optional<double> {
        const json& t = p.cross.value("tar", json());
        return t.contains(key) && t[key].is_number() ? std::optional<double>(t[key].get<double>()) : std::nullopt;
      });
    }
  if (!any.tinyface.is_null())
    for (const char* k : {"1", "5", "20"})
      row("tinyface", fmt::format("rank-{} %", k), [&](const ProtocolEval& p) -> std::optional<double> {
        return p.tinyface.contains("rank") ? std::optional<double>(p.tinyface["rank"][k].get<double>()) : std::nullopt;
      });
  return md;
}

// The identity-free tail check, and how far each model fitted the identity-free images it trained on.
std::string tail_section(const std::vector<SeedResult>& seeds, const std::vector<std::string>& heads) {
  const ProtocolEval& any = seeds.front().evals.begin()->second.protocols;
  if (any.tail.is_null()) return "";
  std::string md = fmt::format(
      "\n## Identity-free tail (held-out renders of training identities, rank-1 against each model's "
      "class centres; chance {:.2f} %), and how far each model fitted the identity-free images it "
      "trained on\n\n| model | held-out identity-free % | held-out ordinary % | identity-free training "
      "images fitted % |\n|---|---:|---:|---:|\n",
      100 * any.tail["chance"].get<double>());
  for (const auto& h : heads) {
    auto get = [&](const char* key) {
      return across(protocol_per_seed(seeds, h, [&](const ProtocolEval& p) -> std::optional<double> {
        return p.tail.contains(key) && p.tail[key].is_number() ? std::optional<double>(p.tail[key].get<double>())
                                                                : std::nullopt;
      }), 100, 1);
    };
    md += fmt::format("| {} | {} | {} | {} |\n", head_title(h), get("free_rank1"), get("ordinary_rank1"),
                      get("train_free_rank1"));
  }
  return md;
}

// AdaFace's z over training (comparison.json's z summaries of metrics.jsonl), per run.
std::string z_section(const std::vector<SeedResult>& seeds, const std::vector<std::string>& heads, const json& cmp) {
  std::string z;
  for (const auto& h : heads)
    for (const SeedResult& s : seeds) {
      const json& run = cmp["runs"][std::to_string(s.seed)][h];
      if (!run.contains("z")) continue;
      const json& e = run["z"]["early"];
      const json& a = run["z"]["all"];
      z += fmt::format("| {} | {} | {:.1f} / {:.1f} | {:.1f} / {:.1f} | {:.1f} / {:.1f} | {:.2f} / {:.2f} |\n",
                       head_title(h), s.seed, 100 * e["near_zero"].get<double>(), 100 * a["near_zero"].get<double>(),
                       100 * e["clip_lo"].get<double>(), 100 * a["clip_lo"].get<double>(),
                       100 * e["clip_hi"].get<double>(), 100 * a["clip_hi"].get<double>(),
                       e["spread_5_95"].get<double>(), a["spread_5_95"].get<double>());
    }
  if (z.empty()) return "";
  return "\n## AdaFace's z over training (first 20 % of the log steps / whole run)\n\n"
         "| run | seed | near 0 (abs z < 0.2) % | at −1 % | at +1 % | z spread, 5–95 % |\n|---|---:|---:|---:|---:|---:|\n" +
         z;
}

// The surveillance section: per protocol and fusion the identification
// rates (mean ± std across seeds), then the paired-bootstrap differences.
std::string surveillance_section(const std::vector<SeedResult>& seeds, const EvalData& data,
                                 const std::vector<std::string>& heads) {
  if (!data.ijbs || seeds.front().evals.empty() || seeds.front().evals.begin()->second.ijbs.empty()) return "";
  const bool many = seeds.size() > 1;
  const eval::IjbsResult& any = seeds.front().evals.begin()->second.ijbs.begin()->second;
  std::string md = fmt::format("\n## Surveillance video (IJB-S style, data/ijbs){}\n\n",
                               many ? ", mean ± std across seeds" : "");
  md += fmt::format("{} images and video frames in {} templates. Probes are videos, fused from their frames; a probe "
                    "whose subject is not in the gallery is non-mated (open set). Rank-k over mated probes; TPIR at "
                    "FPIR where the non-mated probes resolve it (at least 1/FPIR of them; — otherwise).\n\n",
                    any.frames, any.templates);
  md += "| protocol | probes: mated / non-mated | gallery templates |\n|---|---:|---:|\n";
  for (const eval::IjbsProtocolResult& pr : any.protocols)
    md += fmt::format("| {} | {} / {} | {} |\n", protocol_title(pr.protocol), pr.summary.mated_probes,
                      pr.summary.nonmated_probes, pr.summary.gallery_templates);
  md += "\n| protocol | fusion | metric |" + head_columns(heads) + "\n|---|---|---|" + rule("---:|", heads.size()) + "\n";
  auto value = [&](const std::string& head, const std::string& fusion, const std::string& protocol, auto get) {
    std::vector<double> v;
    for (const SeedResult& s : seeds) {
      if (!s.evals.count(head) || !s.evals.at(head).ijbs.count(fusion)) continue;
      const eval::IjbsProtocolResult* p = s.evals.at(head).ijbs.at(fusion).find(protocol);
      if (!p) continue;
      const double x = get(p->summary);
      if (std::isfinite(x)) v.push_back(x);
    }
    return across(v, 100, 1);
  };
  for (const eval::IjbsProtocolResult& pr : any.protocols) {
    const std::string& p = pr.protocol;
    const std::string label = protocol_title(p);
    auto row = [&](const std::string& fusion, const std::string& metric, auto get) {
      md += fmt::format("| {} | {} | {} |", label, fusion, metric);
      for (const auto& h : heads) md += " " + value(h, fusion, p, get) + " |";
      md += "\n";
    };
    auto rank = [](int k) {
      return [k](const eval::IdentificationResult& s) {
        for (auto [kk, v] : s.cmc)
          if (kk == k) return v;
        return std::nan("");
      };
    };
    auto tpir = [](double fpir) {
      return [fpir](const eval::IdentificationResult& s) {
        for (const auto& t : s.tpir_at_fpir)
          if (std::abs(t.fpir - fpir) < 1e-12) return t.tpir;
        return std::nan("");
      };
    };
    for (const std::string& f : kSurveillanceFusions) row(f, "rank-1 %", rank(1));
    row("norm", "rank-5 %", rank(5));
    row("norm", "TPIR % at FPIR 10 %", tpir(0.1));
    row("norm", "TPIR % at FPIR 1 %", tpir(0.01));
  }
  // Differences with intervals (per seed, joined by "; ").
  auto cells = [&](auto get) {
    std::vector<std::string> c;
    for (const SeedResult& s : seeds) {
      const json& i = get(s.claims.surveillance);
      c.push_back(i.is_object() ? ci_text(i, 100, 1) : std::string("—"));
    }
    return fmt::format("{}", fmt::join(c, "; "));
  };
  const json null_json;
  auto at = [&](const json& j, std::initializer_list<std::string> path) -> const json& {
    const json* x = &j;
    for (const std::string& k : path) {
      if (!x->is_object() || !x->contains(k)) return null_json;
      x = &(*x)[k];
    }
    return *x;
  };
  std::vector<std::string> others;
  for (const auto& h : heads)
    if (h != "arcface") others.push_back(h);
  if (std::find(heads.begin(), heads.end(), "arcface") != heads.end() && !others.empty()) {
    md += "\nDifferences to ArcFace, norm-weighted fusion (points, 95 % paired bootstrap over probes, per seed):\n\n"
          "| protocol | metric |";
    for (const auto& h : others) md += " " + head_title(h) + " − ArcFace |";
    md += "\n|---|---|";
    for (std::size_t i = 0; i < others.size(); ++i) md += "---|";
    md += "\n";
    for (const eval::IjbsProtocolResult& pr : any.protocols)
      for (const auto& [key, metric] : {std::pair<std::string, std::string>{"rank1", "rank-1"}, {"tpir_fpir_0.1", "TPIR at FPIR 10 %"}}) {
        md += fmt::format("| {} | {} |", protocol_title(pr.protocol), metric);
        for (const auto& h : others)
          md += " " + cells([&](const json& sv) -> const json& { return at(sv, {"vs_arcface", h, pr.protocol, key}); }) + " |";
        md += "\n";
      }
  }
  md += "\nFrame fusion, rank-1 differences to the plain average (points, 95 % paired bootstrap over mated probes, "
        "per seed):\n\n| protocol | model | norm-weighted − mean | top-5 by norm − mean |\n|---|---|---|---|\n";
  for (const eval::IjbsProtocolResult& pr : any.protocols)
    for (const auto& h : heads)
      md += fmt::format("| {} | {} | {} | {} |\n", protocol_title(pr.protocol), head_title(h),
                        cells([&](const json& sv) -> const json& { return at(sv, {"fusion", h, pr.protocol, "norm_minus_mean"}); }),
                        cells([&](const json& sv) -> const json& { return at(sv, {"fusion", h, pr.protocol, "topk_minus_mean"}); }));
  return md;
}


std::string training_section(const std::vector<SeedResult>& seeds, const std::vector<std::string>& heads,
                             const json& cmp) {
  std::string md = "\n## Training\n\n| head | seed | steps | minutes | img/s |\n|---|---:|---:|---:|---:|\n";
  for (const SeedResult& s : seeds)
    for (const auto& h : heads) {
      const RunResult& r = s.runs.at(h);
      md += fmt::format("| {} | {} | {} | {:.1f} | {:.1f} |\n", head_title(h), s.seed, r.steps, r.train_seconds / 60,
                        r.images_per_second);
    }
  md += fmt::format("\nWhole job: {:.1f} minutes.\n", cmp["seconds"].get<double>() / 60);
  return md;
}

}  // namespace

std::string comparison_markdown(const MainJobOptions& o, const std::vector<SeedResult>& seeds, const EvalData& data,
                                const json& cmp) {
  const std::vector<std::string>& heads = o.heads;
  std::string md = fmt::format("# {}: {} on synthetic faces\n\n", o.title, fmt::join(heads, ", "));
  md += fmt::format("Data: `qface synth --preset {} --identity-free {:g}`; {} pairs per verification set; seeds {}; 95 % "
                    "paired bootstrap intervals ({} resamples, seeded) over identities (or probes, as named).\n\n",
                    o.preset, o.identity_free, data.strata.front().issame.size(), fmt::join(o.seeds, ", "), o.resamples);
  md += claims_section(seeds);
  md += strata_section(seeds, data, heads);
  md += differences_section(seeds, data, heads);
  md += quality_section(seeds, data, heads);
  md += clustering_section(seeds, heads);
  md += low_quality_section(seeds, heads);
  md += tail_section(seeds, heads);
  md += z_section(seeds, heads, cmp);
  md += surveillance_section(seeds, data, heads);
  md += training_section(seeds, heads, cmp);
  return md;
}

}  // namespace qface::study
