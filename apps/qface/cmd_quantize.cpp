// qface quantize: post-training static int8 quantization of a backbone
// (infer/quantize.h): activation ranges calibrated on aligned faces, the accuracy
// guard checked on held-out ones (and on .bin verification sets when given),
// written as a qface checkpoint with its int8 calibration (use it with
// --precision int8 or auto).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>

#include <opencv2/imgcodecs.hpp>

#include "apps/qface/arch_option.h"
#include "apps/qface/command.h"
#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/bin_set.h"
#include "qface/infer/int8_error.h"
#include "qface/infer/precision.h"
#include "qface/infer/quantize.h"
#include "qface/io/checkpoint.h"
#include "qface/version.h"

namespace qface::cli {
namespace {
using nlohmann::json;

struct QuantizeArgs {
  std::string arch, weights, calibrate, out, report, error_by_value;
  std::vector<std::string> bins;
  int images = 256, check = 128, threads = 0;
  infer::QuantizeOptions options;
  bool force = false;
};

// Aligned crops: even-numbered files calibrate, odd-numbered ones check (both
// then span every identity of a sorted folder).
std::pair<std::vector<cv::Mat>, std::vector<cv::Mat>> read_split(const QuantizeArgs& a) {
  const std::vector<std::string> files = infer::list_images(a.calibrate);
  std::vector<cv::Mat> cal, check;
  for (std::size_t i = 0; i < files.size(); ++i) {
    auto& to = i % 2 == 0 ? cal : check;
    if (static_cast<int>(to.size()) >= (i % 2 == 0 ? a.images : a.check)) continue;
    cv::Mat img = cv::imread(files[i], cv::IMREAD_COLOR);
    require(!img.empty(), "{}: cannot read this image", files[i]);
    require(img.rows == 112 && img.cols == 112, "{}: {}x{}, expected an aligned 112x112 crop", files[i], img.cols,
            img.rows);
    to.push_back(img);
  }
  require(static_cast<int>(cal.size()) >= std::min(a.images, 16) && check.size() >= 8,
          "{}: {} images: too few to calibrate ({} used) and check ({})", a.calibrate, files.size(), cal.size(),
          check.size());
  return {cal, check};
}

// Where the norm error comes from, on (up to 64 of) the held-out faces.
void write_error_by_value(backbones::BackboneImpl& m, const std::vector<infer::QParams>& q,
                          const std::vector<cv::Mat>& check, const std::string& path) {
  const std::vector<cv::Mat> part(check.begin(),
                                  check.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(check.size(), 64)));
  m.set_engine(nullptr);
  const json r = infer::int8_error_report(m.graph(), q, infer::preprocess(part, m.preprocessing()));
  write_file_atomic(path, r.dump(1) + "\n");
  spdlog::info("quantize: rounding every activation alone moves the norm by at most {:.2f} % (all together: {:.2f} %, "
               "{} held-out faces): {}",
               100 * std::max_element(r["values"].begin(), r["values"].end(),
                                      [](const json& x, const json& y) { return x["max_norm_error"] < y["max_norm_error"]; })
                         ->at("max_norm_error").get<double>(),
               100 * r["all"]["max_norm_error"].get<double>(), part.size(), path);
}

int run(const QuantizeArgs& a) {
  infer::ModelSpec spec{a.arch, a.weights, false, infer::Precision::kFp32, a.threads, "quantize"};
  infer::LoadedModel m = infer::load_for_inference(spec);
  auto [cal, check] = read_split(a);
  const infer::QuantizeResult r = infer::quantize(*m.model, m.options, cal, check, a.options);
  json tried = json::array();
  for (const auto& t : r.tried) {
    const infer::GuardResult& g = t.guard;
    spdlog::info("quantize: {} calibration images; {}: on {} held-out, cosine to fp32 min {:.4f} mean {:.4f}, norm "
                 "error max {:.2f} % mean {:.3f} % (bias {:+.3f} %), norm Spearman {:.4f}: {}",
                 r.calibration_images,
                 t.fp32_stages == 0 ? "all int8" : fmt::format("the last {} stage(s) in fp32", t.fp32_stages), g.images,
                 g.min_cosine, g.mean_cosine, 100 * g.max_norm_error, 100 * g.mean_norm_error, 100 * g.norm_bias,
                 g.norm_spearman, g.passed ? "passes" : "fails: " + g.failure);
    tried.push_back({{"fp32_stages", t.fp32_stages}, {"fp32_from_step", t.fp32_from}, {"guard", infer::to_json(g)}});
  }
  const infer::QuantizeAttempt& kept = r.kept();
  if (!a.error_by_value.empty()) write_error_by_value(*m.model, r.act, check, a.error_by_value);
  json report{{"kind", "quantize"},       {"arch", a.arch},          {"weights", a.weights},
              {"calibration", a.calibrate}, {"calibration_images", r.calibration_images},
              {"guard", infer::to_json(kept.guard)}, {"fp32_from_step", kept.fp32_from}, {"tried", tried},
              {"bias_correction", a.options.bias_correction},
              {"cpu", infer::cpu_signature()}, {"qface", kVersion}};
  std::string sets_failure;
  for (const auto& path : a.bins) {
    const infer::BinComparison c = infer::compare_on_bin(*m.model, m.options, r.act, kept.fp32_from, kept.shift,
                                                         data::read_bin_set(path), path, a.options.batch);
    spdlog::info("quantize: {}: accuracy fp32 {:.2f} % int8 {:.2f} % ({:+.2f} points), norm EDC pAUC {:.4f} -> {:.4f}{}",
                 path, 100 * c.json["fp32"]["accuracy_mean"].get<double>(),
                 100 * c.json["int8"]["accuracy_mean"].get<double>(), c.json["accuracy_change_points"].get<double>(),
                 c.json["fp32"]["norm_edc_pauc"].get<double>(), c.json["int8"]["norm_edc_pauc"].get<double>(),
                 c.passed ? "" : ": " + c.failure);
    if (!c.passed && sets_failure.empty()) sets_failure = path + ": " + c.failure;
    report["sets"].push_back(c.json);
  }
  const bool passed = kept.guard.passed && sets_failure.empty();
  report["passed"] = passed;
  if (!a.report.empty()) write_file_atomic(a.report, report.dump(2) + "\n");
  if (!passed && !a.force) {
    fail("quantize: the int8 model fails the accuracy guard ({}); nothing written (--force writes it anyway)",
         kept.guard.passed ? sets_failure : kept.guard.failure);
  }
  // The file holds the original (unfolded) weights and the calibration: loading folds and packs them again.
  auto fresh = backbones::make_backbone_for_weights(m.model->arch());
  io::load_weights(*fresh, a.weights);
  const io::Int8Calibration c = infer::calibration_of(r.act, kept.fp32_from, report.dump(), kept.shift);
  io::save_checkpoint(a.out, *fresh, m.model->arch(), &c);
  spdlog::info("quantize: wrote {} (use it with --precision int8 or auto)", a.out);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  add_arch_option(app, a->arch);
  app.add_option("--weights", a->weights, "fp32 checkpoint (qface, AdaFace .ckpt, MagFace .pth, state dict)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--calibrate", a->calibrate,
                 "aligned 112x112 faces (folder or list file): even-numbered files calibrate, odd-numbered ones check")
      ->required();
  app.add_option("--out", a->out, "the int8 model file (a qface checkpoint with its calibration)")->required();
  // Counts, named so (elsewhere --images is a path).
  app.add_option("--calibration-images", a->images, "how many of --calibrate's images calibrate")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--check-images", a->check, "how many held-out images the accuracy guard checks")
      ->capture_default_str()->check(CLI::Range(8, 100000));
  app.add_option("--bin", a->bins,
                 "verification .bin sets: 10-fold accuracy and TAR@FAR must stay within 0.3 points, the norm's EDC pAUC within 0.002");
  app.add_option("--report", a->report, "also write the guard's numbers as JSON here");
  app.add_option("--error-by-value", a->error_by_value,
                 "also write, as JSON, how far rounding each quantized value alone moves the norm (where the error comes from)");
  app.add_option("--batch", a->options.batch, "images per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", a->threads, "CPU threads (0: every logical core)")->capture_default_str();
  app.add_option("--fp32-stages", a->options.fp32_stages,
                 "last stages kept in fp32 (default: the fewest that pass the guard, trying 0, 1, 2)")
      ->check(CLI::Range(0, 2));
  app.add_flag("--bias-correction", a->options.bias_correction,
               "empirical bias correction: each layer's mean int8 error on the calibration faces removed");
  app.add_option("--max-norm-error", a->options.limits.max_norm_error,
                 "guard: the largest relative norm error any held-out image may have")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--force", a->force, "write the model even when it fails the accuracy guard");
  return [a] { return run(*a); };
}

const Registrar registrar{{"quantize", "int8 model: calibrate on aligned faces, check the accuracy guard, write it", setup}};

}  // namespace
}  // namespace qface::cli
