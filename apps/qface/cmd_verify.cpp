// qface verify A B: aligns the two photos if needed, embeds them, prints the
// cosine similarity, the match decision at the threshold calibrated for
// --far (`qface eval verify --calibration-out`), and both quality scores.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>
#include <optional>

#include "apps/qface/command.h"
#include "apps/qface/deploy_options.h"
#include "qface/core/error.h"
#include "qface/deploy/calibration.h"
#include "qface/deploy/pipeline.h"
#include "qface/eval/features.h"

namespace qface::cli {
namespace {
using nlohmann::json;

struct VerifyArgs {
  PipelineArgs pipeline;
  std::string a, b, calibration, out;
  std::optional<double> far;
};

int run(const VerifyArgs& v) {
  deploy::PipelineOptions o = v.pipeline.resolve();
  const std::optional<deploy::VerifyCalibration> cal = deploy::find_verify_calibration(v.calibration, o.weights, "verify");
  if (cal) {
    if (o.flip_fuse != (cal->mode == "flip_fused"))
      spdlog::info("verify: using {} features, as the calibration was made with them", cal->mode);
    o.flip_fuse = cal->mode == "flip_fused";
  }
  const double far = deploy::decision_far(cal ? &*cal : nullptr, v.far, "--far");
  const double threshold = cal ? cal->threshold_for(far) : 0;
  const deploy::Pipeline p(o);
  auto probe = [&](const std::string& path) {
    const cv::Mat img = deploy::read_image(path);
    require(!img.empty(), "{}: cannot read this image", path);
    deploy::Probe r = p.probe(img);
    require(r.found, "{}: no face found", path);
    if (r.faces > 1)
      spdlog::warn("verify: {} has {} faces; comparing the largest (box {}x{} at {},{})", path, r.faces,
                   r.face->box.width, r.face->box.height, r.face->box.x, r.face->box.y);
    return r;
  };
  const deploy::Probe pa = probe(v.a), pb = probe(v.b);
  const double cosine = (pa.embedding * pb.embedding).sum().item<double>();
  auto side = [](const std::string& path, const deploy::Probe& r) {
    json j{{"image", path}, {"norm", r.norm}, {"detected", r.face.has_value()}, {"faces", r.faces}};
    if (r.face) j["box"] = {r.face->box.x, r.face->box.y, r.face->box.width, r.face->box.height};
    if (r.quality) j["quality"] = *r.quality;
    return j;
  };
  json j{{"kind", "deploy.verify"}, {"cosine", cosine}, {"a", side(v.a, pa)}, {"b", side(v.b, pb)},
         {"flip_fused", o.flip_fuse}};
  std::cout << fmt::format("cosine similarity {:.4f}\n", cosine);
  if (cal) {
    const bool match = cosine > threshold;
    j["far"] = far;
    j["threshold"] = threshold;
    j["match"] = match;
    std::cout << fmt::format("decision at FAR {:g} (threshold {:.4f}): {}\n", far, threshold,
                             match ? "MATCH" : "no match");
  } else {
    std::cout << "decision: none (no calibration beside the weights: give --calibration FILE from `qface eval verify "
                 "--calibration-out`)\n";
  }
  for (const auto* s : {&j["a"], &j["b"]})
    std::cout << fmt::format("quality {}: norm {:.3f}{}\n", (*s)["image"].get<std::string>(), (*s)["norm"].get<double>(),
                             s->contains("quality") ? fmt::format(", calibrated {:.3f}", (*s)["quality"].get<double>()) : "");
  if (!v.out.empty()) eval::write_json(v.out, j);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<VerifyArgs>();
  app.add_option("a", a->a, "first image (photo or aligned 112x112 crop)")->required()->check(CLI::ExistingFile);
  app.add_option("b", a->b, "second image")->required()->check(CLI::ExistingFile);
  add_pipeline_options(app, a->pipeline);
  app.add_option("--calibration", a->calibration,
                 "calibration.verify JSON (`qface eval verify --calibration-out`): thresholds per FAR; default: "
                 "<weights stem>.verify.json beside the weights, which `make run` writes")
      ->check(CLI::ExistingFile);
  app.add_option("--far", a->far,
                 "false-accept rate of the decision (default 1e-3, or the strictest the calibration resolves above it)");
  app.add_option("--out", a->out, "also write the result as JSON here");
  return [a] { return run(*a); };
}

const Registrar registrar{{"verify", "1:1 verification of two photos: cosine, match at a FAR, quality of both", setup}};

}  // namespace
}  // namespace qface::cli
