#include "qface/study/main_job.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/eval/report.h"
#include "qface/study/claims.h"
#include "qface/study/stage.h"
#include "qface/synth/generate.h"
#include "qface/train/checkpoint.h"
#include "qface/train/config.h"
#include "qface/train/distributed.h"
#include "qface/train/trainer.h"

namespace qface::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The data stage: regenerated when the synth options (or generator version) differ.
fs::path ensure_data(const MainJobOptions& o) {
  const fs::path data = o.out / "data";
  synth::SynthOptions so = synth::preset_options(o.preset);
  so.identity_free = o.identity_free;
  if (o.threads > 0) so.threads = o.threads;
  const json want{{"version", synth::kSynthVersion}, {"options", synth::options_json(so)}};
  if (fs::exists(data / "manifest.json")) {
    const json have = json::parse(read_file(data / "manifest.json"));
    if (have.value("version", std::string()) == want["version"] && have.value("options", json()) == want["options"]) {
      spdlog::info("demo: synthetic '{}' data already in {}", o.preset, data.string());
      // Folders made before the surveillance set existed get it added; the
      // rest (and manifest.json, which the training fingerprints) stays as is.
      if (synth::ensure_surveillance(data, so)) spdlog::info("demo: surveillance set added in {}/ijbs", data.string());
      return data;
    }
    spdlog::info("demo: {} holds other synthetic data; regenerating it", data.string());
    fs::remove_all(data);
  }
  spdlog::info("demo: generating the synthetic '{}' set in {}", o.preset, data.string());
  synth::SynthSummary s = synth::generate(data, so);
  spdlog::info("demo: {} training images of {} identities, {} verification pairs ({:.0f} s)", s.train_images,
               s.train_ids, s.val_pairs, s.seconds);
  return data;
}

struct RunResult {
  std::string head;
  uint64_t seed = 0;
  fs::path dir, model;
  double train_seconds = 0, images_per_second = 0;
  int64_t steps = 0;
  bool interrupted = false;
};

}  // namespace

std::vector<std::string> run_overrides(const std::string& run) {
  if (run == "adaface_official") return {"head.name=adaface", "head.stats_init=official"};
  for (const auto& [suffix, z] : {std::pair<std::string, std::string>{"_z-1", "-1"}, {"_z0", "0"}, {"_z+1", "1"}})
    if (run == "adaface" + suffix) return {"head.name=adaface", "head.fixed_z=" + z};
  return {"head.name=" + run};
}

