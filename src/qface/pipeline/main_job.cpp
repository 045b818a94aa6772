#include "qface/pipeline/main_job.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/eval/features.h"
#include "qface/eval/quality.h"
#include "qface/eval/report.h"
#include "qface/eval/verify.h"
#include "qface/infer/embed.h"
#include "qface/io/checkpoint.h"
#include "qface/synth/generate.h"
#include "qface/train/checkpoint.h"
#include "qface/train/config.h"
#include "qface/train/distributed.h"
#include "qface/train/trainer.h"
#include "qface/train/validation.h"

namespace qface::pipeline {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::vector<std::string> kStrata = {"val_high", "val_mixed", "val_low"};

fs::path ensure_data(const MainJobOptions& o) {
  const fs::path data = o.out / "data";
  if (fs::exists(data / "manifest.json")) {
    spdlog::info("demo: synthetic data already in {} (delete it to regenerate)", data.string());
    return data;
  }
  synth::SynthOptions so = synth::preset_options(o.preset);
  if (o.threads > 0) so.threads = o.threads;
  spdlog::info("demo: generating the synthetic '{}' set in {}", o.preset, data.string());
  synth::SynthSummary s = synth::generate(data, so);
  spdlog::info("demo: {} training images of {} identities, {} pairs per verification set ({:.0f} s)", s.train_images,
               s.train_ids, s.val_pairs, s.seconds);
  return data;
}

struct RunResult {
  std::string head;
  fs::path dir, model;
  double train_seconds = 0, images_per_second = 0;
  int64_t steps = 0;
  bool interrupted = false;
};

RunResult train_head(const MainJobOptions& o, const fs::path& config, const fs::path& data, const std::string& head) {
  RunResult r{.head = head, .dir = o.out / head};
  const fs::path summary_path = r.dir / "train_summary.json";
  if (fs::exists(summary_path) && fs::exists(r.dir / "model.pt")) {
    json s = json::parse(read_file(summary_path));
    if (!s.value("interrupted", true)) {
      spdlog::info("demo: {} already trained in {} (delete it to retrain)", head, r.dir.string());
      r.model = r.dir / "model.pt";
      r.steps = s.value("steps", int64_t{0});
      r.train_seconds = s.value("seconds", 0.0);
      r.images_per_second = s.value("images_per_second", 0.0);
      return r;
    }
  }
  // No validation during training: evaluate() below embeds every stratum
  // with the final model (BatchNorm folded), which is what the table shows.
  std::vector<std::string> overrides = o.overrides;
  overrides.insert(overrides.begin(), {"head.name=" + head, "out_dir=" + r.dir.string(),
                                       "data.train=" + (data / "train.rec").string()});
  if (o.threads > 0) overrides.insert(overrides.begin(), fmt::format("threads={}", o.threads));
  train::TrainConfig c = train::load_config(config, overrides);
  const bool resume = !train::list_checkpoints(r.dir / "checkpoints", 0, false).empty();
  spdlog::info("demo: training {} + {} ({}){}", c.model.backbone, head, config.string(),
               resume ? ", resuming from the newest checkpoint" : "");
  const auto t0 = std::chrono::steady_clock::now();
  train::TrainSummary s = train::train(c, train::Dist::single(), resume);
  r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.steps = s.steps;
  // Average over this invocation's steps (the summary's figure is the last log
  // window); a resumed run counts only the steps it took itself.
  r.images_per_second =
      r.train_seconds > 0 ? static_cast<double>(s.steps_this_run * c.batch_size) / r.train_seconds : 0;
  r.interrupted = s.interrupted;
  r.model = s.model;
  write_file_atomic(summary_path, json{{"steps", s.steps},
                                       {"last_loss", s.last_loss},
                                       {"images_per_second", s.images_per_second},
                                       {"seconds", r.train_seconds},
                                       {"interrupted", s.interrupted},
                                       {"model", s.model.string()},
                                       {"validation", s.validation}}
                                      .dump(2) + "\n");
  return r;
}

// Embeds every stratum with the trained model; writes the eval JSONs the
// report reads into <run>/eval and returns the numbers for the table.
json evaluate(const RunResult& r, const fs::path& data) {
  io::Checkpoint ckpt = io::read_checkpoint(r.model);
  require(!ckpt.arch.empty(), "{}: checkpoint does not name its architecture", r.model.string());
  auto model = backbones::make_backbone(ckpt.arch);
  io::load_state_dict(*model, ckpt.tensors, r.model.string(), ckpt.arch);
  infer::InferenceOptions io;
  infer::prepare_for_inference(*model, io);
  std::vector<eval::VerifySet> sets;
  json out;
  const fs::path eval_dir = r.dir / "eval";
  ensure_dir(eval_dir);
  for (const std::string& stratum : kStrata) {
    const fs::path bin = data / (stratum + ".bin");
    eval::BinPairs pairs = eval::read_bin_pairs(bin, true);
    train::BinVerification v = train::verify_encoded(*model, pairs.images_bytes, pairs.issame, bin.string(), 64, io);
    const infer::PlainAndFlipped& e = v.features;
    eval::VerifySet vs{.set = stratum};
    vs.modes.push_back({"plain", v.plain});
    vs.modes.push_back({"flip_fused", v.flip_fused});
    const eval::VerifyResult& plain = vs.modes[0].second;
    const eval::VerifyResult& flip = vs.modes[1].second;

    // Feature norm as quality: rank correlation with the generator's ground
    // truth, and EDC (error vs discard) with norm and ground truth as scores.
    std::vector<double> gt = eval::ground_truth_quality(data / "manifest.json", bin.filename().string(), {},
                                                        pairs.images);
    torch::Tensor nd = e.plain.norms.to(torch::kFloat64).contiguous();
    std::vector<double> norms(nd.data_ptr<double>(), nd.data_ptr<double>() + nd.numel());
    eval::Comparisons cmp = eval::pair_comparisons(e.plain.embeddings, pairs.issame);
    json q = eval::quality_report_json(r.head + " " + stratum, bin.filename().string(), cmp,
                                       {{"norm", norms}, {"gt", gt}}, gt, e.plain.norms);
    eval::write_json(eval_dir / fmt::format("quality_{}.json", stratum), q);

    out[stratum] = {{"acc", plain.accuracy_mean},
                    {"acc_std", plain.accuracy_std},
                    {"acc_flip", flip.accuracy_mean},
                    {"tar_far_1e-3", plain.val_mean},
                    {"norm_mean", e.plain.norms.mean().item<double>()},
                    {"spearman_norm_gt", q["scores"]["norm"]["spearman_vs_gt"]},
                    {"edc_pauc_norm", q["scores"]["norm"]["edc"]["pauc"]}};
    sets.push_back(std::move(vs));
  }
  eval::write_json(eval_dir / "verify.json", eval::verify_report_json(r.head, sets));
  return out;
}

std::string pct(const json& v) { return v.is_number() ? fmt::format("{:.2f}", 100 * v.get<double>()) : "-"; }
std::string num(const json& v) { return v.is_number() ? fmt::format("{:.3f}", v.get<double>()) : "-"; }

std::string table(const json& cmp, const std::vector<std::string>& heads) {
  std::string t = "| set | metric |";
  for (const auto& h : heads) t += " " + h + " |";
  t += "\n|---|---|";
  for (std::size_t i = 0; i < heads.size(); ++i) t += "---:|";
  t += "\n";
  const std::vector<std::tuple<std::string, std::string, bool>> rows = {
      {"acc", "accuracy %", true},
      {"acc_flip", "accuracy, flip-fused %", true},
      {"tar_far_1e-3", "TAR@FAR=1e-3 %", true},
      {"spearman_norm_gt", "Spearman(norm, true quality)", false},
      {"norm_mean", "mean feature norm", false}};
  for (const std::string& s : kStrata)
    for (const auto& [key, label, percent] : rows) {
      t += "| " + s + " | " + label + " |";
      for (const auto& h : heads) {
        const json& v = cmp["runs"][h]["eval"][s][key];
        t += " " + (percent ? pct(v) : num(v)) + " |";
      }
      t += "\n";
    }
  t += "| - | training img/s |";
  for (const auto& h : heads) t += fmt::format(" {:.1f} |", cmp["runs"][h]["images_per_second"].get<double>());
  t += "\n| - | training minutes |";
  for (const auto& h : heads) t += fmt::format(" {:.1f} |", cmp["runs"][h]["train_seconds"].get<double>() / 60);
  return t + "\n";
}

// What the data shows about the papers' claims, in words, from the numbers.
std::vector<std::string> findings(const json& cmp) {
  std::vector<std::string> f;
  if (!cmp["runs"].contains("adaface") || !cmp["runs"].contains("arcface")) return f;
  const json& a = cmp["runs"]["adaface"]["eval"];
  const json& b = cmp["runs"]["arcface"]["eval"];
  for (const std::string& s : kStrata) {
    const double da = a[s]["acc"].get<double>(), db = b[s]["acc"].get<double>();
    const double sd = std::max(a[s]["acc_std"].get<double>(), b[s]["acc_std"].get<double>());
    const char* verdict = std::abs(da - db) <= sd ? "within one fold std (not significant)"
                          : da > db               ? "AdaFace better"
                                                  : "ArcFace better";
    f.push_back(fmt::format("{}: AdaFace {:.2f} % vs ArcFace {:.2f} % ({:+.2f} points, fold std {:.2f}): {}", s,
                            100 * da, 100 * db, 100 * (da - db), 100 * sd, verdict));
  }
  const json& rho = a["val_mixed"]["spearman_norm_gt"];
  if (rho.is_number())
    f.push_back(fmt::format("AdaFace feature norm vs true quality on val_mixed: Spearman {:.3f} ({})", rho.get<double>(),
                            rho.get<double>() > 0.3 ? "the norm is a quality proxy here" : "weak or no correlation"));
  return f;
}

}  // namespace

