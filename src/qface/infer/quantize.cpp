#include "qface/infer/quantize.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "qface/core/error.h"
#include "qface/eval/quality.h"
#include "qface/infer/verify_bin.h"

namespace qface::infer {
using nlohmann::json;

namespace {
// Aligned faces in batches of `batch`, preprocessed for the model.
void for_each_batch(const backbones::BackboneImpl& model, const std::vector<cv::Mat>& images, int batch,
                    const std::function<void(const torch::Tensor&)>& fn) {
  require(batch > 0 && !images.empty(), "quantize: no images (or batch {})", batch);
  for (std::size_t i = 0; i < images.size(); i += static_cast<std::size_t>(batch)) {
    const auto end = std::min(images.size(), i + static_cast<std::size_t>(batch));
    fn(preprocess({images.begin() + static_cast<std::ptrdiff_t>(i), images.begin() + static_cast<std::ptrdiff_t>(end)},
                  model.preprocessing()));
  }
}
}  // namespace

Embeddings embed_images(backbones::BackboneImpl& model, const std::vector<cv::Mat>& images, int batch,
                        const InferenceOptions& options) {
  std::vector<torch::Tensor> e, n;
  for_each_batch(model, images, batch, [&](const torch::Tensor& x) {
    Embeddings r = embed(model, x, options);
    e.push_back(r.embeddings);
    n.push_back(r.norms);
  });
  return {torch::cat(e), torch::cat(n)};
}

QuantizeResult quantize(backbones::BackboneImpl& model, const InferenceOptions& options,
                        const std::vector<cv::Mat>& calibrate, const std::vector<cv::Mat>& check,
                        const QuantizeOptions& o) {
  require(int8_supported(), "quantize: this LibTorch has no oneDNN quantized engine");
  require(!calibrate.empty() && !check.empty(), "quantize: no calibration ({}) or held-out ({}) faces",
          calibrate.size(), check.size());
  model.set_engine(nullptr);
  QuantizeResult r;
  const backbones::Graph graph = model.graph();
  Calibrator calibrator(graph);
  std::vector<torch::Tensor> batches;  // kept for the bias correction
  for_each_batch(model, calibrate, o.batch, [&](const torch::Tensor& x) {
    calibrator.observe(x);
    if (o.bias_correction) batches.push_back(x);
  });
  r.act = calibrator.qparams();
  r.calibration_images = calibrator.images();
  const Embeddings ref = embed_images(model, check, o.batch, options);
  // All int8 first; then the last stages in fp32 (mixed precision), latest
  // first: at most two, beyond that most of the compute would be fp32.
  std::vector<int> candidates{-1};
  for (int s : stage_starts(graph))
    if (candidates.size() < 3) candidates.push_back(s);
  if (o.fp32_stages >= 0) {
    require(o.fp32_stages < static_cast<int>(candidates.size()), "quantize: this network has only {} stages to keep in fp32",
            candidates.size() - 1);
    candidates = {candidates[static_cast<std::size_t>(o.fp32_stages)]};
  }
  for (std::size_t k = 0; k < candidates.size(); ++k) {
    QuantizeAttempt t;
    t.fp32_stages = o.fp32_stages >= 0 ? o.fp32_stages : static_cast<int>(k);
    t.fp32_from = candidates[k];
    if (o.bias_correction) t.shift = bias_correction(graph, r.act, t.fp32_from, batches);
    install_int8(model, r.act, t.fp32_from, t.shift);
    t.guard = accuracy_guard(ref, embed_images(model, check, o.batch, options), o.limits);
    r.tried.push_back(t);
    if (t.guard.passed) break;
  }
  return r;
}

namespace {
// The flip-fused norm's EDC pAUC, at an FMR the set's impostors resolve
// (1e-3, or 10 impostors' worth on a smaller set).
double norm_pauc(const BinVerification& v, std::span<const uint8_t> issame) {
  const torch::Tensor e = v.fused.defined() ? v.fused : v.features.plain.embeddings;
  const torch::Tensor n = (v.fused.defined() ? v.fused_norms : v.features.plain.norms).to(torch::kFloat64).contiguous();
  const eval::Comparisons c = eval::pair_comparisons(e, issame);
  const auto impostors = static_cast<double>(std::count(issame.begin(), issame.end(), uint8_t{0}));
  const double fmr = std::max(1e-3, 10.0 / std::max(impostors, 1.0));
  const std::vector<double> q(n.data_ptr<double>(), n.data_ptr<double>() + n.numel());
  return eval::edc(c, eval::pair_quality(c, q), fmr).pauc;
}
}  // namespace

BinComparison compare_on_bin(backbones::BackboneImpl& model, const InferenceOptions& options,
                             const std::vector<QParams>& act, int fp32_from, const BiasShift& shift,
                             const data::BinSet& set, const std::string& name, int batch,
                             double max_pauc_change) {
  BinComparison out;
  out.json = {{"bin", name}};
  double pauc[2] = {0, 0};
  for (const bool int8 : {false, true}) {
    model.set_engine(nullptr);
    if (int8) install_int8(model, act, fp32_from, shift);
    const BinVerification v = verify_encoded(model, name, set.images, set.issame, name, batch, options);
    json r{{"accuracy_mean", v.plain().accuracy_mean}, {"accuracy_std", v.plain().accuracy_std}};
    for (const auto& t : v.plain().val) r[fmt::format("tar_at_far_{:g}", t.far)] = v.plain().tar_json(t.far);
    pauc[int8] = norm_pauc(v, set.issame);
    r["norm_edc_pauc"] = pauc[int8];
    out.json[int8 ? "int8" : "fp32"] = r;
  }
  const json& f = out.json["fp32"];
  const json& q = out.json["int8"];
  const double d = 100 * (q["accuracy_mean"].get<double>() - f["accuracy_mean"].get<double>());
  out.json["accuracy_change_points"] = d;
  json tar = json::object();
  for (auto& [k, v] : f.items())
    if (k.rfind("tar_at_far_", 0) == 0 && v.is_number() && q[k].is_number())
      tar[k] = 100 * (q[k].get<double>() - v.get<double>());
  out.json["tar_change_points"] = tar;
  out.json["norm_edc_pauc_change"] = pauc[1] - pauc[0];
  if (std::abs(d) > 0.3) out.failure = fmt::format("accuracy moved {:+.2f} points (more than 0.3)", d);
  for (auto& [k, v] : tar.items())
    if (out.failure.empty() && std::abs(v.get<double>()) > 0.3)
      out.failure = fmt::format("{} moved {:+.2f} points (more than 0.3)", k, v.get<double>());
  if (out.failure.empty() && std::abs(pauc[1] - pauc[0]) > max_pauc_change)
    out.failure = fmt::format("the norm's EDC pAUC moved {:+.4f} (more than {})", pauc[1] - pauc[0], max_pauc_change);
  out.passed = out.failure.empty();
  out.json["passed"] = out.passed;
  if (!out.passed) out.json["failure"] = out.failure;
  return out;
}

}  // namespace qface::infer
