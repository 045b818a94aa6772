// qface eval <verify|ijb|rank|quality|cluster>: the evaluation protocols of
// SPEC §5 on precomputed features (`qface embed` output folders). Each verb
// writes one JSON (kind "eval.<verb>") that `qface report` reads.
// `qface eval ijbs` lives in cmd_eval_ijbs.cpp (registered under "eval").
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>
#include <numeric>
#include <random>
#include <unordered_map>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/npy.h"
#include "qface/eval/cluster.h"
#include "qface/eval/features.h"
#include "qface/eval/ijb.h"
#include "qface/eval/quality.h"
#include "qface/eval/rank.h"
#include "qface/eval/verify.h"
#include "qface/backbones/backbone.h"
#include "qface/deploy/calibration.h"
#include "qface/infer/embed.h"
#include "qface/io/checkpoint.h"
#include <opencv2/imgcodecs.hpp>

namespace qface::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string default_name(const std::string& features_dir) {
  fs::path p = fs::path(features_dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

// ---------------------------------------------------------------- verify
struct VerifyArgs {
  std::vector<std::string> bins, features, features_flip;
  std::string out, name, arch, weights, calibration_out;
  bool random_weights = false;
  int batch = 32;
  int folds = 10;
};

// Embeds every image of a .bin and its horizontal flip with the model (issue 4's API).
void embed_bin(const VerifyArgs& a, const std::string& bin_path, const eval::BinPairs& bin, eval::Features& plain,
               eval::Features& flipped) {
  auto model = backbones::make_backbone(a.arch);
  if (a.weights.empty()) {
    require(a.random_weights, "eval verify: --arch needs --weights (or --random-weights for pipeline tests)");
    spdlog::warn("eval verify: --random-weights: the numbers mean nothing (pipeline check only)");
  } else {
    io::load_weights(*model, a.weights);
  }
  infer::InferenceOptions io;
  infer::prepare_for_inference(*model, io);
  infer::PlainAndFlipped r = infer::embed_encoded(*model, bin.images_bytes, bin_path, a.batch, io);
  plain = eval::make_features(r.plain.embeddings, r.plain.norms, {});
  flipped = eval::make_features(r.flipped.embeddings, r.flipped.norms, {});
}

// Impostor cosine scores of the last feature mode of every set, for `qface verify`'s thresholds.
struct CalibrationPool {
  std::vector<float> impostors;
  int64_t genuine = 0;
  std::string mode;
  void add(const torch::Tensor& embeddings, std::span<const uint8_t> issame, const std::string& m) {
    eval::Comparisons c = eval::pair_comparisons(embeddings, issame);
    for (size_t i = 0; i < c.score.size(); ++i) {
      if (c.genuine[i]) ++genuine;
      else impostors.push_back(c.score[i]);
    }
    mode = m;
  }
  void write(const VerifyArgs& a) const {
    if (a.calibration_out.empty()) return;
    std::string src;
    for (const auto& b : a.bins) src += (src.empty() ? "" : ", ") + fs::path(b).filename().string();
    eval::write_json(a.calibration_out, deploy::verify_calibration_json(impostors, genuine, mode, src));
  }
};

int run_verify(const VerifyArgs& a) {
  CalibrationPool pool;
  if (!a.arch.empty()) {
    require(a.features.empty(), "eval verify: give --arch/--weights or --features, not both");
    eval::VerifyOptions opt;
    opt.folds = a.folds;
    std::vector<eval::VerifySet> sets;
    for (const auto& bin_path : a.bins) {
      eval::BinPairs pairs = eval::read_bin_pairs(bin_path, true);
      eval::Features f, ff;
      embed_bin(a, bin_path, pairs, f, ff);
      auto [fused, norms] = qface::fuse_flip(f.embeddings, f.norms, ff.embeddings, ff.norms);
      eval::VerifySet set;
      set.set = fs::path(bin_path).stem().string();
      set.modes.push_back({"plain", eval::verify_embeddings(f.embeddings, pairs.issame, opt)});
      set.modes.push_back({"flip_fused", eval::verify_embeddings(fused, pairs.issame, opt)});
      pool.add(fused, pairs.issame, "flip_fused");
      for (const auto& [mode, r] : set.modes)
        spdlog::info("verify {} [{}]: accuracy {:.2f} ± {:.2f} %", set.set, mode, 100 * r.accuracy_mean, 100 * r.accuracy_std);
      sets.push_back(std::move(set));
    }
    eval::write_json(a.out, eval::verify_report_json(a.name.empty() ? a.arch : a.name, sets));
    pool.write(a);
    return 0;
  }
  require(!a.features.empty(), "eval verify: give --features DIR (one features folder per --bin, in order)");
  require(a.features.size() == a.bins.size(), "eval verify: {} --bin files but {} --features folders", a.bins.size(),
          a.features.size());
  require(a.features_flip.empty() || a.features_flip.size() == a.bins.size(),
          "eval verify: {} --bin files but {} --features-flip folders", a.bins.size(), a.features_flip.size());
  eval::VerifyOptions opt;
  opt.folds = a.folds;
  std::vector<eval::VerifySet> sets;
  for (size_t i = 0; i < a.bins.size(); ++i) {
    eval::BinPairs pairs = eval::read_bin_pairs(a.bins[i]);
    eval::Features f = eval::load_features(a.features[i]);
    require(f.size() == pairs.images, "{}: {} feature rows but {} has {} images (pairs are rows 2i, 2i+1)",
            a.features[i], f.size(), a.bins[i], pairs.images);
    eval::VerifySet set;
    set.set = fs::path(a.bins[i]).stem().string();
    set.modes.push_back({"plain", eval::verify_embeddings(f.embeddings, pairs.issame, opt)});
    if (a.features_flip.empty()) pool.add(f.embeddings, pairs.issame, "plain");
    if (!a.features_flip.empty()) {
      eval::Features ff = eval::load_features(a.features_flip[i]);
      require(ff.size() == f.size(), "{}: {} flipped rows but {} has {}", a.features_flip[i], ff.size(),
              a.features[i], f.size());
      auto [fused, norms] = qface::fuse_flip(f.embeddings, f.norms, ff.embeddings, ff.norms);
      set.modes.push_back({"flip_fused", eval::verify_embeddings(fused, pairs.issame, opt)});
      pool.add(fused, pairs.issame, "flip_fused");
    }
    for (const auto& [mode, r] : set.modes)
      spdlog::info("verify {} [{}]: accuracy {:.2f} ± {:.2f} %, threshold {:.2f}, TAR@FAR=1e-3 {}, TAR@FAR=1e-2 {}",
                   set.set, mode, 100 * r.accuracy_mean, 100 * r.accuracy_std, r.best_threshold_mean,
                   r.tar_text(1e-3), r.tar_text(1e-2));
    sets.push_back(std::move(set));
  }
  eval::write_json(a.out, eval::verify_report_json(a.name.empty() ? default_name(a.features[0]) : a.name, sets));
  pool.write(a);
  return 0;
}

CLI::App* setup_verify(CLI::App& app, std::shared_ptr<VerifyArgs> a) {
  app.add_option("--bin", a->bins, "verification .bin sets (pickled (bins, issame))")->required()->check(CLI::ExistingFile);
  app.add_option("--features", a->features, "features folder per .bin (rows in .bin image order)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--features-flip", a->features_flip,
                 "features of the horizontally flipped images, per .bin: adds AdaFace's norm-weighted flip fusion")
      ->check(CLI::ExistingDirectory);
  app.add_option("--arch", a->arch, "embed the .bin images with this backbone (plain and flip-fused)");
  app.add_option("--weights", a->weights, "checkpoint for --arch (AdaFace .ckpt, MagFace .pth, qface)")->check(CLI::ExistingFile);
  app.add_flag("--random-weights", a->random_weights, "--arch without a checkpoint (pipeline tests only)");
  app.add_option("--batch", a->batch, "batch size with --arch")->capture_default_str();
  app.add_option("--folds", a->folds, "folds of the protocol")->capture_default_str();
  app.add_option("--name", a->name, "model / run name in the report (default: the features folder name)");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  app.add_option("--calibration-out", a->calibration_out,
                 "also write cosine thresholds per FAR from the impostor pairs (flip-fused when available) for "
                 "`qface verify --calibration`");
  return &app;
}

// ---------------------------------------------------------------- ijb
struct IjbArgs {
  std::string meta, features, out, name;
  bool norm_score = false, detector_score = false, no_11 = false, no_1n = false;
};

int run_ijb(const IjbArgs& a) {
  eval::IjbMeta meta = eval::load_ijb_meta(a.meta);
  eval::Features f = eval::load_features(a.features);
  eval::IjbOptions opt;
  opt.templates.norm_weighted = a.norm_score;
  opt.templates.detector_weighted = a.detector_score;
  opt.verification = !a.no_11;
  opt.identification = !a.no_1n;
  eval::IjbResult r = eval::evaluate_ijb(meta, f.embeddings, f.norms, f.files, opt);
  json j = eval::to_json(r);
  j["kind"] = "eval.ijb";
  j["name"] = a.name.empty() ? default_name(a.features) : a.name;
  j["meta"] = meta.prefix;
  j["options"] = {{"norm_score", a.norm_score}, {"detector_score", a.detector_score}};
  if (r.verification)
    for (const auto& t : r.verification->tar_at_far)
      spdlog::info("ijb 1:1 TAR@FAR={:.0e}: {:.4f}", t.far, t.tar);
  for (const auto& g : r.identification)
    spdlog::info("ijb 1:N {}: top-1 {:.4f}, TPIR@FPIR=0.01 {:.4f}", g.gallery, g.cmc.at(0).second,
                 g.tpir_at_fpir.empty() ? 0.0 : g.tpir_at_fpir[0].tpir);
  eval::write_json(a.out, j);
  return 0;
}

CLI::App* setup_ijb(CLI::App& app, std::shared_ptr<IjbArgs> a) {
  app.add_option("--meta", a->meta, "IJB meta folder (*_face_tid_mid.txt, *_template_pair_label.txt, 1:N csv)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--features", a->features, "features folder of the IJB images")->required()->check(CLI::ExistingDirectory);
  app.add_flag("--norm-score", a->norm_score, "weight image features by their raw norm (keep the norm)");
  app.add_flag("--detector-score", a->detector_score, "weight image features by the detector score (*_name_5pts_score.txt)");
  app.add_flag("--no-1to1", a->no_11, "skip the 1:1 protocol");
  app.add_flag("--no-1toN", a->no_1n, "skip the 1:N protocol");
  app.add_option("--name", a->name, "model / run name in the report");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  return &app;
}

// ---------------------------------------------------------------- rank
struct RankArgs {
  std::string features, probe, gallery, distractors, out, name;
  std::vector<int> ks{1, 5, 20};
};

int run_rank(const RankArgs& a) {
  torch::Tensor probe, gallery, distractors;
  std::vector<std::string> pl, gl;
  if (!a.features.empty()) {
    require(a.probe.empty() && a.gallery.empty(), "eval rank: give --features, or --probe and --gallery, not both");
    eval::Features f = eval::load_features(a.features);
    std::vector<int64_t> pi, gi, di;
    for (int64_t i = 0; i < f.size(); ++i) {
      const std::string split = fs::path(f.files[i]).parent_path().filename().string();
      if (split == "probe") pi.push_back(i);
      else if (split == "gallery") gi.push_back(i);
      else if (split == "distractor" || split == "distractors") di.push_back(i);
      else fail("{}/files.txt:{}: '{}' is not under probe/, gallery/ or distractor/", a.features, i + 1, f.files[i]);
    }
    auto take = [&](const std::vector<int64_t>& idx) {
      return f.embeddings.index_select(0, torch::tensor(idx, torch::kInt64));
    };
    require(!pi.empty() && !gi.empty(), "{}: no probe/ or no gallery/ images in files.txt", a.features);
    probe = take(pi);
    gallery = take(gi);
    if (!di.empty()) distractors = take(di);
    for (auto i : pi) pl.push_back(eval::label_from_name(f.files[i]));
    for (auto i : gi) gl.push_back(eval::label_from_name(f.files[i]));
  } else {
    require(!a.probe.empty() && !a.gallery.empty(), "eval rank: give --probe DIR and --gallery DIR (or --features DIR)");
    eval::Features p = eval::load_features(a.probe), g = eval::load_features(a.gallery);
    probe = p.embeddings;
    gallery = g.embeddings;
    for (const auto& s : p.files) pl.push_back(eval::label_from_name(s));
    for (const auto& s : g.files) gl.push_back(eval::label_from_name(s));
    if (!a.distractors.empty()) distractors = eval::load_features(a.distractors).embeddings;
  }
  eval::RankResult r = eval::rank_identification(probe, pl, gallery, gl, distractors, a.ks);
  for (auto [k, v] : r.rank_accuracy) spdlog::info("rank-{}: {:.4f}", k, v);
  json j{{"kind", "eval.rank"},
         {"name", a.name.empty() ? default_name(a.features.empty() ? a.probe : a.features) : a.name},
         {"result", eval::to_json(r)}};
  eval::write_json(a.out, j);
  return 0;
}

CLI::App* setup_rank(CLI::App& app, std::shared_ptr<RankArgs> a) {
  app.add_option("--features", a->features, "one features folder whose files are under probe/, gallery/, distractor/")
      ->check(CLI::ExistingDirectory);
  app.add_option("--probe", a->probe, "features folder of the probes")->check(CLI::ExistingDirectory);
  app.add_option("--gallery", a->gallery, "features folder of the gallery")->check(CLI::ExistingDirectory);
  app.add_option("--distractors", a->distractors, "features folder of the distractors")->check(CLI::ExistingDirectory);
  app.add_option("--ranks", a->ks, "ranks k to report")->capture_default_str()->delimiter(',');
  app.add_option("--name", a->name, "model / run name in the report");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  return &app;
}

// ---------------------------------------------------------------- quality
struct QualityArgs {
  std::string features, bin, manifest, gt, images_root, out, name, calibration_out;
  std::vector<std::string> scores{"norm"};
  bool all_pairs = false;
  int64_t max_images = 4000;
  double fmr = 1e-3, limit = 0.2;
  int scatter = 2000;
};

int run_quality(const QualityArgs& a) {
  eval::Features f = eval::load_features(a.features);
  const int64_t n = f.size();
  eval::Comparisons cmp;
  eval::BinPairs bin;
  std::string source;
  const bool need_images = std::find(a.scores.begin(), a.scores.end(), "brisque") != a.scores.end();
  if (!a.bin.empty()) {
    require(!a.all_pairs, "eval quality: --bin and --all-pairs exclude each other");
    bin = eval::read_bin_pairs(a.bin, need_images);
    require(bin.images == n, "{}: {} feature rows but {} has {} images", a.features, n, a.bin, bin.images);
    cmp = eval::pair_comparisons(f.embeddings, bin.issame);
    source = fs::path(a.bin).filename().string();
  } else {
    require(a.all_pairs, "eval quality: give --bin FILE (pairs 2i, 2i+1) or --all-pairs (labels from file names)");
    require(n <= a.max_images, "eval quality: {} images, more than --max-images {} for all pairs", n, a.max_images);
    std::vector<std::string> labels;
    for (const auto& s : f.files) labels.push_back(eval::label_from_name(s));
    torch::Tensor S = torch::mm(f.embeddings, f.embeddings.t()).contiguous();
    const float* sp = S.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j) {
        cmp.score.push_back(sp[i * n + j]);
        cmp.genuine.push_back(labels[i] == labels[j]);
        cmp.a.push_back(i);
        cmp.b.push_back(j);
      }
    source = "all pairs of " + a.features;
  }
  // Per-image quality scores.
  std::vector<double> gt;
  if (!a.gt.empty()) {
    torch::Tensor t = read_npy(a.gt).to(torch::kFloat64).reshape({-1}).contiguous();
    require(t.numel() == n, "{}: {} values for {} images", a.gt, t.numel(), n);
    gt.assign(t.data_ptr<double>(), t.data_ptr<double>() + n);
  } else if (!a.manifest.empty()) {
    gt = eval::ground_truth_quality(a.manifest, a.bin, f.files, n);
  }
  std::vector<std::pair<std::string, std::vector<double>>> scores;
  for (const std::string& s : a.scores) {
    if (s == "norm") {
      torch::Tensor t = f.norms.to(torch::kFloat64).contiguous();
      scores.push_back({"norm", {t.data_ptr<double>(), t.data_ptr<double>() + n}});
    } else if (s == "gt") {
      require(!gt.empty(), "eval quality: score 'gt' needs --manifest or --gt");
      scores.push_back({"gt", gt});
    } else if (s == "brisque") {
      std::vector<double> b;
      if (!a.bin.empty()) {
        b = eval::brisque_of_encoded(bin.images_bytes, a.bin);
      } else {
        std::vector<fs::path> paths;
        for (const auto& p : f.files) paths.push_back(a.images_root.empty() ? fs::path(p) : fs::path(a.images_root) / p);
        b = eval::brisque_of_files(paths);
      }
      for (double& v : b) v = -v;  // BRISQUE: lower is better; quality = -BRISQUE
      scores.push_back({"brisque", b});
    } else if (auto eq = s.find('='); eq != std::string::npos) {
      const std::string file = s.substr(eq + 1);
      torch::Tensor t = read_npy(file).to(torch::kFloat64).reshape({-1}).contiguous();
      require(t.numel() == n, "{}: {} values for {} images", file, t.numel(), n);
      scores.push_back({s.substr(0, eq), {t.data_ptr<double>(), t.data_ptr<double>() + n}});
    } else {
      fail("eval quality: unknown score '{}' (norm, gt, brisque or NAME=FILE.npy)", s);
    }
  }
  eval::QualityReportOptions ro;
  ro.fmr = a.fmr;
  ro.limit = a.limit;
  ro.scatter = a.scatter;
  json j = eval::quality_report_json(a.name.empty() ? default_name(a.features) : a.name, source, cmp, scores, gt,
                                     f.norms, ro);
  eval::write_json(a.out, j);
  if (!a.calibration_out.empty()) {
    torch::Tensor t = f.norms.to(torch::kFloat64).contiguous();
    eval::write_json(a.calibration_out, deploy::quality_calibration_json({t.data_ptr<double>(), t.data_ptr<double>() + n},
                                                                         a.features));
  }
  return 0;
}

CLI::App* setup_quality(CLI::App& app, std::shared_ptr<QualityArgs> a) {
  app.add_option("--features", a->features, "features folder")->required()->check(CLI::ExistingDirectory);
  app.add_option("--bin", a->bin, "verification .bin whose pairs (2i, 2i+1) are the comparisons")->check(CLI::ExistingFile);
  app.add_flag("--all-pairs", a->all_pairs, "compare all pairs of images, labels = file-name prefix before '_'");
  app.add_option("--max-images", a->max_images, "limit for --all-pairs")->capture_default_str();
  app.add_option("--score", a->scores, "quality scores: norm, gt, brisque, NAME=FILE.npy (one per image)")
      ->capture_default_str()
      ->delimiter(',');
  app.add_option("--manifest", a->manifest, "qface synth manifest.json (ground-truth quality)")->check(CLI::ExistingFile);
  app.add_option("--gt", a->gt, "ground-truth quality .npy, one value per image")->check(CLI::ExistingFile);
  app.add_option("--images-root", a->images_root, "folder the files.txt paths are relative to (BRISQUE)");
  app.add_option("--fmr", a->fmr, "false-match rate of the decision threshold")->capture_default_str();
  app.add_option("--pauc-limit", a->limit, "upper discard fraction of the EDC pAUC")->capture_default_str();
  app.add_option("--scatter", a->scatter, "points of the norm-vs-ground-truth scatter kept for the report")
      ->capture_default_str();
  app.add_option("--calibration-out", a->calibration_out,
                 "also write the norm -> [0,1] quality mapping (empirical CDF) for `qface quality/search/serve`");
  app.add_option("--name", a->name, "model / run name in the report");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  return &app;
}

// ---------------------------------------------------------------- cluster
struct ClusterArgs {
  std::string features, labels, out, name;
  int k = 20;
  std::vector<float> thresholds{0.5f};
  bool quality_ordered = false;
};

int run_cluster(const ClusterArgs& a) {
  eval::Features f = eval::load_features(a.features);
  std::vector<int64_t> truth;
  if (!a.labels.empty()) {
    torch::Tensor t = read_npy(a.labels);
    require(t.dim() == 1 && t.numel() == f.size(), "{}: expected {} labels, got shape of {} values", a.labels, f.size(),
            t.numel());
    t = t.to(torch::kInt64).contiguous();
    truth.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + f.size());
  } else {
    std::unordered_map<std::string, int64_t> ids;
    for (const auto& s : f.files)
      truth.push_back(ids.emplace(eval::label_from_name(s), static_cast<int64_t>(ids.size())).first->second);
  }
  torch::Tensor nq = f.norms.to(torch::kFloat64).contiguous();
  std::vector<double> quality(nq.data_ptr<double>(), nq.data_ptr<double>() + f.size());
  json results = json::array();
  for (float thr : a.thresholds) {
    for (bool qo : {false, true}) {
      if (qo && !a.quality_ordered) continue;
      eval::ClusterOptions o;
      o.k = a.k;
      o.threshold = thr;
      o.quality_ordered = qo;
      std::vector<int64_t> pred = eval::cluster_knn(f.embeddings, o, quality);
      eval::ClusterMetrics m = eval::cluster_metrics(pred, truth);
      spdlog::info("cluster {} threshold {:.2f}: {} clusters for {} labels, pairwise F {:.4f}, BCubed F {:.4f}, NMI {:.4f}",
                   qo ? "quality-ordered" : "components", thr, m.clusters, m.classes, m.pairwise_f, m.bcubed_f, m.nmi);
      results.push_back({{"method", qo ? "quality_ordered" : "connected_components"},
                         {"k", a.k},
                         {"threshold", thr},
                         {"metrics", eval::to_json(m)}});
    }
  }
  eval::write_json(a.out, {{"kind", "eval.cluster"},
                           {"name", a.name.empty() ? default_name(a.features) : a.name},
                           {"results", results}});
  return 0;
}

