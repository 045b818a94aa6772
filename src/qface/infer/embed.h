// Fast CPU inference with the backbones: BatchNorm folding, channels_last
// weights and activations (oneDNN convolutions), thread control, optional
// bf16 (autocast) kept only when it matches fp32; preprocessing of aligned
// 112x112 crops; embedding extraction with flip fusion (docs/method.md); the
// `qface embed` job.
#pragma once

#include <opencv2/core/mat.hpp>
#include <torch/arg.h>
#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "qface/backbones/backbone.h"

namespace qface::infer {

// Inference precision (infer/precision.h applies it).
enum class Precision { kAuto, kFp32, kBf16, kInt8 };

struct InferenceOptions {
  TORCH_ARG(bool, fold_batchnorm) = true;
  TORCH_ARG(bool, channels_last) = true;
  TORCH_ARG(bool, bf16) = false;   // autocast to bfloat16; see check_bf16
  // fp32 3x3 stride-1 convolutions through oneDNN's Winograd kernels where the
  // CPU has them (backbones/winograd.h): ~1e-6 relative from direct ones.
  TORCH_ARG(bool, winograd) = true;
  TORCH_ARG(int, threads) = 0;     // intra-op threads; 0 keeps the process default (qface: every logical core)
};

// Autocast to bfloat16 on one device type (the CPU, or CUDA when training
// there) for the scope's lifetime (no-op when `on` is false); restores the
// previous autocast state.
class Bf16Autocast {
 public:
  explicit Bf16Autocast(bool on, c10::DeviceType type = c10::DeviceType::CPU);
  ~Bf16Autocast();
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool on_, was_;
  c10::DeviceType type_;
  int prev_dtype_ = 0;
};

// Sets LibTorch's intra-op thread count (n > 0).
void set_threads(int n);

// Eval mode, folded BatchNorm, channels_last weights (per options). The model
// then only serves inference.
void prepare_for_inference(backbones::BackboneImpl& model, const InferenceOptions& options);

struct Embeddings {
  torch::Tensor embeddings;  // N x D float32, L2-normalized
  torch::Tensor norms;       // N float32, the raw norm (quality proxy)
};

// Runs preprocessed N x 3 x 112 x 112 input through the model (no grad).
Embeddings embed(backbones::BackboneImpl& model, const torch::Tensor& input, const InferenceOptions& options);

// Flip fusion (AdaFace; docs/method.md): f = e * n + e_f * n_f; embedding
// f / ||f||, norm ||f|| (qface::fuse_flip on Embeddings).
Embeddings fuse_flip(const Embeddings& a, const Embeddings& flipped);

// Embeds input and its horizontal flip and fuses them.
Embeddings embed_flip_fused(backbones::BackboneImpl& model, const torch::Tensor& input,
                            const InferenceOptions& options);

// Decodes encoded aligned 112x112 images (e.g. the JPEG bytes of a .bin
// verification set), preprocesses them for the model and embeds them and
// their horizontal flips in batches of `batch`. `source` names the file in
// errors. The model is used as it is (eval mode is the caller's business).
struct PlainAndFlipped {
  Embeddings plain, flipped;
};
// With flip = false only the plain images are embedded (`flipped` stays empty).
PlainAndFlipped embed_encoded(backbones::BackboneImpl& model, const std::vector<std::string>& encoded,
                              const std::string& source, int batch, const InferenceOptions& options,
                              bool flip = true);

// 8-bit BGR images (each 112x112x3) -> float N x 3 x 112 x 112 in the model
// family's channel order and scale.
torch::Tensor preprocess(const std::vector<cv::Mat>& bgr_images, const backbones::Preprocessing& p);

// `qface embed`.
struct EmbedOptions {
  std::string arch;
  std::filesystem::path weights;  // required unless random_weights
  bool random_weights = false;    // no checkpoint (testing pipelines only)
  std::filesystem::path images;   // a folder (its image files, sorted) or a text file with one path per line
  std::filesystem::path out;
  // Embeddings fused with the flipped image's, norms of the fused features (docs/method.md, Flip fusion).
  bool flip_fuse = true;
  bool resize = false;  // resize other sizes to 112x112 instead of rejecting them
  bool strict = false;  // unreadable images are fatal instead of skipped
  Precision precision = Precision::kFp32;
  int batch = 32;
  int threads = 0;
  std::string device = "cpu";  // cpu, cuda or cuda:N (fp32 only on a GPU)
};

struct EmbedSummary {
  std::size_t embedded = 0;
  std::vector<std::string> skipped;  // unreadable inputs
};

// Writes out/embeddings.npy (N x D float32), out/norms.npy (N float32),
// out/features.json ({"mode": "flip_fused" | "plain", "arch", "precision"}),
// out/files.txt (the N inputs in order) and, when some were skipped,
// out/skipped.txt. Throws qface::Error on bad input.
EmbedSummary run_embed(const EmbedOptions& options);

// The image files of a folder (sorted); one image file (by its content, not
// its name); or a list file, one path per line (a binary file that is no
// image is an error naming the line).
std::vector<std::string> list_images(const std::filesystem::path& images);

}  // namespace qface::infer
