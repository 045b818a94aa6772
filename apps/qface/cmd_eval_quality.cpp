// qface eval quality: face-quality assessment of scores (norm, ground truth,
// BRISQUE, any .npy) by EDC / ERC on .bin pairs or all pairs (eval/quality.h);
// optionally the norm -> [0,1] calibration for the deployment commands.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/npy.h"
#include "qface/data/bin_set.h"
#include "qface/deploy/calibration.h"
#include "qface/eval/features.h"
#include "qface/eval/quality.h"
#include "qface/eval/verify.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct QualityArgs {
  std::string features, bin, manifest, gt, images_root, out, name, calibration_out;
  std::vector<std::string> scores{"norm"};
  bool all_pairs = false;
  int64_t max_images = 4000;
  double fmr = 1e-3, limit = 0.2;
  int scatter = 2000;
};

std::vector<double> read_per_image(const std::string& file, int64_t n) {
  torch::Tensor t = read_npy(file).to(torch::kFloat64).reshape({-1}).contiguous();
  require(t.numel() == n, "{}: {} values for {} images", file, t.numel(), n);
  return {t.data_ptr<double>(), t.data_ptr<double>() + n};
}

std::vector<double> to_vector(const torch::Tensor& norms) {
  torch::Tensor t = norms.to(torch::kFloat64).contiguous();
  return {t.data_ptr<double>(), t.data_ptr<double>() + t.numel()};
}

// The per-image quality scores named by --score (higher = better).
std::vector<std::pair<std::string, std::vector<double>>> quality_scores(const QualityArgs& a, const eval::Features& f,
                                                                        const data::BinSet& bin,
                                                                        const std::vector<double>& gt) {
  const int64_t n = f.size();
  std::vector<std::pair<std::string, std::vector<double>>> scores;
  for (const std::string& s : a.scores) {
    if (s == "norm") {
      scores.push_back({"norm", to_vector(f.norms)});
    } else if (s == "gt") {
      require(!gt.empty(), "eval quality: score 'gt' needs --manifest or --gt");
      scores.push_back({"gt", gt});
    } else if (s == "brisque") {
      std::vector<double> b;
      if (!a.bin.empty()) {
        b = eval::brisque_of_encoded(bin.images, a.bin);
      } else {
        std::vector<fs::path> paths;
        for (const auto& p : f.files) paths.push_back(a.images_root.empty() ? fs::path(p) : fs::path(a.images_root) / p);
        b = eval::brisque_of_files(paths);
      }
      scores.push_back({"brisque", eval::brisque_quality(std::move(b))});
    } else if (auto eq = s.find('='); eq != std::string::npos) {
      scores.push_back({s.substr(0, eq), read_per_image(s.substr(eq + 1), n)});
    } else {
      fail("eval quality: unknown score '{}' (norm, gt, brisque or NAME=FILE.npy)", s);
    }
  }
  return scores;
}

int run_quality(const QualityArgs& a) {
  eval::Features f = eval::load_features(a.features);
  // The deployment commands score quality by the plain image's norm.
  require(a.calibration_out.empty() || f.mode == "plain",
          "{}: flip-fused features (features.json); calibrate quality on plain ones (qface embed --no-flip-fuse), "
          "whose norms are what verify / quality / search / serve score", a.features);
  const int64_t n = f.size();
  eval::Comparisons cmp;
  data::BinSet bin;
  std::string source;
  if (!a.bin.empty()) {
    require(!a.all_pairs, "eval quality: --bin and --all-pairs exclude each other");
    bin = data::read_bin_set(a.bin);
    require(static_cast<std::size_t>(n) == bin.images.size(), "{}: {} feature rows but {} has {} images", a.features, n,
            a.bin, bin.images.size());
    cmp = eval::pair_comparisons(f.embeddings, bin.issame);
    source = fs::path(a.bin).filename().string();
  } else {
    require(a.all_pairs, "eval quality: give --bin FILE (pairs 2i, 2i+1) or --all-pairs (labels from file names)");
    require(n <= a.max_images, "eval quality: {} images, more than --max-images {} for all pairs", n, a.max_images);
    std::vector<std::string> labels;
    for (const auto& s : f.files) labels.push_back(eval::label_from_name(s));
    cmp = eval::all_pair_comparisons(f.embeddings, labels);
    source = "all pairs of " + a.features;
  }
  std::vector<double> gt;
  if (!a.gt.empty()) gt = read_per_image(a.gt, n);
  else if (!a.manifest.empty()) gt = eval::ground_truth_quality(a.manifest, a.bin, f.files, n);
  eval::QualityReportOptions ro;
  ro.fmr = a.fmr;
  ro.limit = a.limit;
  ro.scatter = a.scatter;
  json j = eval::quality_report_json(a.name.empty() ? eval::features_name(a.features) : a.name, source, cmp,
                                     quality_scores(a, f, bin, gt), gt, f.norms, ro);
  eval::write_json(a.out, j);
  if (!a.calibration_out.empty())
    eval::write_json(a.calibration_out, deploy::quality_calibration_json(to_vector(f.norms), a.features));
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<QualityArgs>();
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
  return [a] { return run_quality(*a); };
}

const Registrar registrar{{"quality", "Quality assessment: EDC (pAUC) and ERC for norm, ground truth, BRISQUE, ...", setup, "eval"}};

}  // namespace
}  // namespace qface::cli