CLI::App* setup_cluster(CLI::App& app, std::shared_ptr<ClusterArgs> a) {
  app.add_option("--features", a->features, "features folder")->required()->check(CLI::ExistingDirectory);
  app.add_option("--labels", a->labels, "int64 .npy of true labels (default: file-name prefix before '_')")
      ->check(CLI::ExistingFile);
  app.add_option("--k", a->k, "neighbours of the k-NN graph (faiss)")->capture_default_str();
  app.add_option("--threshold", a->thresholds, "cosine threshold(s) of an edge")->capture_default_str()->delimiter(',');
  app.add_flag("--quality-ordered", a->quality_ordered,
               "also run the quality-ordered variant (feature norm as quality; low quality never bridges clusters)");
  app.add_option("--name", a->name, "model / run name in the report");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  return &app;
}

template <class Args>
std::function<Runner(CLI::App&)> verb(CLI::App* (*setup)(CLI::App&, std::shared_ptr<Args>), int (*run)(const Args&)) {
  return [setup, run](CLI::App& app) -> Runner {
    auto a = std::make_shared<Args>();
    setup(app, a);
    return [a, run] { return run(*a); };
  };
}

const Registrar r_eval{{"eval", "Evaluation protocols on features: verify, ijb, ijbs, rank, quality, cluster",
                        [](CLI::App& app) -> Runner {
                          app.require_subcommand(1);
                          return nullptr;
                        }}};
const Registrar r_verify{{"verify", "10-fold 1:1 verification on .bin sets (accuracy, threshold, TAR@FAR=1e-3)",
                          verb(&setup_verify, &run_verify), "eval"}};
const Registrar r_ijb{{"ijb", "IJB-B/C 1:1 (TAR@FAR) and 1:N (CMC, TPIR@FPIR) on template features",
                       verb(&setup_ijb, &run_ijb), "eval"}};
const Registrar r_rank{{"rank", "TinyFace-style rank-1/5/20 identification with distractors",
                        verb(&setup_rank, &run_rank), "eval"}};
const Registrar r_quality{{"quality", "Quality assessment: EDC (pAUC) and ERC for norm, ground truth, BRISQUE, ...",
                           verb(&setup_quality, &run_quality), "eval"}};
const Registrar r_cluster{{"cluster", "k-NN graph clustering (faiss) with pairwise/BCubed F and NMI",
                           verb(&setup_cluster, &run_cluster), "eval"}};

}  // namespace
}  // namespace qface::cli
