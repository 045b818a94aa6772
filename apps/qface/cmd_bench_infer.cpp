// qface bench infer: CPU inference speed of a backbone (img/s, achieved
// GFLOP/s) in qface's fast path (BatchNorm folded, channels_last, oneDNN,
// optional bf16), next to the plain NCHW path and, when /usr/bin/python3 has
// torch, the same architecture in Python eager in the same run.
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/qface/bench_util.h"
#include "apps/qface/command.h"
#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/infer/embed.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;

struct BenchArgs {
  std::string arch = "ir_50";
  int batch = 32;
  int threads = 2;
  int iters = 5;
  int warmup = 2;
  bool bf16 = false;
  bool python = true;
  bool plain = true;
  std::string python_dir;
  std::string json_out;
};

// Runs the Python eager reference; returns its img/s, or a negative value when unavailable.
double python_img_per_s(const BenchArgs& a, std::string& note) {
  nlohmann::json j = run_python_reference(
      "bench_infer.py",
      fmt::format("--arch {} --batch {} --threads {} --iters {} --warmup 1", a.arch, a.batch, a.threads,
                  std::max(1, a.iters / 2)),
      a.python_dir, note);
  return j.is_object() && j.contains("img_per_s") ? j["img_per_s"].get<double>() : -1;
}

int run_bench(const BenchArgs& a) {
  require(a.batch > 0 && a.iters > 0 && a.threads > 0, "bench infer: --batch, --iters and --threads must be positive");
  infer::set_threads(a.threads);
  const double gmac = backbones::macs_per_image(a.arch) / 1e9;
  torch::manual_seed(0);
  torch::Tensor x = torch::randn({a.batch, 3, 112, 112});
  nlohmann::json report = {{"arch", a.arch}, {"batch", a.batch}, {"threads", a.threads}, {"gflop_per_image", 2 * gmac}};
  auto line = [&](const std::string& name, double sec) {
    const double ips = a.batch / sec;
    std::cout << fmt::format("{:<34} {:8.2f} img/s  {:7.1f} GFLOP/s  ({:.3f} s/batch)\n", name, ips, ips * 2 * gmac,
                             sec);
    report[name] = {{"img_per_s", ips}, {"gflop_per_s", ips * 2 * gmac}};
    return ips;
  };
  std::cout << fmt::format("qface bench infer: {} ({:.2f} GFLOP/image), batch {}, {} threads\n", a.arch, 2 * gmac,
                           a.batch, a.threads);
  if (a.plain) {
    auto m = backbones::make_backbone(a.arch);
    infer::InferenceOptions o;
    o.fold_batchnorm(false).channels_last(false);
    infer::prepare_for_inference(*m, o);
    line("qface plain (NCHW, BN unfolded)", best_seconds([&] { infer::embed(*m, x, o); }, 1, std::max(1, a.iters / 2)));
  }
  auto m = backbones::make_backbone(a.arch);
  infer::InferenceOptions o;
  infer::prepare_for_inference(*m, o);
  const double fast = line("qface fast (BN folded, NHWC)", best_seconds([&] { infer::embed(*m, x, o); }, a.warmup, a.iters));
  if (a.bf16) {
    const double c = infer::bf16_min_cosine(*m, x.slice(0, 0, std::min(a.batch, 8)), o);
    infer::InferenceOptions b = o;
    b.bf16(true);
    line("qface fast bf16", best_seconds([&] { infer::embed(*m, x, b); }, a.warmup, a.iters));
    std::cout << fmt::format("bf16 min cosine to fp32: {:.6f} ({})\n", c, c >= 0.999 ? "kept: >= 0.999" : "rejected: < 0.999");
    report["bf16_min_cosine"] = c;
  }
  if (a.python) {
    std::string note;
    const double py = python_img_per_s(a, note);
    if (py > 0) {
      line("python eager (" + note + ")", a.batch / py);
      std::cout << fmt::format("speed-up of qface fast over Python eager: {:.2f}x\n", fast / py);
      report["ratio_vs_python"] = fast / py;
    } else {
      std::cout << "python reference skipped: " << note << "\n";
    }
  }
  if (!a.json_out.empty()) write_file_atomic(a.json_out, report.dump(2) + "\n");
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("--arch", a->arch, "backbone")->capture_default_str()->check(CLI::IsMember(backbones::backbone_names()));
  app.add_option("--batch", a->batch, "images per forward pass")->capture_default_str();
  app.add_option("--threads", a->threads, "CPU threads (both C++ and Python)")->capture_default_str();
  app.add_option("--iters", a->iters, "timed batches (best is reported)")->capture_default_str();
  app.add_option("--warmup", a->warmup, "untimed batches first")->capture_default_str();
  app.add_flag("--bf16", a->bf16, "also time bf16 autocast and report its cosine to fp32");
  app.add_flag("!--no-python", a->python, "skip the Python eager reference");
  app.add_flag("!--no-plain", a->plain, "skip the plain NCHW qface run");
  app.add_option("--python-dir", a->python_dir, "folder of bench_infer.py (default: found next to the build)");
  app.add_option("--json", a->json_out, "also write the numbers as JSON here");
  return [a] { return run_bench(*a); };
}

const Registrar registrar{{"infer", "CPU inference speed of a backbone (img/s, GFLOP/s, vs Python eager)", setup, "bench"}};

}  // namespace
}  // namespace qface::cli
