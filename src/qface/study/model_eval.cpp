#include "qface/study/model_eval.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <map>
#include <random>

#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/svg_plot.h"
#include "qface/data/bin_set.h"
#include "qface/deploy/calibration.h"
#include "qface/eval/cluster.h"
#include "qface/eval/features.h"
#include "qface/eval/quality.h"
#include "qface/eval/roc.h"
#include "qface/eval/verify.h"
#include "qface/infer/embed.h"
#include "qface/infer/verify_bin.h"
#include "qface/io/checkpoint.h"
#include "qface/study/stage.h"

namespace qface::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kStrata[] = {"val_high", "val_mixed", "val_low"};
const std::vector<double> kFars = {1e-3, 1e-2};

std::vector<double> to_vec(const torch::Tensor& t) {
  torch::Tensor d = t.to(torch::kFloat64).reshape({-1}).contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

std::string far_key(double far) { return fmt::format("{:g}", far); }

// Per-score EDC summary of one set of comparisons.
json edc_summary(const eval::Comparisons& c, const std::vector<std::pair<std::string, std::vector<double>>>& scores) {
  json j;
  for (const auto& [name, q] : scores) {
    const eval::EdcResult e = eval::edc(c, eval::pair_quality(c, q));
    j[name] = {{"pauc", e.pauc}, {"pauc_minus_ideal", e.pauc_minus_ideal}, {"fnmr0", e.fnmr0}};
  }
  return j;
}

}  // namespace

json EvalSettings::to_json() const {
  return {{"flip", flip}, {"bf16", bf16}, {"batch", batch}, {"cluster_core", cluster_core},
          {"cluster_k", cluster_k}, {"seed", seed}};
}

EvalData load_eval_data(const fs::path& dir) {
  EvalData d;
  d.dir = dir;
  const fs::path manifest = dir / "manifest.json";
  require(fs::exists(manifest), "{}: not a qface synth folder (no manifest.json)", dir.string());
  const fs::path brisque_file = dir / "brisque.json";
  json brisque = fs::exists(brisque_file) ? json::parse(read_file(brisque_file)) : json::object();
  bool brisque_new = false;
  for (const char* name : kStrata) {
    Stratum s;
    s.name = name;
    const fs::path bin = dir / (s.name + ".bin");
    data::BinSet set = data::read_bin_set(bin);
    s.images = std::move(set.images);
    s.issame = std::move(set.issame);
    const json side = json::parse(read_file(dir / (s.name + ".json")));
    const json& ids = side.at("identity");
    require(ids.size() == s.issame.size(), "{}: {} identity entries for {} pairs", (dir / (s.name + ".json")).string(),
            ids.size(), s.issame.size());
    for (const json& p : ids) {
      s.identity.push_back(p.at(0).get<int64_t>());
      s.identity.push_back(p.at(1).get<int64_t>());
    }
    s.gt = eval::ground_truth_quality(manifest, s.name + ".bin", {}, static_cast<int64_t>(s.images.size()));
    if (brisque.contains(s.name) && brisque[s.name].size() == s.images.size()) {
      s.brisque = brisque[s.name].get<std::vector<double>>();
    } else {
      spdlog::info("demo: BRISQUE of {} ({} images, once per data folder)", s.name, s.images.size());
      s.brisque = eval::brisque_of_encoded(s.images, bin.string());
      brisque[s.name] = s.brisque;
      brisque_new = true;
    }
    d.strata.push_back(std::move(s));
  }
  if (brisque_new) write_file_atomic(brisque_file, brisque.dump() + "\n");
  const fs::path ref = dir / "val_reference.bin";
  data::BinSet r = data::read_bin_set(ref);
  d.reference_images = std::move(r.images);
  const json m = json::parse(read_file(manifest));
  d.reference_identity = m.at("val_reference").at("identity").get<std::vector<int64_t>>();
  require(d.reference_identity.size() == d.reference_images.size(), "{}: {} reference identities for {} images",
          manifest.string(), d.reference_identity.size(), d.reference_images.size());
  if (fs::exists(dir / "ijbs" / "manifest.json")) d.ijbs = eval::load_ijbs_meta(dir / "ijbs");
  d.protocols = load_protocol_data(dir);
  return d;
}

