#include "apps/qface/deploy_options.h"

#include "apps/qface/precision_option.h"
#include "qface/infer/precision.h"

#include "apps/qface/arch_option.h"
#include "apps/qface/detector_options.h"
#include "apps/qface/flip_option.h"

#include "qface/backbones/backbone.h"

namespace qface::cli {

deploy::PipelineOptions PipelineArgs::resolve() const {
  deploy::PipelineOptions o = options;
  o.weights = weights;
  o.flip_fuse = flip_fuse;
  o.align = deploy::parse_align_mode(align);
  o.quality_calibration = quality_calibration;
  o.precision = infer::parse_precision(precision);
  return o;
}

void add_pipeline_options(CLI::App& app, PipelineArgs& a) {
  add_arch_option(app, a.options.arch);
  app.add_option("--weights", a.weights, "checkpoint (qface, AdaFace .ckpt, MagFace .pth, torch state dict); required "
                 "unless --random-weights")->check(CLI::ExistingFile);
  app.add_flag("--random-weights", a.options.random_weights,
               "no checkpoint: random weights (pipeline tests and benchmarks only; the scores mean nothing)");
  add_flip_fuse_option(app, a.flip_fuse, "match embeddings fused with the flipped image's (docs/method.md); the "
                       "quality stays the plain image's norm");
  app.add_option("--align", a.align, "auto: 112x112 inputs are aligned crops, others are detected and aligned; "
                 "detect: always detect; aligned: inputs must be crops")->capture_default_str()
      ->check(CLI::IsMember({"auto", "detect", "aligned"}));
  add_detector_options(app, a.options.detector);
  app.add_option("--quality-calibration", a.quality_calibration,
                 "calibration.quality JSON (`qface eval quality --calibration-out`): quality in [0,1]; default: "
                 "<weights stem>.quality.json beside the weights, which `make run` writes")
      ->check(CLI::ExistingFile);
  app.add_option("--threads", a.options.threads, "CPU threads (0: every logical core, or OMP_NUM_THREADS)")->capture_default_str();
  add_precision_option(app, a.precision);
}

}  // namespace qface::cli
