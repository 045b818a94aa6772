#include "apps/qface/detector_options.h"

namespace qface::cli {

void add_detector_options(CLI::App& app, deploy::DetectorOptions& o) {
  app.add_option_function<std::string>(
         "--detector", [&o](const std::string& name) { o.kind = deploy::parse_detector_kind(name); },
         fmt::format("face detector: ssd (face-api's SSD-MobileNetV1 CNN: small, blurred, turned faces; npm package "
                     "installed by scripts/setup.sh) or hog (dlib's frontal HOG) [default: {}]",
                     deploy::detector_kind_name(o.kind)))
      ->check(CLI::IsMember({"ssd", "hog"}));
  app.add_option("--detector-weights", o.ssd.model_dir,
                 "ssd: folder with ssd_mobilenetv1_model-weights_manifest.json (default: $QFACE_DETECTOR_WEIGHTS, "
                 "else models/node_modules/@vladmandic/face-api/model)");
  app.add_option("--detect-min-score", o.ssd.min_score, "ssd: face probability a box needs")
      ->check(CLI::Range(0.01, 0.99))->capture_default_str();
  app.add_option("--detect-scan", o.ssd.scan,
                 "ssd: also run the photo resized by this factor through the network at full resolution, for small "
                 "faces (1.25: 48 px and up; 2: 32 px, ~2.7x the time and memory, with --detect-scan-max-pixels 0 or 8.3e6 for a "
                 "1920x1080 frame; 0: one whole-photo pass, as face-api)")
      ->check(CLI::Range(0.0, 4.0))->capture_default_str();
  app.add_option("--detect-scan-max-pixels", o.ssd.scan_max_pixels,
                 "ssd: a scan over this many pixels runs at the factor that fits it (bounds time and memory; 0: never)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--upsample", o.upsample,
                 "hog: image doublings before detection (finds faces >= 80/2^n px, counted after --detect-max-pixels)")
      ->check(CLI::Range(0, 3))->capture_default_str();
  app.add_option("--detect-max-pixels", o.max_pixels,
                 "hog: photos larger than this are scaled down for detection first (landmarks use full resolution); "
                 "faces then need 80/2^upsample px at the reduced size: a 1920x1080 frame shrinks by 0.69, so its 40-px "
                 "faces need --detect-max-pixels 0 or --upsample 2; 0: never scale down")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--landmark-model", o.landmark_model, "dlib shape_predictor_68_face_landmarks.dat (default: libdlib-data's)");
}

}  // namespace qface::cli
