#include "qface/study/main_job.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <algorithm>
#include <sstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/eval/report.h"
#include "qface/study/claims.h"
#include "qface/study/comparison_markdown.h"
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
  result.table = comparison_markdown(o, seeds, data, cmp);
  write_file_atomic(o.out / "comparison.md", result.table);
  write_file_atomic(o.out / "comparison.json", cmp.dump(2) + "\n");
  result.report = o.out / "report.html";
  write_file_atomic(result.report, eval::build_report(report_runs, nullptr, o.title + ": " + fmt::format("{}", fmt::join(o.heads, " vs "))));
  result.comparison = std::move(cmp);
  return result;
}

}  // namespace qface::study
