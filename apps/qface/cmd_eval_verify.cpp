// qface eval verify: the 10-fold 1:1 protocol (docs/method.md) on .bin sets, from
// features folders or by embedding the images with a model (plain and
// flip-fused); optionally the cosine thresholds per FAR for `qface verify`.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "apps/qface/arch_option.h"
#include "apps/qface/command.h"
#include "apps/qface/precision_option.h"
#include "apps/qface/flip_option.h"
#include "qface/core/error.h"
#include "qface/backbones/backbone.h"
#include "qface/data/bin_set.h"
#include "qface/deploy/calibration.h"
#include "qface/eval/features.h"
#include "qface/eval/quality.h"
#include "qface/eval/verify.h"
#include "qface/infer/precision.h"
#include "qface/infer/verify_bin.h"
#include "qface/io/checkpoint.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct VerifyArgs {
  std::vector<std::string> bins, features, features_flip;
  std::string out, name, arch, weights, calibration_out, precision = "fp32";
  bool random_weights = false, flip_fuse = true;
  int batch = 32;
  int folds = 10;
  int threads = 0;
};

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
  const bool with_model = !a.weights.empty() || a.random_weights;
  if (with_model) {
    require(a.features.empty() && a.features_flip.empty(), "eval verify: give --weights or --features, not both");
  } else {
    require(!a.features.empty(), "eval verify: give --features DIR (one features folder per --bin, in order) or --weights");
    require(a.features.size() == a.bins.size(), "eval verify: {} --bin files but {} --features folders", a.bins.size(),
            a.features.size());
    require(a.features_flip.empty() || a.features_flip.size() == a.bins.size(),
            "eval verify: {} --bin files but {} --features-flip folders", a.bins.size(), a.features_flip.size());
  }
  // The model of --arch / --weights, loaded once for every set.
  infer::LoadedModel m;
  if (with_model)
    m = infer::load_for_inference({a.arch, a.weights, a.random_weights, infer::parse_precision(a.precision), a.threads,
                                   "eval verify"});
  eval::VerifyOptions opt;
  opt.folds = a.folds;
  CalibrationPool pool;
  std::vector<eval::VerifySet> sets;
  for (size_t i = 0; i < a.bins.size(); ++i) {
    data::BinSet bin = data::read_bin_set(a.bins[i]);
    const std::string name = fs::path(a.bins[i]).stem().string();
    eval::VerifySet set;
    torch::Tensor plain, fused;
    if (with_model) {
      infer::BinVerification v = infer::verify_encoded(*m.model, name, bin.images, bin.issame, a.bins[i], a.batch,
                                                       m.options, opt, a.flip_fuse);
      set = std::move(v.result);
      plain = v.features.plain.embeddings;
      fused = v.fused;
    } else {
      const eval::Features f = eval::load_features(a.features[i]);
      require(static_cast<std::size_t>(f.size()) == bin.images.size(),
              "{}: {} feature rows but {} has {} images (pairs are rows 2i, 2i+1)", a.features[i], f.size(), a.bins[i],
              bin.images.size());
      eval::ModeInput in{.plain = f.embeddings, .plain_norms = f.norms, .mode = f.mode};
      if (!a.features_flip.empty()) {
        require(f.mode == "plain", "{}: features already flip-fused (features.json); --features-flip needs plain ones "
                "(qface embed --no-flip-fuse)", a.features[i]);
        const eval::Features ff = eval::load_features(a.features_flip[i]);
        require(ff.size() == f.size(), "{}: {} flipped rows but {} has {}", a.features_flip[i], ff.size(),
                a.features[i], f.size());
        in.flipped = ff.embeddings;
        in.flipped_norms = ff.norms;
      }
      set = eval::verify_modes(name, in, bin.issame, opt, &fused);
      plain = f.embeddings;
    }
    // The thresholds for `qface verify`: flip-fused when there is that mode.
    if (fused.defined()) pool.add(fused, bin.issame, "flip_fused");
    else pool.add(plain, bin.issame, set.modes[0].first);
    for (const auto& [mode, r] : set.modes)
      spdlog::info("verify {} [{}]: accuracy {:.2f} ± {:.2f} %, threshold cosine {:.3f} (squared L2 {:.2f}), "
                   "TAR@FAR=1e-3 {}, TAR@FAR=1e-2 {}",
                   set.set, mode, 100 * r.accuracy_mean, 100 * r.accuracy_std, 1.0 - r.best_threshold_mean / 2.0,
                   r.best_threshold_mean,
                   r.tar_text(1e-3), r.tar_text(1e-2));
    sets.push_back(std::move(set));
  }
  const std::string run_name = !a.name.empty() ? a.name : with_model ? m.model->arch() : eval::features_name(a.features[0]);
  eval::write_json(a.out, eval::verify_report_json(run_name, sets));
  pool.write(a);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<VerifyArgs>();
  app.add_option("--bin", a->bins, "verification .bin sets (pickled (bins, issame))")->required()->check(CLI::ExistingFile);
  app.add_option("--features", a->features, "features folder per .bin (rows in .bin image order)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--features-flip", a->features_flip,
                 "features of the horizontally flipped images, per .bin: adds AdaFace's norm-weighted flip fusion")
      ->check(CLI::ExistingDirectory);
  add_arch_option(app, a->arch, "backbone of --weights");
  app.add_option("--weights", a->weights, "embed the .bin images with this checkpoint (plain and flip-fused; AdaFace "
                 ".ckpt, MagFace .pth, qface)")->check(CLI::ExistingFile);
  app.add_flag("--random-weights", a->random_weights, "random weights of --arch (pipeline tests only)");
  app.add_option("--threads", a->threads, "CPU threads of the embedding (0: every logical core, or OMP_NUM_THREADS)")
      ->capture_default_str();
  add_flip_fuse_option(app, a->flip_fuse,
                       "with --arch: also the flip-fused mode (docs/method.md) beside the plain one");
  app.add_option("--batch", a->batch, "batch size with --arch")->capture_default_str();
  add_precision_option(app, a->precision);
  app.add_option("--folds", a->folds, "folds of the protocol")->capture_default_str();
  app.add_option("--name", a->name, "model / run name in the report (default: the features folder name)");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  app.add_option("--calibration-out", a->calibration_out,
                 "also write cosine thresholds per FAR from the impostor pairs (flip-fused when available) for "
                 "`qface verify --calibration`");
  return [a] { return run_verify(*a); };
}

const Registrar registrar{{"verify", "10-fold 1:1 verification on .bin sets (accuracy, threshold, TAR@FAR=1e-3)", setup, "eval"}};

}  // namespace
}  // namespace qface::cli
