// qface margin: margin vs feature norm for one head on given arrays.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>

#include "apps/qface/command.h"
#include "apps/qface/head_options.h"
#include "qface/heads/margin_analysis.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"

namespace qface::cli {
namespace {

struct MarginArgs {
  std::string embeddings, labels, kernel, out, grad_out, plot;
  heads::HeadConfig head;
};

int run_margin(const MarginArgs& a) {
  torch::Tensor emb = read_npy_as(a.embeddings, torch::kFloat32, 2);
  torch::Tensor labels = read_npy(a.labels);
  require_shape(labels, a.labels, 1);
  require(labels.scalar_type() == torch::kInt64 || labels.scalar_type() == torch::kInt32,
          "{}: labels must be int64 (or int32), got {}", a.labels, c10::toString(labels.scalar_type()));
  torch::Tensor kernel = read_npy_as(a.kernel, torch::kFloat32, 2);

  heads::MarginResult r = heads::analyze_margin(emb, labels, kernel, a.head);
  // Every output is prepared before any is written, and each is written atomically.
  const std::string json = r.report.dump(2) + "\n";
  std::string svg;
  if (!a.plot.empty()) svg = heads::plot_margin(r.report);
  if (!a.grad_out.empty()) {
    ensure_dir(a.grad_out);
    write_npy(std::filesystem::path(a.grad_out) / "d_embeddings.npy", r.d_embeddings);
    write_npy(std::filesystem::path(a.grad_out) / "d_kernel.npy", r.d_kernel);
  }
  if (!a.plot.empty()) write_file_atomic(a.plot, svg);
  if (a.out.empty()) {
    std::cout << json;
  } else {
    write_file_atomic(a.out, json);
    spdlog::info("margin: {} on {} samples, loss {:.6f} -> {}", r.report["head"].get<std::string>(),
                 r.report["n"].get<int64_t>(), r.report["loss"].get<double>(), a.out);
  }
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<MarginArgs>();
  app.add_option("--embeddings", a->embeddings, "N x D float32 .npy of raw (unnormalized) embeddings")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--labels", a->labels, "N int64 .npy of class labels")->required()->check(CLI::ExistingFile);
  app.add_option("--kernel", a->kernel, "D x C float32 .npy of class centres (the head's W)")
      ->required()
      ->check(CLI::ExistingFile);
  add_head_options(app, a->head);
  app.add_option("--out", a->out, "write the JSON report here instead of stdout");
  app.add_option("--grad-out", a->grad_out, "folder for d_embeddings.npy and d_kernel.npy");
  app.add_option("--plot", a->plot, "SVG chart of margin vs feature norm");
  return [a] { return run_margin(*a); };
}

const Registrar registrar{{"margin", "Margin vs feature norm of a head on given embeddings (AdaFace's Fig. 1)", setup}};

}  // namespace
}  // namespace qface::cli
