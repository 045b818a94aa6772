// qface quality: per-image face quality (the raw feature norm, optionally
// mapped to [0, 1] by a `qface eval quality --calibration-out` file);
// --min-quality lists the images to recapture.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>
#include <map>

#include "apps/qface/command.h"
#include "apps/qface/deploy_options.h"
#include "qface/core/error.h"
#include "qface/deploy/calibration.h"
#include "qface/deploy/enroll.h"
#include "qface/eval/features.h"
#include "qface/infer/embed.h"

namespace qface::cli {
namespace {
using nlohmann::json;

struct QualityArgs {
  PipelineArgs pipeline;
  std::vector<std::string> images;
  double min_quality = -1;
  std::string out;
  std::string scale = "auto";
};

int run(const QualityArgs& a) {
  const deploy::Pipeline p(a.pipeline.resolve());
  deploy::LabeledImages in;
  for (const auto& i : a.images) {
    deploy::LabeledImages part;
    if (std::filesystem::is_directory(i)) part.files = infer::list_images(i);
    else part.files = {i};
    in.files.insert(in.files.end(), part.files.begin(), part.files.end());
  }
  in.labels.assign(in.files.size(), "");
  const deploy::EmbeddedSet s = deploy::embed_images(p, in);
  const bool ofiq = a.scale == "ofiq";
  require(a.scale != "calibrated" || s.calibrated, "quality: --scale calibrated needs --quality-calibration");
  json rows = json::array(), recapture = json::array();
  const std::map<std::string, int> several(s.several_faces.begin(), s.several_faces.end());
  for (std::size_t i = 0; i < s.files.size(); ++i) {
    const double norm = s.norms[static_cast<int64_t>(i)].item<double>();
    const bool low = a.min_quality >= 0 && s.quality[i] < a.min_quality;
    json r{{"image", s.files[i]}, {"norm", norm}};
    if (s.calibrated) r["quality"] = s.quality[i];
    if (ofiq) r["ofiq"] = deploy::ofiq_unified_score(norm);
    if (a.min_quality >= 0) r["recapture"] = low;
    if (low) recapture.push_back(s.files[i]);
    const auto many = several.find(s.files[i]);
    r["faces"] = many == several.end() ? 1 : many->second;  // the largest is rated
    std::cout << fmt::format("{}\tnorm {:.3f}{}{}{}{}\n", s.files[i], norm,
                             s.calibrated ? fmt::format("\tquality {:.3f}", s.quality[i]) : "",
                             ofiq ? fmt::format("\tOFIQ {:.1f}", r["ofiq"].get<double>()) : "", low ? "\tRECAPTURE" : "",
                             many == several.end() ? "" : fmt::format("\t(the largest of {} faces)", many->second));
    rows.push_back(std::move(r));
  }
  for (const auto& f : s.no_face) std::cout << f << "\tno face: RECAPTURE\n";
  for (const auto& f : s.unreadable) std::cout << f << "\tunreadable\n";
  json j{{"kind", "deploy.quality"}, {"arch", p.options().arch}, {"flip_fused", a.pipeline.flip_fuse},
         {"quality_scale", ofiq ? "OFIQ unified score [0,100] of the magnitude" : s.calibrated ? "calibrated [0,1]" : "feature norm"},
         {"images", rows}, {"no_face", s.no_face}, {"unreadable", s.unreadable}};
  if (a.min_quality >= 0) {
    j["min_quality"] = a.min_quality;
    for (const auto& f : s.no_face) recapture.push_back(f);
    j["recapture"] = recapture;
  }
  if (!a.out.empty()) eval::write_json(a.out, j);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<QualityArgs>();
  add_pipeline_options(app, a->pipeline);
  app.add_option("--images", a->images, "image files and/or folders (photos are detected and aligned)")->required();
  app.add_option("--min-quality", a->min_quality,
                 "flag images below this quality (calibrated [0,1] when a quality calibration is loaded: "
                 "--quality-calibration or the one beside the weights; else the norm) and "
                 "faceless ones for recapture");
  app.add_option("--out", a->out, "also write the results as JSON here");
  app.add_option("--scale", a->scale,
                 "auto (calibrated [0,1] when a quality calibration is loaded: --quality-calibration or "
                 "the one beside the weights; else the norm), calibrated, or ofiq "
                 "(OFIQ's 100/(1+exp((23-x)/2.6)) of the magnitude, for MagFace models)")
      ->check(CLI::IsMember({"auto", "calibrated", "ofiq"}))->capture_default_str();
  return [a] { return run(*a); };
}

const Registrar registrar{{"quality", "Per-image face quality (feature norm, calibrated [0,1]); flags recaptures", setup}};

}  // namespace
}  // namespace qface::cli