namespace {

fs::path run_dir(const MainJobOptions& o, const std::string& head, uint64_t seed) {
  return o.seed_dirs ? o.out / fmt::format("seed{}", seed) / head : o.out / head;
}

// The training stage's fingerprint: the resolved config without the fields
// that do not change the result (paths, threads, logging), and the training
// images' bytes (the generator is deterministic, so a data folder regenerated
// with more evaluation sets keeps its trained models).
std::string train_fingerprint(train::TrainConfig c, const fs::path& data) {
  c.out_dir = "-";
  c.data.train = "-";
  c.threads = 0;
  c.log_every = 0;
  c.checkpoint_every = 0;
  c.keep_checkpoints = 0;
  return fingerprint(json{{"config", train::to_toml(c)},
                          {"train_rec", file_fingerprint(data / "train.rec")},
                          {"train_idx", file_fingerprint(data / "train.idx")}});
}

RunResult train_head(const MainJobOptions& o, const fs::path& config, const fs::path& data, const std::string& head,
                     uint64_t seed) {
  RunResult r{.head = head, .seed = seed, .dir = run_dir(o, head, seed)};
  std::vector<std::string> overrides = o.overrides;
  const std::vector<std::string> head_keys = run_overrides(head);
  overrides.insert(overrides.begin(), head_keys.begin(), head_keys.end());
  overrides.insert(overrides.begin(), {"out_dir=" + r.dir.string(), "data.train=" + (data / "train.rec").string(),
                                       fmt::format("seed={}", seed)});
  if (o.threads > 0) overrides.insert(overrides.begin(), fmt::format("threads={}", o.threads));
  train::TrainConfig c = train::load_config(config, overrides);
  const std::string fp = train_fingerprint(c, data);
  const fs::path summary_path = r.dir / "train_summary.json", stage_path = r.dir / "stage.json";
  if (has_fingerprint(summary_path, fp) && fs::exists(r.dir / "model.pt")) {
    const json s = json::parse(read_file(summary_path));
    if (!s.value("interrupted", true)) {
      spdlog::info("demo: {} (seed {}) already trained in {}", head, seed, r.dir.string());
      r.model = r.dir / "model.pt";
      r.steps = s.value("steps", int64_t{0});
      r.train_seconds = s.value("seconds", 0.0);
      r.images_per_second = s.value("images_per_second", 0.0);
      return r;
    }
  }
  // Checkpoints of another configuration are not resumed: start over.
  if (fs::exists(r.dir) && !has_fingerprint(stage_path, fp)) {
    spdlog::info("demo: {} was trained with another configuration; retraining", r.dir.string());
    fs::remove_all(r.dir);
  }
  ensure_dir(r.dir);
  write_file_atomic(stage_path, json{{"fingerprint", fp}, {"config", config.string()}, {"overrides", overrides}}.dump(2) + "\n");
  const bool resume = !train::list_checkpoints(r.dir / "checkpoints", 0, false).empty();
  spdlog::info("demo: training {} + {}, seed {} ({}){}", c.model.backbone, head, seed, config.string(),
               resume ? ", resuming from the newest checkpoint" : "");
  const auto t0 = Clock::now();
  train::TrainSummary s = train::train(c, train::Dist::single(), resume);
  r.train_seconds = since(t0);
  r.steps = s.steps;
  // This invocation's steps only (a resumed run counts the steps it took itself).
  r.images_per_second = r.train_seconds > 0 ? static_cast<double>(s.steps_this_run * c.batch_size) / r.train_seconds : 0;
  r.interrupted = s.interrupted;
  r.model = s.model;
  write_file_atomic(summary_path, json{{"fingerprint", fp},
                                       {"steps", s.steps},
                                       {"last_loss", s.last_loss},
                                       {"images_per_second", r.images_per_second},
                                       {"seconds", r.train_seconds},
                                       {"interrupted", s.interrupted},
                                       {"model", s.model.string()}}
                                      .dump(2) + "\n");
  return r;
}

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

struct SeedResult {
  uint64_t seed = 0;
  std::map<std::string, RunResult> runs;
  std::map<std::string, ModelEval> evals;
  ClaimsResult claims;
};


// The surveillance section: per protocol and fusion the identification
// rates (mean ± std across seeds), then the paired-bootstrap differences.
std::string surveillance_markdown(const std::vector<SeedResult>& seeds, const EvalData& data,
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
  md += "\n| protocol | fusion | metric |";
  for (const auto& h : heads) md += " " + head_title(h) + " |";
  md += "\n|---|---|---|";
  for (std::size_t i = 0; i < heads.size(); ++i) md += "---:|";
  md += "\n";
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

// AdaFace's z over training, from metrics.jsonl (null for other heads or logs
// without z): the share of samples near z = 0 (|z| < 0.2, where the margin is
// CosFace's), clipped at -1 / +1, and the 5-95 % spread of z, averaged over the
// log steps of the first 20 % of training and of the whole run.
json z_summary(const fs::path& run) {
  const fs::path log = run / "metrics.jsonl";
  if (!fs::exists(log)) return json();
  std::vector<json> rows;
  std::istringstream in(read_file(log));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.contains("z_q05") && j.contains("z_abs_lt_0.2")) rows.push_back(std::move(j));
  }
  if (rows.empty()) return json();
  auto average = [&](std::size_t n, auto get) {
    double s = 0;
    for (std::size_t i = 0; i < n; ++i) s += get(rows[i]);
    return s / static_cast<double>(n);
  };
  auto part = [&](std::size_t n) {
    return json{{"log_steps", n},
                {"near_zero", average(n, [](const json& j) { return j["z_abs_lt_0.2"].get<double>(); })},
                {"clip_lo", average(n, [](const json& j) { return j["z_clip_lo"].get<double>(); })},
                {"clip_hi", average(n, [](const json& j) { return j["z_clip_hi"].get<double>(); })},
                {"spread_5_95", average(n, [](const json& j) { return j["z_q95"].get<double>() - j["z_q05"].get<double>(); })}};
  };
  return {{"early", part(std::max<std::size_t>(1, rows.size() / 5))}, {"all", part(rows.size())}};
}

