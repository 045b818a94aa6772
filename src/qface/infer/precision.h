// One precision switch for inference: fp32, bf16 (autocast), int8
// (infer/int8.h) or auto, which picks the fastest precision that passes the
// accuracy guard against fp32 on this CPU, measured once per model file and
// machine and cached under $XDG_CACHE_HOME/qface (~/.cache/qface).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>

#include "qface/backbones/backbone.h"
#include "qface/infer/embed.h"
#include "qface/infer/int8.h"
#include "qface/io/checkpoint.h"

namespace qface::infer {

Precision parse_precision(const std::string& s);  // auto | fp32 | bf16 | int8
const char* precision_name(Precision p);

// What a faster precision must keep, against fp32 on the same images: the
// embedding (every image's cosine to fp32 >= 0.99) and the norm, which is the
// quality score: every image's norm within 1 % of fp32's (the mean is
// reported, not judged: a quality gate decides on single faces), and its
// ranking (Spearman >= 0.995). Non-finite outputs fail.
struct GuardLimits {
  double min_cosine = 0.99;
  double max_norm_error = 0.01;
  double min_spearman = 0.995;
};

struct GuardResult {
  int64_t images = 0;
  double min_cosine = 0, mean_cosine = 0;
  double max_norm_error = 0, mean_norm_error = 0;  // |n - n_fp32| / n_fp32
  int64_t worst_image = 0;                          // where max_norm_error is
  double norm_bias = 0;                             // mean of (n - n_fp32) / n_fp32
  double norm_spearman = 0;
  bool passed = false;
  std::string failure;  // why it failed, in words
};
GuardResult accuracy_guard(const Embeddings& fp32, const Embeddings& other, const GuardLimits& limits = {});
nlohmann::json to_json(const GuardResult& g);

// int8 activation parameters and bias correction to and from a model file's calibration.
std::vector<QParams> qparams_of(const io::Int8Calibration& c);
// One entry per step of `graph`; a clear error when the file's shifts do not fit it.
BiasShift bias_shift_of(const io::Int8Calibration& c, const backbones::Graph& graph);
io::Int8Calibration calibration_of(const std::vector<QParams>& q, int fp32_from, const std::string& info,
                                   const BiasShift& shift = {});
// Installs the Int8Engine a file's calibration describes.
void install_int8(backbones::BackboneImpl& model, const io::Int8Calibration& c);

// The CPU as precision speed sees it: model name and the flags that matter
// (avx512f, avx512_vnni, avx512_bf16, amx_*), e.g. "AMD EPYC | avx512f avx512_vnni avx512_bf16".
std::string cpu_signature();
// $XDG_CACHE_HOME/qface, else $HOME/.cache/qface.
std::filesystem::path cache_dir();

struct PrecisionChoice {
  Precision precision = Precision::kFp32;
  bool from_cache = false;
  std::string reason;           // one line for the log
  nlohmann::json measurements;  // auto: per precision img/s and guard
};

// Applies `precision` to a model prepared for inference (prepare_for_inference):
// fp32 as is; bf16 sets options.bf16; int8 installs the Int8Engine from the
// weights file's calibration (an error naming the file when it has none:
// `qface quantize` makes one); auto measures fp32, bf16 and (with a
// calibration) int8 on `sample` (aligned BGR crops from the caller; empty:
// builtin_precision_sample()), keeps the fastest that passes the
// guard, and caches the choice keyed by the weights file (path, size, mtime),
// architecture, CPU, threads and qface version. `weights` may be empty
// (random weights): auto then measures without caching.
PrecisionChoice apply_precision(backbones::BackboneImpl& model, InferenceOptions& options, Precision precision,
                                const std::filesystem::path& weights,
                                const std::optional<io::Int8Calibration>& int8,
                                const std::vector<cv::Mat>& sample = {});
// The sample `auto` measures on when the caller gives none: 32 smooth random
// 112 x 112 images from a fixed seed (infer renders no faces: it does not
// link the synthetic-face generator).
std::vector<cv::Mat> builtin_precision_sample();

// Everything a command needs for a model: make_backbone, load the weights
// (or random ones, for pipeline tests), prepare for inference, apply the precision.
struct ModelSpec {
  std::string arch;  // empty: the architecture the weights file records (checkpoint_arch)
  std::filesystem::path weights;
  bool random_weights = false;
  Precision precision = Precision::kFp32;
  int threads = 0;
  std::string what = "model";  // the command, in messages
  // cpu, cuda or cuda:N (core/device.h). On a GPU only fp32 runs: bf16's
  // guard, int8 and Winograd are CPU paths.
  std::string device = "cpu";
};
struct LoadedModel {
  backbones::Backbone model;
  InferenceOptions options;
  PrecisionChoice precision;
  std::optional<io::Int8Calibration> int8;  // the weights file's, if it has one
};
LoadedModel load_for_inference(const ModelSpec& spec);

// The backbone a checkpoint records (qface's files, AdaFace's .ckpt, MagFace's
// .pth), checked against the ones qface builds; an error naming the file and
// asking for --arch when it records none or an unknown one.
std::string checkpoint_arch(const io::Checkpoint& checkpoint, const std::filesystem::path& path);

}  // namespace qface::infer