json ModelEval::to_json() const {
  json j{{"name", name}, {"quality", quality}, {"cluster_threshold", cluster_threshold}, {"cluster", cluster},
         {"bcubed_p_plain", bcubed_p_plain}, {"bcubed_r_plain", bcubed_r_plain},
         {"bcubed_p_quality", bcubed_p_quality}, {"bcubed_r_quality", bcubed_r_quality}};
  for (const StratumResult& s : strata) {
    json js{{"name", s.name},     {"acc", s.acc},       {"acc_std", s.acc_std},           {"tar", s.tar},
            {"correct", s.correct}, {"norm", s.norm},   {"recog", s.recog},               {"score", s.score},
            {"spearman_gt", s.spearman_gt},               {"spearman_recog", s.spearman_recog}, {"quality", s.quality}};
    if (s.acc_flip) {
      js["acc_flip"] = *s.acc_flip;
      js["acc_flip_std"] = *s.acc_flip_std;
      js["correct_flip"] = s.correct_flip;
    }
    j["strata"].push_back(js);
  }
  return j;
}

ModelEval ModelEval::from_json(const json& j) {
  ModelEval m;
  m.name = j.at("name");
  m.quality = j.at("quality");
  m.cluster_threshold = j.at("cluster_threshold");
  m.cluster = j.at("cluster");
  m.bcubed_p_plain = j.at("bcubed_p_plain").get<std::vector<double>>();
  m.bcubed_r_plain = j.at("bcubed_r_plain").get<std::vector<double>>();
  m.bcubed_p_quality = j.at("bcubed_p_quality").get<std::vector<double>>();
  m.bcubed_r_quality = j.at("bcubed_r_quality").get<std::vector<double>>();
  for (const json& js : j.at("strata")) {
    StratumResult s;
    s.name = js.at("name");
    s.acc = js.at("acc");
    s.acc_std = js.at("acc_std");
    s.tar = js.at("tar");
    s.correct = js.at("correct").get<std::vector<double>>();
    s.norm = js.at("norm").get<std::vector<double>>();
    s.recog = js.at("recog").get<std::vector<double>>();
    s.score = js.at("score").get<std::vector<double>>();
    s.spearman_gt = js.at("spearman_gt");
    s.spearman_recog = js.at("spearman_recog");
    s.quality = js.at("quality");
    if (js.contains("acc_flip")) {
      s.acc_flip = js["acc_flip"].get<double>();
      s.acc_flip_std = js["acc_flip_std"].get<double>();
      s.correct_flip = js.at("correct_flip").get<std::vector<double>>();
    }
    m.strata.push_back(std::move(s));
  }
  return m;
}

std::vector<double> pooled_images(const EvalData& data, std::vector<double> Stratum::*field) {
  std::vector<double> out;
  for (const Stratum& s : data.strata) out.insert(out.end(), (s.*field).begin(), (s.*field).end());
  return out;
}

std::vector<double> pooled_pairs(const ModelEval& m, std::vector<double> StratumResult::*field) {
  std::vector<double> out;
  for (const StratumResult& s : m.strata) out.insert(out.end(), (s.*field).begin(), (s.*field).end());
  return out;
}

std::vector<double> pooled_images(const ModelEval& m, std::vector<double> StratumResult::*field) {
  return pooled_pairs(m, field);
}

// The trained network, ready for inference in the settings' precision.
backbones::Backbone load_for_eval(const fs::path& model_path, const EvalSettings& settings,
                                  infer::InferenceOptions& options) {
  io::Checkpoint ckpt = io::read_checkpoint(model_path);
  require(!ckpt.arch.empty(), "{}: checkpoint does not name its architecture", model_path.string());
  auto net = backbones::make_backbone_for_weights(ckpt.arch);
  io::load_state_dict(*net, std::move(ckpt.tensors), model_path.string(), ckpt.arch);
  options.bf16(settings.bf16);
  infer::prepare_for_inference(*net, options);
  return net;
}

