// qface export: a backbone with its weights as an ONNX model.
#include <spdlog/spdlog.h>

#include "apps/qface/command.h"
#include "qface/backbones/backbone.h"
#include "qface/infer/onnx_export.h"
#include "qface/io/checkpoint.h"

namespace qface::cli {
namespace {

struct ExportArgs {
  std::string arch, weights, out;
};

Runner setup(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  app.add_option("--arch", a->arch, "backbone")->required()->check(CLI::IsMember(backbones::backbone_names()));
  app.add_option("--weights", a->weights, "checkpoint (qface, AdaFace .ckpt, MagFace .pth, torch state dict)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--out", a->out, "ONNX file to write (input [N,3,112,112]; outputs embedding, norm)")->required();
  return [a] {
    auto model = backbones::make_backbone_for_weights(a->arch);
    io::load_weights(*model, a->weights);
    infer::export_onnx(*model, a->out);
    spdlog::info("export: {} ({}) -> {}", a->arch, a->weights, a->out);
    return 0;
  };
}

const Registrar registrar{{"export", "Export a backbone with its weights to ONNX", setup}};

}  // namespace
}  // namespace qface::cli