fs::path default_demo_config() {
  const fs::path local = "configs/synth_demo.toml";
  if (fs::exists(local)) return local;
  return fs::path(QFACE_CONFIG_DIR) / "synth_demo.toml";
}

MainJobResult run_main_job(const MainJobOptions& o) {
  require(!o.heads.empty(), "demo: no heads to train");
  const fs::path config = o.config.empty() ? default_demo_config() : o.config;
  require(fs::exists(config), "demo: config {} not found", config.string());
  if (o.threads > 0) torch::set_num_threads(o.threads);
  ensure_dir(o.out);
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path data = ensure_data(o);

  MainJobResult result;
  json cmp = {{"kind", "demo.comparison"}, {"config", config.string()}, {"preset", o.preset}};
  std::vector<fs::path> report_runs;
  for (const std::string& head : o.heads) {
    RunResult r = train_head(o, config, data, head);
    if (r.interrupted) {
      result.interrupted = true;
      spdlog::warn("demo: interrupted while training {}; run the same command again to resume", head);
      return result;
    }
    json e = evaluate(r, data);
    cmp["runs"][head] = {{"steps", r.steps},
                         {"train_seconds", r.train_seconds},
                         {"images_per_second", r.images_per_second},
                         {"model", r.model.string()},
                         {"eval", e}};
    report_runs.push_back(r.dir);
  }
  cmp["findings"] = findings(cmp);
  cmp["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.table = table(cmp, o.heads);
  std::string md = "# qface demo: " + fmt::format("{}", fmt::join(o.heads, " vs ")) + " on synthetic faces\n\n" +
                   result.table + "\n";
  for (const auto& line : cmp["findings"]) md += "- " + line.get<std::string>() + "\n";
  write_file_atomic(o.out / "comparison.md", md);
  write_file_atomic(o.out / "comparison.json", cmp.dump(2) + "\n");
  result.report = o.out / "report.html";
  write_file_atomic(result.report, eval::build_report(report_runs, nullptr, "qface demo: AdaFace vs ArcFace"));
  result.comparison = std::move(cmp);
  return result;
}

}  // namespace qface::pipeline