namespace {

// The surveillance protocols (DIR/ijbs) under every fusion, cached on their
// own so that adding the set to an evaluated folder does not redo the rest.
std::map<std::string, eval::IjbsResult> evaluate_surveillance(const fs::path& model_path, const std::string& name,
                                                              const eval::IjbsMeta& meta, const EvalSettings& settings,
                                                              const fs::path& eval_dir) {
  const fs::path cache = eval_dir / "ijbs_eval.json";
  const std::string fp = fingerprint(json{{"model", file_fingerprint(model_path)},
                                          {"settings", settings.to_json()},
                                          {"data", file_fingerprint(meta.dir / "manifest.json")},
                                          {"fusions", kSurveillanceFusions},
                                          {"version", 1}});
  std::map<std::string, eval::IjbsResult> out;
  if (has_fingerprint(cache, fp)) {
    spdlog::info("demo: {} already evaluated on the surveillance set ({})", name, cache.string());
    const json j = json::parse(read_file(cache));
    for (const std::string& f : kSurveillanceFusions) out[f] = eval::ijbs_result_from_json(j.at("fusions").at(f));
    return out;
  }
  ensure_dir(eval_dir);
  infer::InferenceOptions io;
  auto net = load_for_eval(model_path, settings, io);
  std::vector<std::string> encoded;
  encoded.reserve(meta.files.size());
  for (const std::string& f : meta.files) encoded.push_back(read_file(meta.dir / f));
  spdlog::info("demo: evaluating {} on the surveillance set ({} images and frames{})", name, encoded.size(),
               settings.flip ? ", flip-fused" : "");
  const infer::PlainAndFlipped e =
      infer::embed_encoded(*net, encoded, meta.templates_file.string(), settings.batch, io, settings.flip);
  torch::Tensor features = e.plain.embeddings, norms = e.plain.norms;
  if (settings.flip)
    std::tie(features, norms) = qface::fuse_flip(e.plain.embeddings, e.plain.norms, e.flipped.embeddings, e.flipped.norms);
  json cached{{"fingerprint", fp}};
  for (const std::string& f : kSurveillanceFusions) {
    eval::IjbsOptions opt;
    opt.fusion = eval::parse_fusion(f);
    out[f] = eval::evaluate_ijbs(meta, features, norms, meta.files, opt);
    cached["fusions"][f] = eval::to_json(out[f], true);
  }
  json report = eval::to_json(out.at("norm"));  // the report shows the quality-aware fusion
  report["kind"] = "eval.ijbs";
  report["name"] = name;
  report["meta"] = meta.dir.string();
  eval::write_json(eval_dir / "ijbs.json", report);
  write_file_atomic(cache, cached.dump() + "\n");
  return out;
}

// Identity templates from the clean renders: normalize(sum of normalized embeddings).
torch::Tensor reference_templates(backbones::BackboneImpl& net, const EvalData& data, const EvalSettings& settings,
                                  const infer::InferenceOptions& io) {
  const infer::PlainAndFlipped ref = infer::embed_encoded(net, data.reference_images, (data.dir / "val_reference.bin").string(),
                                                          settings.batch, io, false);
  const int64_t n_ids = *std::max_element(data.reference_identity.begin(), data.reference_identity.end()) + 1;
  torch::Tensor templates = torch::zeros({n_ids, ref.plain.embeddings.size(1)});
  templates.index_add_(0, torch::tensor(data.reference_identity, torch::kInt64), ref.plain.embeddings);
  return torch::nn::functional::normalize(templates, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

// What the pooled steps take from the strata, in strata order.
struct PooledStrata {
  std::vector<eval::VerifySet> sets;
  std::vector<torch::Tensor> embeddings;  // plain
  std::vector<uint8_t> issame;
  // The deployment calibrations written beside the model (deploy/calibration.h):
  // impostor cosines of the features `qface verify` / `serve` compare
  // (flip-fused unless settings.flip is off).
  std::vector<float> deploy_impostors;
  int64_t deploy_genuine = 0;
};

// The 10-fold protocol, norms, recognizability and per-stratum EDCs of one stratum.
StratumResult evaluate_stratum(backbones::BackboneImpl& net, const std::string& name, const Stratum& st,
                               const EvalData& data, const EvalSettings& settings, const infer::InferenceOptions& io,
                               const torch::Tensor& templates, PooledStrata& pooled) {
  const std::string source = (data.dir / (st.name + ".bin")).string();
  spdlog::info("demo: evaluating {} on {} ({} pairs{})", name, st.name, st.issame.size(), settings.flip ? ", plain and flip-fused" : "");
  eval::VerifyOptions vo;
  vo.val_fars = kFars;
  const infer::BinVerification v =
      infer::verify_encoded(net, st.name, st.images, st.issame, source, settings.batch, io, vo, settings.flip);
  const infer::PlainAndFlipped& f = v.features;
  StratumResult r;
  r.name = st.name;
  const eval::VerifyResult& plain = v.plain();
  r.acc = plain.accuracy_mean;
  r.acc_std = plain.accuracy_std;
  for (double far : kFars) r.tar[far_key(far)] = plain.tar_json(far);
  r.correct.assign(plain.pair_correct.begin(), plain.pair_correct.end());
  if (settings.flip) {
    const eval::VerifyResult& flip = v.result.modes.at(1).second;
    r.acc_flip = flip.accuracy_mean;
    r.acc_flip_std = flip.accuracy_std;
    r.correct_flip.assign(flip.pair_correct.begin(), flip.pair_correct.end());
  }
  pooled.sets.push_back(v.result);
  r.norm = to_vec(f.plain.norms);
  torch::Tensor ids = torch::tensor(st.identity, torch::kInt64);
  require(ids.max().item<int64_t>() < templates.size(0), "{}: an identity has no clean reference render", source);
  r.recog = to_vec((f.plain.embeddings * templates.index_select(0, ids)).sum(1));
  const eval::Comparisons cmp = eval::pair_comparisons(f.plain.embeddings, st.issame);
  r.score.assign(cmp.score.begin(), cmp.score.end());
  r.spearman_gt = eval::spearman(r.norm, st.gt);
  r.spearman_recog = eval::spearman(r.norm, r.recog);
  r.quality = edc_summary(cmp, {{"norm", r.norm}, {"brisque", eval::brisque_quality(st.brisque)}, {"gt", st.gt}});
  pooled.embeddings.push_back(f.plain.embeddings);
  pooled.issame.insert(pooled.issame.end(), st.issame.begin(), st.issame.end());
  const torch::Tensor deployed = settings.flip ? v.fused : f.plain.embeddings;  // verify_encoded fused them
  const eval::Comparisons dc = eval::pair_comparisons(deployed, st.issame);
  for (std::size_t p = 0; p < dc.score.size(); ++p) {
    if (dc.genuine[p]) ++pooled.deploy_genuine;
    else pooled.deploy_impostors.push_back(dc.score[p]);
  }
  return r;
}

void write_calibrations(const fs::path& model_path, const std::string& name, const EvalData& data,
                        const EvalSettings& settings, const PooledStrata& pooled, const std::vector<double>& norm) {
  std::string source = name + ": val_high + val_mixed + val_low of " + data.dir.string();
  if (settings.bf16) source += " (features under bf16 autocast)";
  eval::write_json(deploy::verify_calibration_path(model_path),
                   deploy::verify_calibration_json(pooled.deploy_impostors, pooled.deploy_genuine,
                                                   settings.flip ? "flip_fused" : "plain", source));
  eval::write_json(deploy::quality_calibration_path(model_path), deploy::quality_calibration_json(norm, source));
  spdlog::info("demo: {} calibrations for qface verify / quality / serve: {}, {}", name,
               deploy::verify_calibration_path(model_path).string(),
               deploy::quality_calibration_path(model_path).string());
}

// The EDC and ERC of the quality report's scores as stand-alone SVGs (the README shows the study's).
void write_quality_curves(const json& q, const std::string& name, const fs::path& eval_dir) {
  for (const char* curve : {"edc", "erc"}) {
    std::vector<PlotSeries> series;
    for (auto& [score, sj] : q["scores"].items()) {
      PlotSeries ps;
      ps.label = score == "gt" ? "ground truth (oracle)" : score == "brisque" ? "BRISQUE" : score;
      ps.x = sj[curve][std::string(curve) == "edc" ? "discard" : "reject_actual"].get<std::vector<double>>();
      ps.y = sj[curve]["fnmr"].get<std::vector<double>>();
      series.push_back(std::move(ps));
    }
    PlotOptions po;
    po.title = std::string(curve) == "edc" ? fmt::format("EDC, {}: threshold fixed at FMR 1e-3", name)
                                          : fmt::format("ERC (MagFace), {}: threshold re-estimated at FMR 1e-3", name);
    po.x_label = std::string(curve) == "edc" ? "discarded fraction of genuine comparisons" : "rejected fraction of comparisons";
    po.y_label = "FNMR";
    po.x_min = 0;
    po.x_max = std::string(curve) == "edc" ? 0.5 : 1.0;
    po.y_min = 0;
    write_file_atomic(eval_dir / (std::string(curve) + ".svg"), render_svg(po, series));
  }
}

// Quality as a score on the pooled strata: norm vs BRISQUE vs oracle vs
// random. Writes quality.json and its curves; returns ModelEval::quality.
json pooled_quality(const std::string& name, const EvalData& data, const eval::Comparisons& cmp,
                    const std::vector<double>& norm, const EvalSettings& settings, const fs::path& eval_dir) {
  const std::vector<double> gt = pooled_images(data, &Stratum::gt);
  const std::vector<double> neg_brisque = eval::brisque_quality(pooled_images(data, &Stratum::brisque));
  std::vector<double> random(norm.size());
  std::mt19937_64 rng(settings.seed);
  for (double& x : random) x = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  const json q = eval::quality_report_json(name, "val_high + val_mixed + val_low", cmp,
                                           {{"norm", norm}, {"brisque", neg_brisque}, {"gt", gt}, {"random", random}},
                                           gt, torch::tensor(norm));
  eval::write_json(eval_dir / "quality.json", q);
  write_quality_curves(q, name, eval_dir);
  const std::map<std::string, const std::vector<double>*> per_image = {
      {"norm", &norm}, {"brisque", &neg_brisque}, {"gt", &gt}, {"random", &random}};
  json out;
  for (auto& [score, s] : q["scores"].items()) {
    // Supplementary operating point: the threshold fixed at FMR 1e-2, where
    // FNMR0 leaves room to fall (at 1e-3 a weak model's FNMR0 is near 1).
    const eval::EdcResult e2 = eval::edc(cmp, eval::pair_quality(cmp, *per_image.at(score)), 1e-2);
    out[score] = {{"pauc", s["edc"]["pauc"]}, {"pauc_minus_ideal", s["edc"]["pauc_minus_ideal"]},
                  {"fnmr0", s["edc"]["fnmr0"]}, {"spearman_gt", s["spearman_vs_gt"]},
                  {"erc_fnmr", s["erc"]["fnmr"]}, {"erc_reject", s["erc"]["reject_actual"]},
                  {"fmr_1e-2", {{"pauc", e2.pauc}, {"fnmr0", e2.fnmr0}}}};
  }
  return out;
}

// Clustering the pooled images by identity at the model's FMR 1e-3
// threshold, plain and quality-ordered (the norm); writes cluster.json.
void cluster_pooled(ModelEval& m, const EvalData& data, const torch::Tensor& emb, const eval::Comparisons& cmp,
                    const std::vector<double>& norm, const EvalSettings& settings, const fs::path& eval_dir) {
  std::vector<float> impostors;
  for (std::size_t p = 0; p < cmp.score.size(); ++p)
    if (!cmp.genuine[p]) impostors.push_back(cmp.score[p]);
  m.cluster_threshold = eval::threshold_at_fmr(impostors, 1e-3);
  std::vector<int64_t> labels;
  for (const Stratum& st : data.strata) labels.insert(labels.end(), st.identity.begin(), st.identity.end());
  eval::ClusterOptions co;
  co.k = settings.cluster_k;
  co.threshold = static_cast<float>(m.cluster_threshold);
  const eval::ClusterMetrics plain = eval::cluster_metrics(eval::cluster_knn(emb, co), labels);
  co.quality_ordered = true;
  co.core_fraction = settings.cluster_core;
  const eval::ClusterMetrics ordered = eval::cluster_metrics(eval::cluster_knn(emb, co, norm), labels);
  m.cluster = {{"plain", eval::to_json(plain)}, {"quality_ordered", eval::to_json(ordered)}};
  // The same at looser thresholds (FMR 1e-2, 1e-1): how the comparison depends on the operating point.
  for (double fmr : {1e-2, 1e-1}) {
    eval::ClusterOptions c2 = co;
    c2.threshold = static_cast<float>(eval::threshold_at_fmr(impostors, fmr));
    c2.quality_ordered = false;
    const eval::ClusterMetrics p2 = eval::cluster_metrics(eval::cluster_knn(emb, c2), labels);
    c2.quality_ordered = true;
    const eval::ClusterMetrics q2 = eval::cluster_metrics(eval::cluster_knn(emb, c2, norm), labels);
    m.cluster["sweep"].push_back({{"fmr", fmr}, {"threshold", c2.threshold}, {"plain_bcubed_f", p2.bcubed_f},
                                  {"quality_bcubed_f", q2.bcubed_f}, {"plain_clusters", p2.clusters},
                                  {"quality_clusters", q2.clusters}});
  }
  m.bcubed_p_plain = plain.bcubed_item_precision;
  m.bcubed_r_plain = plain.bcubed_item_recall;
  m.bcubed_p_quality = ordered.bcubed_item_precision;
  m.bcubed_r_quality = ordered.bcubed_item_recall;
  eval::write_json(eval_dir / "cluster.json",
                   {{"kind", "eval.cluster"},
                    {"name", m.name},
                    {"results", json::array({{{"method", "k-NN graph, connected components"},
                                              {"threshold", m.cluster_threshold},
                                              {"metrics", m.cluster["plain"]}},
                                             {{"method", fmt::format("quality-ordered (norm), core {:g}", settings.cluster_core)},
                                              {"threshold", m.cluster_threshold},
                                              {"metrics", m.cluster["quality_ordered"]}}})}});
}

ModelEval evaluate_verification(const fs::path& model_path, const std::string& name, const EvalData& data,
                                const EvalSettings& settings, const fs::path& eval_dir) {
  const fs::path cache = eval_dir / "model_eval.json";
  const std::string fp = fingerprint(json{{"model", file_fingerprint(model_path)},
                                          {"settings", settings.to_json()},
                                          {"data", file_fingerprint(data.dir / "manifest.json")},
                                          {"version", 2}});
  // (Evaluated again when the calibrations beside the model are missing: runs from before they were written.)
  if (has_fingerprint(cache, fp) && fs::exists(deploy::verify_calibration_path(model_path)) &&
      fs::exists(deploy::quality_calibration_path(model_path))) {
    spdlog::info("demo: {} already evaluated ({})", name, cache.string());
    return ModelEval::from_json(json::parse(read_file(cache)).at("eval"));
  }
  ensure_dir(eval_dir);
  infer::InferenceOptions io;
  auto net = load_for_eval(model_path, settings, io);
  const torch::Tensor templates = reference_templates(*net, data, settings, io);

  ModelEval m;
  m.name = name;
  PooledStrata pooled;
  for (const Stratum& st : data.strata)
    m.strata.push_back(evaluate_stratum(*net, name, st, data, settings, io, templates, pooled));
  eval::write_json(eval_dir / "verify.json", eval::verify_report_json(name, pooled.sets));
  const std::vector<double> norm = pooled_images(m, &StratumResult::norm);
  write_calibrations(model_path, name, data, settings, pooled, norm);

  const torch::Tensor emb = torch::cat(pooled.embeddings);
  const eval::Comparisons cmp = eval::pair_comparisons(emb, pooled.issame);
  m.quality = pooled_quality(name, data, cmp, norm, settings, eval_dir);
  cluster_pooled(m, data, emb, cmp, norm, settings, eval_dir);
  write_file_atomic(cache, json{{"fingerprint", fp}, {"eval", m.to_json()}}.dump() + "\n");
  return m;
}

}  // namespace

ModelEval evaluate_model(const fs::path& model_path, const std::string& name, const EvalData& data,
                         const EvalSettings& settings, const fs::path& eval_dir, const torch::Tensor& centres) {
  ModelEval m = evaluate_verification(model_path, name, data, settings, eval_dir);
  if (data.ijbs) m.ijbs = evaluate_surveillance(model_path, name, *data.ijbs, settings, eval_dir);
  m.protocols = evaluate_protocols(model_path, name, data.protocols, data.dir, settings, centres, eval_dir);
  return m;
}

}  // namespace qface::study