// The paper's low-quality protocols (cross-quality 1:1, TinyFace-style
// identification), the identity-free tail check and AdaFace's z over training.
std::string protocols_markdown(const std::vector<SeedResult>& seeds, const std::vector<std::string>& heads,
                               const json& cmp) {
  const bool many = seeds.size() > 1;
  std::string md;
  auto per_seed = [&](const std::string& head, auto get) {
    std::vector<double> v;
    for (const SeedResult& s : seeds)
      if (s.evals.count(head))
        if (const std::optional<double> x = get(s.evals.at(head).protocols); x && std::isfinite(*x)) v.push_back(*x);
    return v;
  };
  const ProtocolEval& any = seeds.front().evals.begin()->second.protocols;
  if (!any.cross.is_null() || !any.tinyface.is_null()) {
    md += fmt::format("\n## Low-quality protocols{}\n\n", many ? " (mean ± std across seeds)" : "");
    if (!any.cross.is_null())
      md += fmt::format("val_cross: {} pairs of a low-quality probe and a high-quality reference ({} impostor pairs); "
                        "TAR at one threshold set over all impostor pairs, shown where at least 1/FAR impostors "
                        "resolve it.\n", any.cross["pairs"].get<int64_t>(), any.cross["impostors"].get<int64_t>());
    if (!any.tinyface.is_null())
      md += fmt::format("tinyface: {} low-resolution probes against {} gallery images and {} distractors.\n",
                        any.tinyface["probes"].get<int64_t>(), any.tinyface["gallery"].get<int64_t>(),
                        any.tinyface["distractors"].get<int64_t>());
    md += "\n| protocol | metric |";
    for (const auto& h : heads) md += " " + head_title(h) + " |";
    md += "\n|---|---|";
    for (std::size_t i = 0; i < heads.size(); ++i) md += "---:|";
    md += "\n";
    auto row = [&](const std::string& protocol, const std::string& metric, auto get) {
      md += fmt::format("| {} | {} |", protocol, metric);
      for (const auto& h : heads) md += " " + across(per_seed(h, get), 100, 2) + " |";
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
  }
  if (!any.tail.is_null()) {
    md += fmt::format("\n## Identity-free tail (held-out renders of training identities, rank-1 against each model's "
                      "class centres; chance {:.2f} %), and how far each model fitted the identity-free images it "
                      "trained on\n\n| model | held-out identity-free % | held-out ordinary % | identity-free training "
                      "images fitted % |\n|---|---:|---:|---:|\n",
                      100 * any.tail["chance"].get<double>());
    for (const auto& h : heads) {
      auto get = [&](const char* key) {
        return across(per_seed(h, [&](const ProtocolEval& p) -> std::optional<double> {
          return p.tail.contains(key) && p.tail[key].is_number() ? std::optional<double>(p.tail[key].get<double>())
                                                                  : std::nullopt;
        }), 100, 1);
      };
      md += fmt::format("| {} | {} | {} | {} |\n", head_title(h), get("free_rank1"), get("ordinary_rank1"),
                        get("train_free_rank1"));
    }
  }
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
  if (!z.empty())
    md += "\n## AdaFace's z over training (first 20 % of the log steps / whole run)\n\n"
          "| run | seed | near 0 (abs z < 0.2) % | at −1 % | at +1 % | z spread, 5–95 % |\n|---|---:|---:|---:|---:|---:|\n" +
          z;
  return md;
}

std::string markdown(const MainJobOptions& o, const std::vector<SeedResult>& seeds, const EvalData& data, json& cmp) {
  const std::vector<std::string>& heads = o.heads;
  const bool many = seeds.size() > 1;
  std::string md = fmt::format("# {}: {} on synthetic faces\n\n", o.title, fmt::join(heads, ", "));
  md += fmt::format("Data: `qface synth --preset {} --identity-free {:g}`; {} pairs per verification set; seeds {}; 95 % "
                    "paired bootstrap intervals ({} resamples, seeded) over identities (or probes, as named).\n\n",
                    o.preset, o.identity_free, data.strata.front().issame.size(), fmt::join(o.seeds, ", "), o.resamples);
  // ---- Claims
  md += "## The papers' claims\n\n";
  if (!many) {
    md += eval::claims_markdown(seeds.front().claims.claims);
  } else {
    // The verdict is the across-seed one (t interval over the per-seed
    // estimates): a single seed's interval does not hold its training noise.
    std::vector<ClaimsResult> per_seed;
    for (const SeedResult& s : seeds) per_seed.push_back(s.claims);
    const ClaimsResult all = claims_across_seeds(per_seed);
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

  // ---- Recognition per stratum
  auto per_seed = [&](const std::string& head, auto get) {
    std::vector<double> v;
    for (const SeedResult& s : seeds)
      if (s.evals.count(head)) {
        const auto x = get(s.evals.at(head));
        if (x) v.push_back(*x);
      }
    return v;
  };
  md += fmt::format("## Recognition per quality stratum{}\n\n", many ? " (mean ± std across seeds)" : "");
  md += "| set | metric |";
  for (const auto& h : heads) md += " " + head_title(h) + " |";
  md += "\n|---|---|" + std::string(3 * heads.size(), ' ') + "\n";
  md.resize(md.size() - 3 * heads.size() - 1);
  for (std::size_t i = 0; i < heads.size(); ++i) md += "---:|";
  md += "\n";
  for (const Stratum& st : data.strata) {
    auto row = [&](const std::string& label, double scale, int digits, auto get) {
      md += "| " + st.name + " | " + label + " |";
      for (const auto& h : heads) md += " " + across(per_seed(h, get), scale, digits) + " |";
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

  // ---- Differences to ArcFace
  if (!seeds.front().claims.differences.is_null()) {
    md += "## Differences to ArcFace (accuracy points, 95 % paired bootstrap over identities)\n\n| set |";
    std::vector<std::string> others;
    for (const auto& h : heads)
      if (h != "arcface") others.push_back(h);
    for (const auto& h : others) md += " " + head_title(h) + " − ArcFace |";
    md += "\n|---|" ;
    for (std::size_t i = 0; i < others.size(); ++i) md += "---|";
    md += "\n";
    std::vector<std::string> sets;
    for (const Stratum& st : data.strata) sets.push_back(st.name);
    sets.push_back("all");
    for (const auto& set : sets)
      for (const char* mode : {"acc", "acc_flip"}) {
        if (set == "all" && std::string(mode) == "acc_flip") continue;
        if (!seeds.front().claims.differences[others.front()][set].contains(mode)) continue;
        md += fmt::format("| {}{} |", set, std::string(mode) == "acc_flip" ? " (flip-fused)" : "");
        for (const auto& h : others) {
          std::vector<std::string> cells;
          for (const SeedResult& s : seeds) cells.push_back(ci_text(s.claims.differences[h][set][mode], 100, 2));
          md += " " + fmt::format("{}", fmt::join(cells, "; ")) + " |";
        }
        md += "\n";
      }
    md += "\n";
  }

  // ---- Quality as a score
  md += fmt::format("## Quality as a score (all strata pooled){}\n\n", many ? ", mean ± std across seeds" : "");
  md += "EDC: FNMR of the kept genuine comparisons at a threshold fixed once at FMR 1e-3 of all comparisons, vs the "
        "fraction discarded (lowest pair quality first); pAUC from 0 to 20 % discarded, lower is better.\n\n";
  md += "| model | EDC pAUC norm | BRISQUE | ground truth (oracle) | random | FNMR0 | Spearman(norm, true quality) | "
        "Spearman(norm, recognizability) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& h : heads) {
    auto q = [&](const char* score) {
      return across(per_seed(h, [&](const ModelEval& m) { return std::optional<double>(m.quality[score]["pauc"].get<double>()); }), 1, 4);
    };
    std::vector<double> rho_gt, rho_rec;
    for (const SeedResult& s : seeds) {
      rho_gt.push_back(s.claims.recognizability[h]["spearman_norm_gt"].get<double>());
      rho_rec.push_back(s.claims.recognizability[h]["spearman_norm_recognizability"].get<double>());
    }
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", head_title(h), q("norm"), q("brisque"), q("gt"),
                      q("random"),
                      across(per_seed(h, [&](const ModelEval& m) { return std::optional<double>(m.quality["norm"]["fnmr0"].get<double>()); }), 1, 3),
                      across(rho_gt, 1, 3), across(rho_rec, 1, 3));
  }
  md += "\nThe same with the threshold fixed at FMR 1e-2 (supplementary: at 1e-3 a weak model's FNMR0 is near 1 and "
        "leaves discarding little to remove):\n\n| model | EDC pAUC norm | BRISQUE | ground truth (oracle) | random | FNMR0 |\n"
        "|---|---:|---:|---:|---:|---:|\n";
  for (const auto& h : heads) {
    auto q2 = [&](const char* score, const char* field) {
      return across(per_seed(h, [&](const ModelEval& m) {
        const json& j = m.quality[score];
        return j.contains("fmr_1e-2") ? std::optional<double>(j["fmr_1e-2"][field].get<double>()) : std::nullopt;
      }), 1, 4);
    };
    md += fmt::format("| {} | {} | {} | {} | {} | {} |\n", head_title(h), q2("norm", "pauc"), q2("brisque", "pauc"),
                      q2("gt", "pauc"), q2("random", "pauc"), q2("norm", "fnmr0"));
  }
  // Within each stratum (threshold at that stratum's FMR 1e-3): the pooled EDC
  // mostly rewards a score for telling the strata apart, which every score does.
  md += fmt::format("\nWithin each stratum (threshold fixed at FMR 1e-3 of the stratum's own comparisons; the pooled EDC "
                    "above mostly rewards telling the strata apart). Last column: pAUC of BRISQUE minus the norm's, 95 % "
                    "paired bootstrap over the stratum's identities, seed {} (positive: the norm ranks better):\n\n"
                    "| set | model | EDC pAUC norm | BRISQUE | ground truth (oracle) | FNMR0 | BRISQUE − norm |\n"
                    "|---|---|---:|---:|---:|---:|---|\n", seeds.front().seed);
  for (const Stratum& st : data.strata)
    for (const auto& h : heads) {
      auto q3 = [&](const char* score, const char* field) {
        return across(per_seed(h, [&](const ModelEval& m) -> std::optional<double> {
          for (const auto& r : m.strata)
            if (r.name == st.name && r.quality.contains(score)) return r.quality[score][field].get<double>();
          return std::nullopt;
        }), 1, 4);
      };
      const json& w = seeds.front().claims.within_strata;
      auto number = [&](const char* k) { return w.contains(h) && w[h].contains(st.name) && w[h][st.name][k].is_number(); };
      const std::string ci = number("estimate") && number("lo") && number("hi")
                                 ? fmt::format("{:+.5f} [{:+.5f}, {:+.5f}]", w[h][st.name]["estimate"].get<double>(),
                                               w[h][st.name]["lo"].get<double>(), w[h][st.name]["hi"].get<double>())
                                 : std::string("—");
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", st.name, head_title(h), q3("norm", "pauc"),
                        q3("brisque", "pauc"), q3("gt", "pauc"), q3("norm", "fnmr0"), ci);
    }
  std::vector<double> gt_rec;
  for (const SeedResult& s : seeds) gt_rec.push_back(s.claims.recognizability["spearman_gt_vs_recognizability"].get<double>());
  md += fmt::format("\nRecognizability: {}. Spearman(true quality, recognizability) = {}.\n\n",
                    seeds.front().claims.recognizability["definition"].get<std::string>(), across(gt_rec, 1, 3));

  // ---- Clustering
  md += "## Clustering (all verification images by identity, k-NN graph at the model's FMR 1e-3 threshold)\n\n";
  md += "| model | BCubed F plain | BCubed F quality-ordered (norm core 50 %) | NMI plain | NMI quality-ordered | "
        "BCubed F plain / quality-ordered at FMR 1e-2 | at FMR 1e-1 |\n|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& h : heads) {
    auto c = [&](const char* variant, const char* metric) {
      return across(per_seed(h, [&](const ModelEval& m) {
        const json& j = m.cluster[variant];
        return std::optional<double>(std::string(metric) == "nmi" ? j["nmi"].get<double>() : j["bcubed"]["f"].get<double>());
      }), 1, 4);
    };
    auto sweep = [&](std::size_t k) {
      auto get = [&](const char* field) {
        return across(per_seed(h, [&](const ModelEval& m) {
          const json& s = m.cluster.value("sweep", json::array());
          return s.size() > k ? std::optional<double>(s[k][field].get<double>()) : std::nullopt;
        }), 1, 4);
      };
      return get("plain_bcubed_f") + " / " + get("quality_bcubed_f");
    };
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", head_title(h), c("plain", "f"), c("quality_ordered", "f"),
                      c("plain", "nmi"), c("quality_ordered", "nmi"), sweep(0), sweep(1));
  }
  md += protocols_markdown(seeds, heads, cmp);
  md += surveillance_markdown(seeds, data, heads);
  // ---- Training
  md += "\n## Training\n\n| head | seed | steps | minutes | img/s |\n|---|---:|---:|---:|---:|\n";
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

