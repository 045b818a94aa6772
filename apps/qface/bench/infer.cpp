// qface bench infer: CPU inference speed of a backbone (img/s, achieved
// GFLOP/s) in qface's fast path (BatchNorm folded, channels_last, oneDNN;
// fp32 with Winograd convolutions, and with direct ones beside it) at each
// asked precision (fp32, bf16, int8; auto reports what it would pick),
// next to the plain NCHW path and, when /usr/bin/python3 has torch, the same
// architecture in Python eager in the same run. bf16 and int8 also report the
// accuracy guard against fp32 (infer/precision.h) on synthetic faces.
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/qface/bench/profile.h"
#include "apps/qface/bench/util.h"
#include "apps/qface/command.h"
#include "qface/backbones/backbone.h"
#include "qface/core/device.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/infer/embed.h"
#include "qface/infer/int8.h"
#include "qface/infer/precision.h"
#include "qface/io/checkpoint.h"
#include "qface/synth/generate.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;

struct BenchArgs {
  std::string arch = "ir_50";
  int batch = 32;
  int threads = 2;
  int iters = 5;
  int warmup = 2;
  std::vector<std::string> precisions{"fp32"};
  std::string weights;
  bool python = true;
  bool plain = true;
  std::string python_dir;
  std::string json_out;
  bool profile = false;
  std::string device = "cpu";
};

// Runs the Python eager reference; returns its img/s, or a negative value when unavailable.
double python_img_per_s(const BenchArgs& a, std::string& note) {
  nlohmann::json j = run_python_reference(
      "bench_infer.py",
      fmt::format("--arch {} --batch {} --threads {} --iters {} --warmup 1 --device {}", a.arch, a.batch, a.threads,
                  std::max(1, a.iters / 2), a.device),
      a.python_dir, note);
  return j.is_object() && j.contains("img_per_s") ? j["img_per_s"].get<double>() : -1;
}

