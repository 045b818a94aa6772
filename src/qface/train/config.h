// Training configuration: a TOML file (toml++), overridable with `--set
// key=value`, turned into one struct whose defaults are the AdaFace recipe
// (docs/method.md, Training recipe) scaled to a CPU. Unknown keys and wrong
// types are errors naming the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "qface/heads/factory.h"

namespace qface::train {

struct ModelConfig {
  std::string backbone = "mobilefacenet";
  int64_t embedding_size = 512;
  // BatchNorm layers use and keep their running statistics (eval mode) while
  // the rest trains: for fine-tuning, and it makes every sample's forward pass
  // independent of the batch, so data-parallel training equals one process
  // with the same global batch exactly (plain BN normalizes per rank).
  bool freeze_bn = false;
};

struct HeadSection {
  // name + margin options (num_classes comes from the data). head.stats_init
  // is dropped when head.name is not adaface (parse_config).
  heads::HeadConfig head;
  bool sharded = false;      // split the class centres across ranks (Partial FC)
  double sample_rate = 1.0;  // Partial FC negative sampling rate (sharded only)
};

struct DataConfig {
  std::string train;         // RecordIO prefix or .rec path
  int loader_threads = 2;
  double crop_p = 0.2, low_res_p = 0.2, photometric_p = 0.2, flip_p = 0.5;
  bool drop_last = true;
  // Undecodable records are logged and replaced by the next good sample of
  // the rank's share (every rank's batch keeps its size) instead of stopping.
  bool skip_bad = false;
};

struct OptimizerConfig {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 5e-4;  // on every parameter but BatchNorm's, and on the head kernel (AdaFace split_parameters)
};

struct ScheduleConfig {
  std::string type = "multistep";  // multistep | cosine | poly (linear decay to 0)
  double warmup_epochs = 0;        // linear warm-up from 0
  std::vector<double> milestones = {12, 20, 24};  // epochs (multistep)
  double gamma = 0.1;
  double min_lr = 0;               // floor for cosine
};

struct ValidationConfig {
  std::vector<std::string> sets;  // .bin verification sets
  int64_t every = 0;              // steps between validations (0: end of each epoch)
  int64_t batch_size = 64;
};

struct TrainConfig {
  ModelConfig model;
  HeadSection head;
  DataConfig data;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  ValidationConfig validation;
  std::string out_dir = "runs/train";
  int64_t epochs = 26;
  int64_t batch_size = 512;        // global batch (split over ranks)
  int64_t max_steps = 0;           // stop after this many steps (0: all epochs)
  uint64_t seed = 0;
  // cpu, cuda or cuda:N (core/device.h). With several workers, plain cuda
  // gives each its own GPU (cuda:LOCAL_RANK) and the ranks talk over NCCL.
  std::string device = "cpu";
  int threads = 0;                 // intra-op threads per process (0: OMP_NUM_THREADS, else the cores / LOCAL_WORLD_SIZE)
  double grad_clip = 0;            // max gradient norm of the backbone (0: off)
  bool bf16 = false;               // bf16 autocast of the backbone's forward (the head and the loss stay fp32)
  bool winograd = true;            // 3x3 stride-1 convolutions through oneDNN's Winograd kernels (backbones/winograd.h)
  int64_t log_every = 10;          // steps between metrics.jsonl lines
  int64_t checkpoint_every = 500;  // steps between checkpoints (and at each epoch end)
  int64_t keep_checkpoints = 3;
};

// Parses TOML text; `name` is used in errors. `overrides` are "a.b=value"
// strings whose value is TOML (numbers, true/false, "strings", [arrays]) or a
// bare word taken as a string.
TrainConfig parse_config(const std::string& toml_text, const std::string& name,
                         const std::vector<std::string>& overrides = {});
TrainConfig load_config(const std::filesystem::path& path, const std::vector<std::string>& overrides = {});

// The effective configuration as TOML (written next to the checkpoints).
std::string to_toml(const TrainConfig& config);

}  // namespace qface::train