fs::path default_demo_config() {
  const fs::path local = "configs/synth_demo.toml";
  if (fs::exists(local)) return local;
  return fs::path(QFACE_CONFIG_DIR) / "synth_demo.toml";
}

fs::path default_study_config() {
  const fs::path local = "configs/synth_study.toml";
  if (fs::exists(local)) return local;
  return fs::path(QFACE_CONFIG_DIR) / "synth_study.toml";
}

MainJobOptions study_options() {
  MainJobOptions o;
  o.out = "runs/study";
  o.config = default_study_config();
  o.preset = "study";
  // The margin question needs AdaFace against ArcFace, CurricularFace and its
  // own fixed-z endpoints (z = -1 is ArcFace with m 0.4, close to the ArcFace
  // run, so it is left to the demo's --heads); the magnitude questions need
  // MagFace against ArcFace. Four paired seeds carry each claim.
  o.heads = {"adaface", "arcface", "curricularface", "adaface_z0", "adaface_z+1", "magface"};
  o.seeds = {0, 1, 2, 3};

  o.eval.flip = true;
  o.seed_dirs = true;
  o.title = "qface study";
  return o;
}

MainJobResult run_main_job(const MainJobOptions& o) {
  require(!o.heads.empty(), "demo: no heads to train");
  require(!o.seeds.empty(), "demo: no seeds");
  const fs::path config = o.config.empty() ? default_demo_config() : o.config;
  require(fs::exists(config), "demo: config {} not found", config.string());
  if (o.threads > 0) torch::set_num_threads(o.threads);
  ensure_dir(o.out);
  const auto t0 = Clock::now();
  const fs::path data_dir = ensure_data(o);
  const bool bf16 = train::load_config(config, o.overrides).bf16;

  MainJobResult result;
  // Train everything first (the long part), then evaluate.
  std::vector<SeedResult> seeds;
  for (uint64_t seed : o.seeds) {
    SeedResult s{.seed = seed};
    for (const std::string& head : o.heads) {
      RunResult r = train_head(o, config, data_dir, head, seed);
      if (r.interrupted) {
        result.interrupted = true;
        spdlog::warn("demo: interrupted while training {}; run the same command again to resume", head);
        return result;
      }
      s.runs[head] = r;
    }
    seeds.push_back(std::move(s));
  }
  const EvalData data = load_eval_data(data_dir);
  json cmp = {{"kind", "demo.comparison"}, {"config", config.string()}, {"preset", o.preset},
              {"identity_free", o.identity_free}, {"seeds", o.seeds},
              {"heads", o.heads}, {"eval_settings", o.eval.to_json()}, {"resamples", o.resamples}};
  std::vector<fs::path> report_runs;
  for (SeedResult& s : seeds) {
    for (const std::string& head : o.heads) {
      const RunResult& r = s.runs[head];
      EvalSettings es = o.eval;
      es.seed = s.seed;
      es.bf16 = bf16;  // evaluate in the precision the recipe trains in
      s.evals[head] = evaluate_model(r.model, fmt::format("{}{}", head, o.seed_dirs ? fmt::format(" s{}", s.seed) : ""),
                                     data, es, r.dir / "eval", class_centres(r.dir));
      json summary;
      for (const StratumResult& st : s.evals[head].strata)
        summary[st.name] = {{"acc", st.acc}, {"acc_std", st.acc_std}, {"acc_flip", st.acc_flip ? json(*st.acc_flip) : json()},
                            {"tar_at_far", st.tar}, {"spearman_norm_gt", st.spearman_gt},
                            {"spearman_norm_recognizability", st.spearman_recog}, {"edc", st.quality}};
      cmp["runs"][std::to_string(s.seed)][head] = {{"steps", r.steps}, {"train_seconds", r.train_seconds},
                                                   {"images_per_second", r.images_per_second}, {"model", r.model.string()},
                                                   {"eval", summary}, {"quality", s.evals[head].quality},
                                                   {"cluster", s.evals[head].cluster}};
      const ProtocolEval& pe = s.evals[head].protocols;
      cmp["runs"][std::to_string(s.seed)][head]["protocols"] = {
          {"cross", pe.cross}, {"tinyface", pe.tinyface}, {"tail", pe.tail}};
      if (const json z = z_summary(r.dir); !z.is_null()) cmp["runs"][std::to_string(s.seed)][head]["z"] = z;
      for (const auto& [fusion, ijbs] : s.evals[head].ijbs)
        cmp["runs"][std::to_string(s.seed)][head]["ijbs"][fusion] = eval::to_json(ijbs);
      report_runs.push_back(r.dir);
    }
    spdlog::info("demo: bootstrap intervals for seed {}", s.seed);
    s.claims = measure_claims(s.evals, data, {.resamples = o.resamples, .seed = s.seed});
    json claims = json::array();
    for (std::size_t k = 0; k < s.claims.claims.size(); ++k) {
      json c = eval::to_json(s.claims.claims[k]);
      c["id"] = s.claims.ids[k];
      claims.push_back(c);
    }
    cmp["claims"][std::to_string(s.seed)] = claims;
    cmp["differences"][std::to_string(s.seed)] = s.claims.differences;
    cmp["recognizability"][std::to_string(s.seed)] = s.claims.recognizability;
    cmp["within_strata"][std::to_string(s.seed)] = s.claims.within_strata;
    if (!s.claims.surveillance.is_null()) cmp["surveillance"][std::to_string(s.seed)] = s.claims.surveillance;
  }
  if (seeds.size() > 1) {
    std::vector<ClaimsResult> per_seed;
    for (const SeedResult& s : seeds) per_seed.push_back(s.claims);
    json claims = json::array();
    const ClaimsResult across_seeds = claims_across_seeds(per_seed);
    for (std::size_t k = 0; k < across_seeds.claims.size(); ++k) {
      json c = eval::to_json(across_seeds.claims[k]);
      c["id"] = across_seeds.ids[k];
      claims.push_back(c);
    }
    cmp["claims_across_seeds"] = claims;
  }
  cmp["seconds"] = since(t0);
  result.table = markdown(o, seeds, data, cmp);
  write_file_atomic(o.out / "comparison.md", result.table);
  write_file_atomic(o.out / "comparison.json", cmp.dump(2) + "\n");
  result.report = o.out / "report.html";
  write_file_atomic(result.report, eval::build_report(report_runs, nullptr, o.title + ": " + fmt::format("{}", fmt::join(o.heads, " vs "))));
  result.comparison = std::move(cmp);
  return result;
}

}  // namespace qface::study
