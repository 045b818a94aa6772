// qface bench train: training speed (img/s) of backbone + margin head + SGD
// step in qface (channels_last weights and activations, oneDNN), next to the
// same model and head in Python eager (/usr/bin/python3 with torch) in the
// same run, and the ratio. --bf16 also times CPU bf16 autocast.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/qface/bench/profile.h"
#include "apps/qface/bench/util.h"
#include "apps/qface/command.h"
#include "qface/backbones/backbone.h"
#include "qface/backbones/winograd.h"
#include "qface/core/device.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/heads/factory.h"
#include "qface/infer/embed.h"
#include "qface/train/optim.h"
#include "qface/train/trainer.h"

namespace qface::cli {
namespace {

struct BenchTrainArgs {
  std::string arch = "ir_50";
  std::string head = "adaface";
  int batch = 32;
  int64_t classes = 1000;
  int threads = 2;
  int iters = 3;
  int warmup = 1;
  bool channels_last = true;
  bool winograd = true;
  bool bf16 = false;
  bool python = true;
  bool profile = false;
  std::string python_dir;
  std::string json_out;
  std::string device = "cpu";
};

// Seconds per training step (best of iters) and the last loss; with `profile`,
// one more step is profiled into it.
std::pair<double, double> time_training(const BenchTrainArgs& a, bool channels_last, bool bf16,
                                        nlohmann::json* profile = nullptr) {
  torch::manual_seed(0);
  const torch::Device device = parse_device(a.device);
  auto model = backbones::make_backbone(a.arch);
  heads::HeadConfig hc;
  hc.name = a.head;
  hc.num_classes = a.classes;
  auto head = heads::make_head(hc);
  model->to(device);
  head->to(device);
  if (channels_last) backbones::weights_to_channels_last(*model);
  auto sgd = train::make_sgd(*model, {head->kernel}, train::OptimizerConfig{});
  model->train();
  head->train();
  torch::Tensor x = torch::randn({a.batch, 3, 112, 112}).to(device);
  if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  torch::Tensor y = torch::randint(0, a.classes, {a.batch}, torch::kInt64).to(device);
  double loss = 0;
  auto step = [&] {
    auto [e, n] = train::forward_backbone(*model, x, bf16);  // as `qface train` runs it
    torch::Tensor l = head->loss(e, n, y).loss;
    sgd->zero_grad();
    l.backward();
    sgd->step();
    loss = l.item<double>();
  };
  const double sec = best_seconds(step, a.warmup, a.iters);
  if (profile) *profile = profile_ops(step);
  return {sec, loss};
}

int run_bench_train(const BenchTrainArgs& a) {
  require(a.batch > 1 && a.iters > 0 && a.threads > 0 && a.classes > 1,
          "bench train: --batch (> 1), --iters, --threads and --classes (> 1) must be positive");
  infer::set_threads(a.threads);
  backbones::set_winograd_training(a.winograd && parse_device(a.device).is_cpu());  // also checks --device first
  const double gflop = 3 * 2 * backbones::macs_per_image(a.arch) / 1e9;  // forward + backward ~ 3x forward
  nlohmann::json report = {{"arch", a.arch}, {"head", a.head}, {"batch", a.batch}, {"threads", a.threads},
                           {"classes", a.classes}};
  report["device"] = a.device;
  std::cout << fmt::format("qface bench train: {} + {} ({} classes), batch {}, {} threads, SGD momentum, {}\n",
                           a.arch, a.head, a.classes, a.batch, a.threads, a.device);
  auto line = [&](const std::string& name, double sec) {
    const double ips = a.batch / sec;
    std::cout << fmt::format("{:<34} {:8.2f} img/s  ~{:6.1f} GFLOP/s  ({:.3f} s/step)\n", name, ips, ips * gflop, sec);
    report[name] = {{"img_per_s", ips}, {"seconds_per_step", sec}};
    return ips;
  };
  nlohmann::json profile;
  auto [sec, loss] = time_training(a, a.channels_last, false, a.profile ? &profile : nullptr);
  const double fast = line(a.channels_last ? "qface (NHWC, oneDNN)" : "qface (NCHW)", sec);
  if (a.bf16) {
    auto [sec16, loss16] = time_training(a, a.channels_last, true);
    line("qface bf16 autocast", sec16);
    std::cout << fmt::format("loss after the timed steps: fp32 {:.4f}, bf16 {:.4f}\n", loss, loss16);
    report["loss_fp32"] = loss;
    report["loss_bf16"] = loss16;
  }
  if (a.python) {
    std::string note;
    nlohmann::json j = run_python_reference(
        "bench_train.py",
        fmt::format("--arch {} --head {} --batch {} --classes {} --threads {} --iters {} --warmup {} --device {}{}",
                    a.arch, a.head, a.batch, a.classes, a.threads, a.iters, a.warmup, a.device,
                    a.profile ? " --profile" : ""),
        a.python_dir, note);
    if (j.is_object() && j.contains("img_per_s")) {
      const double py = j["img_per_s"].get<double>();
      line("python eager (" + note + ")", a.batch / py);
      std::cout << fmt::format("speed-up of qface over Python eager: {:.2f}x\n", fast / py);
      report["ratio_vs_python"] = fast / py;
      if (j.contains("profile")) report["python_profile"] = j["profile"];
    } else {
      std::cout << "python reference skipped: " << note << "\n";
    }
  }
  if (a.profile) {
    std::cout << "\n";
    print_profile(profile, report.value("python_profile", nlohmann::json()), 16);
    report["profile"] = profile;
  }
  if (!a.json_out.empty()) write_file_atomic(a.json_out, report.dump(2) + "\n");
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<BenchTrainArgs>();
  app.add_option("--arch", a->arch, "backbone")->capture_default_str()->check(CLI::IsMember(backbones::backbone_names()));
  app.add_option("--head", a->head, "margin head")->capture_default_str()->check(CLI::IsMember(heads::head_names()));
  app.add_option("--batch", a->batch, "images per step")->capture_default_str();
  app.add_option("--classes", a->classes, "identities of the head")->capture_default_str();
  app.add_option("--threads", a->threads, "CPU threads (both C++ and Python)")->capture_default_str();
  app.add_option("--device", a->device, "cpu, cuda or cuda:N (both C++ and Python)")->capture_default_str();
  app.add_option("--iters", a->iters, "timed steps (best is reported)")->capture_default_str();
  app.add_option("--warmup", a->warmup, "untimed steps first")->capture_default_str();
  app.add_flag("!--nchw", a->channels_last, "time qface with NCHW instead of channels_last");
  app.add_flag("--winograd,!--no-winograd", a->winograd,
               "3x3 stride-1 convolutions through oneDNN's Winograd kernels (as `qface train` runs them)")
      ->capture_default_str();
  app.add_flag("--bf16", a->bf16, "also time bf16 autocast (loss shown next to fp32)");
  app.add_flag("!--no-python", a->python, "skip the Python eager reference");
  app.add_flag("--profile", a->profile,
               "profile one more step of each (self CPU time per operator, LibTorch's profiler) and print them side by side");
  app.add_option("--python-dir", a->python_dir, "folder of bench_train.py (default: found next to the build)");
  app.add_option("--json", a->json_out, "also write the numbers as JSON here");
  return [a] { return run_bench_train(*a); };
}

const Registrar registrar{{"train", "Training speed (img/s) of backbone + head + SGD vs Python eager", setup, "bench"}};

}  // namespace
}  // namespace qface::cli
