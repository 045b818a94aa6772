// qface export: a backbone with its weights as an ONNX model.
#include <spdlog/spdlog.h>

#include "apps/qface/arch_option.h"
#include "apps/qface/command.h"
#include "qface/backbones/backbone.h"
#include "qface/infer/onnx_export.h"
#include "qface/infer/precision.h"
#include "qface/io/checkpoint.h"

namespace qface::cli {
namespace {

struct ExportArgs {
  std::string arch, weights, out;
};

Runner setup(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  add_arch_option(app, a->arch);
  app.add_option("--weights", a->weights, "checkpoint (qface, AdaFace .ckpt, MagFace .pth, torch state dict)")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--out", a->out, "ONNX file to write (input [N,3,112,112]; outputs embedding, norm)")->required();
  return [a] {
    io::Checkpoint c = io::read_checkpoint(a->weights);
    const std::string arch = a->arch.empty() ? infer::checkpoint_arch(c, a->weights) : a->arch;
    auto model = backbones::make_backbone_for_weights(arch);
    io::load_state_dict(*model, std::move(c.tensors), a->weights, c.arch);
    infer::export_onnx(*model, a->out);
    spdlog::info("export: {} ({}) -> {}", arch, a->weights, a->out);
    return 0;
  };
}

const Registrar registrar{{"export", "Export a backbone with its weights to ONNX", setup}};

}  // namespace
}  // namespace qface::cli
