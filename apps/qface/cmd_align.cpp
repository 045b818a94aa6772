// qface align: detect faces (SSD CNN or dlib HOG), find 5 landmarks (dlib 68-point model)
// or read them from an IJB 5-point file, and write 112x112 crops aligned to the
// 112x112 template (docs/method.md, Alignment; or 96x112 on request) plus a
// JSON summary (faceless / unreadable images listed).
#include <spdlog/spdlog.h>

#include "apps/qface/command.h"
#include "apps/qface/detector_options.h"
#include "qface/deploy/align.h"

namespace qface::cli {
namespace {

Runner setup(CLI::App& app) {
  auto a = std::make_shared<deploy::AlignOptions>();
  auto images = std::make_shared<std::string>(), out = std::make_shared<std::string>(),
       landmarks = std::make_shared<std::string>(),
       crop = std::make_shared<std::string>("112x112");
  app.add_option("--images", *images, "a photo, a folder of photos, or a text file with one path per line (with --landmarks: "
                 "the folder the file's image names are relative to)")->required();
  app.add_option("--out", *out, "output folder: <stem>.png crops and summary.json")->required();
  app.add_option("--landmarks", *landmarks, "IJB *_name_5pts_score.txt (image x1 y1 ... x5 y5 score): no detection")
      ->check(CLI::ExistingFile);
  app.add_flag("--all", a->all, "every detected face (<stem>_face<k>.png, largest first) instead of the largest");
  app.add_option("--crop", *crop, "crop layout: 112x112 (arcface_dst, the official checkpoints' crops) or 96x112 "
                 "(SphereFace/CosFace)")->capture_default_str();
  add_detector_options(app, a->detector);
  return [a, images, out, landmarks, crop] {
    a->crop = data::parse_crop_layout(*crop);
    a->images = *images;
    a->out = *out;
    a->landmarks = *landmarks;
    deploy::AlignSummary s = deploy::run_align(*a);
    spdlog::info("align: {} images -> {} crops in {} ({} without a face, {} unreadable; {})", s.images, s.crops,
                 a->out.string(), s.no_face.size(), s.unreadable.size(), s.json["source"].get<std::string>());
    return 0;
  };
}

const Registrar registrar{{"align", "Detect, landmark and align faces to 112x112 crops (SSD or HOG detector + dlib 68 points)", setup}};

}  // namespace
}  // namespace qface::cli