int run_bench(const BenchArgs& a) {
  require(a.batch > 0 && a.iters > 0 && a.threads > 0, "bench infer: --batch, --iters and --threads must be positive");
  infer::set_threads(a.threads);
  // On a GPU only fp32 runs: the plain NCHW path, Winograd, bf16's guard and
  // int8 are CPU paths. Timings there run from host input to host features.
  const bool cpu = parse_device(a.device).is_cpu();
  for (const std::string& p : a.precisions)
    require(cpu || p == "fp32", "bench infer: --precision {} is a CPU path; on {} only fp32 runs", p, a.device);
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
  report["device"] = a.device;
  std::cout << fmt::format("qface bench infer: {} ({:.2f} GFLOP/image), batch {}, {} threads, {}\n", a.arch, 2 * gmac,
                           a.batch, a.threads, a.device);
  if (a.plain && cpu) {
    auto m = backbones::make_backbone(a.arch);
    infer::InferenceOptions o;
    o.fold_batchnorm(false).channels_last(false);
    infer::prepare_for_inference(*m, o);
    line("qface plain (NCHW, BN unfolded)", best_seconds([&] { infer::embed(*m, x, o); }, 1, std::max(1, a.iters / 2)));
  }
  infer::ModelSpec spec{a.arch, a.weights, a.weights.empty(), infer::Precision::kFp32, a.threads, "bench infer",
                        a.device};
  infer::LoadedModel lm = infer::load_for_inference(spec);
  auto& m = lm.model;
  infer::InferenceOptions o = lm.options;
  if (cpu) {
    infer::InferenceOptions direct = o;
    direct.winograd(false);
    line("qface fp32, direct convolutions", best_seconds([&] { infer::embed(*m, x, direct); }, a.warmup, a.iters));
  }
  const double fast = line("qface fast fp32 (BN folded, NHWC)", best_seconds([&] { infer::embed(*m, x, o); }, a.warmup, a.iters));
  // One more batch under LibTorch's profiler: where a precision's time goes.
  auto profile = [&](const std::string& label, const infer::InferenceOptions& po) {
    if (!a.profile) return;
    const nlohmann::json p = profile_ops([&] { infer::embed(*m, x, po); });
    print_profile(p, nlohmann::json(), 12);
    report[label]["profile"] = p;
  };
  profile("qface fast fp32 (BN folded, NHWC)", o);
  // The guard and int8 calibration use synthetic faces (x is random noise, fine for timing only).
  synth::SynthOptions so;
  so.seed = 11;
  const std::vector<cv::Mat> faces = synth::sample_faces(96, so);
  const torch::Tensor calib = infer::preprocess({faces.begin(), faces.begin() + 64}, m->preprocessing());
  const torch::Tensor check = infer::preprocess({faces.begin() + 64, faces.end()}, m->preprocessing());
  const infer::Embeddings ref = infer::embed(*m, check, o);
  std::optional<io::Int8Calibration> int8 = lm.int8;  // read with the weights
  for (const std::string& name : a.precisions) {
    if (name == "fp32") continue;
    const infer::Precision p = infer::parse_precision(name);
    if (p == infer::Precision::kInt8 && !int8) {
      infer::Calibrator c(m->graph());
      c.observe(calib);
      int8 = infer::calibration_of(c.qparams(), -1, "bench infer: 64 synthetic faces");
      std::cout << "int8: calibrated on 64 synthetic faces (no calibration in the weights)\n";
    }
    infer::InferenceOptions po = o;
    const infer::PrecisionChoice choice = infer::apply_precision(*m, po, p, a.weights, int8,
                                                                       {faces.begin() + 64, faces.end()});
    const std::string label = p == infer::Precision::kAuto
                                  ? fmt::format("qface auto (chose {})", infer::precision_name(choice.precision))
                                  : fmt::format("qface fast {}", name);
    const double ips = line(label, best_seconds([&] { infer::embed(*m, x, po); }, a.warmup, a.iters));
    profile(label, po);
    const infer::GuardResult g = infer::accuracy_guard(ref, infer::embed(*m, check, po));
    std::cout << fmt::format("  {:.2f}x fp32; guard on {} synthetic faces: cosine min {:.4f}, norm error mean {:.3f} % "
                             "max {:.2f} %, Spearman {:.4f}: {}\n",
                             ips / fast, g.images, g.min_cosine, 100 * g.mean_norm_error, 100 * g.max_norm_error,
                             g.norm_spearman, g.passed ? "passes" : "fails (" + g.failure + ")");
    report[label]["ratio_vs_fp32"] = ips / fast;
    report[label]["guard"] = infer::to_json(g);
    if (p == infer::Precision::kAuto) report[label]["reason"] = choice.reason;
    m->set_engine(nullptr);
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
  app.add_option("--device", a->device, "cpu, cuda or cuda:N (both C++ and Python; a GPU runs fp32 only)")
      ->capture_default_str();
  app.add_option("--iters", a->iters, "timed batches (best is reported)")->capture_default_str();
  app.add_option("--warmup", a->warmup, "untimed batches first")->capture_default_str();
  app.add_option("--precision", a->precisions, "precisions to time (comma list of fp32, bf16, int8, auto)")
      ->delimiter(',')
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "int8"}))
      ->capture_default_str();
  app.add_flag_callback("--bf16", [a] { a->precisions.push_back("bf16"); }, "the same as adding bf16 to --precision");
  app.add_option("--weights", a->weights, "time this checkpoint (its int8 calibration too, if any); default: random weights")
      ->check(CLI::ExistingFile);
  app.add_flag("!--no-python", a->python, "skip the Python eager reference");
  app.add_flag("!--no-plain", a->plain, "skip the plain NCHW qface run");
  app.add_option("--python-dir", a->python_dir, "folder of bench_infer.py (default: found next to the build)");
  app.add_option("--json", a->json_out, "also write the numbers as JSON here");
  app.add_flag("--profile", a->profile,
               "profile one more batch of each fast precision (self CPU time per operator, LibTorch's profiler)");
  return [a] { return run_bench(*a); };
}

const Registrar registrar{{"infer", "Inference speed of a backbone (img/s, GFLOP/s, vs Python eager)", setup, "bench"}};

}  // namespace
}  // namespace qface::cli
