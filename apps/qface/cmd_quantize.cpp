// qface quantize: post-training static int8 quantization of a backbone
// (infer/int8.h): activation ranges calibrated on aligned faces, the accuracy
// guard checked on held-out ones (and on .bin verification sets when given),
// written as a qface checkpoint with its int8 calibration (use it with
// --precision int8 or auto).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include "apps/qface/command.h"
#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/bin_set.h"
#include "qface/infer/int8.h"
#include "qface/infer/precision.h"
#include "qface/infer/verify_bin.h"
#include "qface/io/checkpoint.h"
#include "qface/version.h"

namespace qface::cli {
namespace {
using nlohmann::json;

struct QuantizeArgs {
  std::string arch, weights, calibrate, out, report;
  std::vector<std::string> bins;
  int images = 256, check = 128, batch = 32, threads = 0, fp32_stages = -1;
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

infer::Embeddings embed_all(backbones::BackboneImpl& m, const std::vector<cv::Mat>& imgs, int batch,
                            const infer::InferenceOptions& o) {
  std::vector<torch::Tensor> e, n;
  for (std::size_t i = 0; i < imgs.size(); i += static_cast<std::size_t>(batch)) {
    std::vector<cv::Mat> part(imgs.begin() + static_cast<std::ptrdiff_t>(i),
                              imgs.begin() + static_cast<std::ptrdiff_t>(std::min(imgs.size(), i + static_cast<std::size_t>(batch))));
    infer::Embeddings r = infer::embed(m, infer::preprocess(part, m.preprocessing()), o);
    e.push_back(r.embeddings);
    n.push_back(r.norms);
  }
  return {torch::cat(e), torch::cat(n)};
}

int run(const QuantizeArgs& a) {
  require(infer::int8_supported(), "quantize: this LibTorch has no oneDNN quantized engine");
  infer::ModelSpec spec{a.arch, a.weights, false, infer::Precision::kFp32, a.threads, "quantize"};
  infer::LoadedModel m = infer::load_for_inference(spec);
  auto [cal, check] = read_split(a);
  infer::Calibrator calibrator(m.model->graph());
  for (std::size_t i = 0; i < cal.size(); i += static_cast<std::size_t>(a.batch)) {
    std::vector<cv::Mat> part(cal.begin() + static_cast<std::ptrdiff_t>(i),
                              cal.begin() + static_cast<std::ptrdiff_t>(std::min(cal.size(), i + static_cast<std::size_t>(a.batch))));
    calibrator.observe(infer::preprocess(part, m.model->preprocessing()));
  }
  const std::vector<infer::QParams> q = calibrator.qparams();
  const infer::Embeddings ref = embed_all(*m.model, check, a.batch, m.options);
  // All int8 first; then, while the guard fails, the last stages in fp32 (mixed precision), latest first.
  const backbones::Graph graph = m.model->graph();
  std::vector<std::pair<int, int>> candidates{{0, -1}};  // (fp32 stages, first fp32 step)
  // At most the last two stages: beyond that most of the compute would be fp32.
  for (int s : infer::stage_starts(graph))
    if (candidates.size() < 3) candidates.emplace_back(static_cast<int>(candidates.size()), s);
  if (a.fp32_stages >= 0) {
    require(a.fp32_stages < static_cast<int>(candidates.size()), "quantize: {} has only {} stages to keep in fp32",
            a.arch, candidates.size() - 1);
    candidates = {candidates[static_cast<std::size_t>(a.fp32_stages)]};
  }
  infer::GuardResult guard;
  int fp32_from = -1;
  json tried = json::array();
  for (const auto& [stages, from] : candidates) {
    fp32_from = from;
    infer::install_int8(*m.model, q, fp32_from);
    guard = infer::accuracy_guard(ref, embed_all(*m.model, check, a.batch, m.options));
    spdlog::info("quantize: {} calibration images; {}: on {} held-out, cosine to fp32 min {:.4f} mean {:.4f}, norm "
                 "error mean {:.3f} % max {:.2f} % (bias {:+.3f} %), norm Spearman {:.4f}: {}",
                 calibrator.images(), stages == 0 ? "all int8" : fmt::format("the last {} stage(s) in fp32", stages),
                 guard.images, guard.min_cosine, guard.mean_cosine, 100 * guard.mean_norm_error,
                 100 * guard.max_norm_error, 100 * guard.norm_bias, guard.norm_spearman,
                 guard.passed ? "passes" : "fails: " + guard.failure);
    tried.push_back({{"fp32_stages", stages}, {"fp32_from_step", fp32_from}, {"guard", infer::to_json(guard)}});
    if (guard.passed) break;
  }
  json report{{"kind", "quantize"},       {"arch", a.arch},          {"weights", a.weights},
              {"calibration", a.calibrate}, {"calibration_images", calibrator.images()},
              {"guard", infer::to_json(guard)}, {"fp32_from_step", fp32_from}, {"tried", tried},
              {"cpu", infer::cpu_signature()}, {"qface", kVersion}};
  bool sets_pass = true;
  for (const auto& path : a.bins) {
    const data::BinSet set = data::read_bin_set(path);
    json one{{"bin", path}};
    for (const bool int8 : {false, true}) {
      m.model->set_engine(nullptr);
      if (int8) infer::install_int8(*m.model, q, fp32_from);
      const auto v = infer::verify_encoded(*m.model, path, set.images, set.issame, path, a.batch, m.options);
      json r{{"accuracy_mean", v.plain().accuracy_mean}, {"accuracy_std", v.plain().accuracy_std}};
      for (const auto& t : v.plain().val) r[fmt::format("tar_at_far_{:g}", t.far)] = v.plain().tar_json(t.far);
      one[int8 ? "int8" : "fp32"] = r;
    }
    const double d = 100 * (one["int8"]["accuracy_mean"].get<double>() - one["fp32"]["accuracy_mean"].get<double>());
    one["accuracy_change_points"] = d;
    json tar_changes = json::object();
    for (auto& [k, v] : one["fp32"].items())
      if (k.rfind("tar_at_far_", 0) == 0 && v.is_number() && one["int8"][k].is_number())
        tar_changes[k] = 100 * (one["int8"][k].get<double>() - v.get<double>());
    one["tar_change_points"] = tar_changes;
    bool ok = std::abs(d) <= 0.3;
    for (auto& [k, v] : tar_changes.items()) ok = ok && std::abs(v.get<double>()) <= 0.3;
    one["within_0_3_points"] = ok;
    sets_pass = sets_pass && ok;
    spdlog::info("quantize: {}: accuracy fp32 {:.2f} % int8 {:.2f} % ({:+.2f} points){}", path,
                 100 * one["fp32"]["accuracy_mean"].get<double>(), 100 * one["int8"]["accuracy_mean"].get<double>(), d,
                 ok ? "" : ": more than 0.3 points");
    report["sets"].push_back(one);
  }
  report["passed"] = guard.passed && sets_pass;
  if (!a.report.empty()) write_file_atomic(a.report, report.dump(2) + "\n");
  if (!(guard.passed && sets_pass) && !a.force) {
    fail("quantize: the int8 model fails the accuracy guard ({}); nothing written (--force writes it anyway)",
         guard.passed ? "verification accuracy moved more than 0.3 points" : guard.failure);
  }
  // The file holds the original (unfolded) weights and the calibration: loading folds and packs them again.
  auto fresh = backbones::make_backbone_for_weights(a.arch);
  io::load_weights(*fresh, a.weights);
  const io::Int8Calibration c = infer::calibration_of(q, fp32_from, report.dump());
  io::save_checkpoint(a.out, *fresh, a.arch, &c);
  spdlog::info("quantize: wrote {} (use it with --precision int8 or auto)", a.out);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  app.add_option("--arch", a->arch, "backbone")->required()->check(CLI::IsMember(backbones::backbone_names()));
  app.add_option("--weights", a->weights, "fp32 checkpoint (qface, AdaFace .ckpt, MagFace .pth, state dict)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--calibrate", a->calibrate,
                 "aligned 112x112 faces (folder or list file): even-numbered files calibrate, odd-numbered ones check")
      ->required();
  app.add_option("--out", a->out, "the int8 model file (a qface checkpoint with its calibration)")->required();
  app.add_option("--images", a->images, "calibration images")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--check", a->check, "held-out images for the accuracy guard")->capture_default_str()->check(CLI::Range(8, 100000));
  app.add_option("--bin", a->bins, "verification .bin sets: 10-fold accuracy and TAR@FAR must stay within 0.3 points");
  app.add_option("--report", a->report, "also write the guard's numbers as JSON here");
  app.add_option("--batch", a->batch, "images per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", a->threads, "CPU threads (0: every logical core)")->capture_default_str();
  app.add_option("--fp32-stages", a->fp32_stages,
                 "last stages kept in fp32 (default: the fewest that pass the guard, trying 0, 1, 2)")
      ->check(CLI::Range(0, 2));
  app.add_flag("--force", a->force, "write the model even when it fails the accuracy guard");
  return [a] { return run(*a); };
}

const Registrar registrar{{"quantize", "int8 model: calibrate on aligned faces, check the accuracy guard, write it", setup}};

}  // namespace
}  // namespace qface::cli
