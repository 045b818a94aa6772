// qface train: train a backbone with a margin head (see configs/).
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <cstdlib>

#include "apps/qface/command.h"
#include "qface/core/device.h"
#include "qface/core/fs.h"
#include "qface/train/config.h"
#include "qface/train/trainer.h"

namespace qface::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> set;
  std::string device;
  bool resume = false;
};

int run_train(const TrainArgs& a) {
  // The device: --device, else QFACE_DEVICE (set by `qface launch --device`),
  // else the config's `device` key. Checked before any worker rendezvous.
  std::vector<std::string> set = a.set;
  const char* env_device = std::getenv("QFACE_DEVICE");
  if (!a.device.empty()) set.push_back("device=" + a.device);
  else if (env_device && *env_device) set.push_back(std::string("device=") + env_device);
  train::TrainConfig config = train::load_config(a.config, set);
  const train::DistEnv env = train::DistEnv::from_env();
  const torch::Device device = device_for_rank(parse_device(config.device, "device"), env.local_rank);
  auto dist = train::Dist::init(env, device);
  train::TrainSummary s = train::train(config, dist, a.resume);
  if (dist->is_main()) {
    nlohmann::json j = {{"steps", s.steps},
                        {"last_loss", s.last_loss},
                        {"images_per_second", s.images_per_second},
                        {"checkpoint", s.checkpoint.string()},
                        {"model", s.model.string()},
                        {"interrupted", s.interrupted},
                        {"world_size", dist->world_size()},
                        {"validation", s.validation}};
    write_file_atomic(std::filesystem::path(config.out_dir) / "train_summary.json", j.dump(2) + "\n");
    spdlog::info("train: {} steps, last loss {:.4f}, checkpoint {}", s.steps, s.last_loss, s.checkpoint.string());
  }
  return s.interrupted ? 130 : 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  app.add_option("--config", a->config, "TOML training config (see configs/)")->required()->check(CLI::ExistingFile);
  app.add_option("--set", a->set, "override a config key: --set head.m=0.5 --set optimizer.lr=0.05")
      ->allow_extra_args(false);
  app.add_option("--device", a->device, "cpu, cuda or cuda:N (default: the config's `device`, cpu); plain cuda "
                 "gives each worker its own GPU");
  app.add_flag("--resume", a->resume, "continue from the newest checkpoint in <out_dir>/checkpoints");
  app.footer(
      "Data parallel: run under `qface launch --nproc N -- train ...` or set MASTER_ADDR, MASTER_PORT, RANK, "
      "WORLD_SIZE (and LOCAL_RANK) as torchrun does; the ranks talk over NCCL on CUDA devices and Gloo on the CPU "
      "(QFACE_DIST_BACKEND=gloo|nccl forces one). SIGINT/SIGTERM stop after the current step with a checkpoint.");
  return [a] { return run_train(*a); };
}

const Registrar registrar{{"train", "Train a backbone with a margin head (AdaFace, MagFace, ArcFace, CosFace)", setup}};

}  // namespace
}  // namespace qface::cli
