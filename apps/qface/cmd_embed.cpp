// qface embed: embeddings and norms (quality) of aligned 112x112 face crops.
#include <spdlog/spdlog.h>

#include "apps/qface/arch_option.h"
#include "apps/qface/command.h"
#include "apps/qface/flip_option.h"
#include "apps/qface/precision_option.h"
#include "qface/backbones/backbone.h"
#include "qface/infer/embed.h"
#include "qface/infer/precision.h"

namespace qface::cli {
namespace {

Runner setup(CLI::App& app) {
  auto a = std::make_shared<infer::EmbedOptions>();
  auto weights = std::make_shared<std::string>(), images = std::make_shared<std::string>(),
       out = std::make_shared<std::string>();
  add_arch_option(app, a->arch);
  app.add_option("--weights", *weights,
                 "checkpoint: qface's own, AdaFace Lightning .ckpt, MagFace .pth, or a torch state dict")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--images", *images, "an aligned 112x112 image, a folder of them, or a text file with one path per line")
      ->required();
  app.add_option("--out", *out, "output folder: embeddings.npy, norms.npy, files.txt (skipped.txt)")->required();
  add_flip_fuse_option(app, a->flip_fuse,
                       "embeddings fused with the flipped image's, norms of the fused features (docs/method.md)");
  app.add_option("--batch", a->batch, "images per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", a->threads, "CPU threads (0: every logical core, or OMP_NUM_THREADS)")->capture_default_str();
  app.add_option("--device", a->device, "cpu, cuda or cuda:N (a GPU runs fp32 only)")->capture_default_str();
  app.add_flag("--resize", a->resize, "resize images of other sizes to 112x112 instead of rejecting them");
  app.add_flag("--strict", a->strict, "fail on an unreadable image instead of skipping it");
  auto precision = std::make_shared<std::string>("fp32");
  add_precision_option(app, *precision);
  return [a, weights, images, out, precision] {
    a->precision = infer::parse_precision(*precision);
    a->weights = *weights;
    a->images = *images;
    a->out = *out;
    infer::EmbedSummary s = infer::run_embed(*a);
    spdlog::info("embed: {} images -> {} ({} skipped)", s.embedded, a->out.string(), s.skipped.size());
    return 0;
  };
}

const Registrar registrar{{"embed", "Embeddings and norms (quality) of aligned face crops", setup}};

}  // namespace
}  // namespace qface::cli
