// Face-recognition backbones (docs/method.md, Backbones): 112x112 aligned crops
// in, a 512-d embedding out, returned L2-normalized together with its norm (the
// quality proxy of AdaFace and MagFace). Module and parameter names follow the
// official implementations exactly, so official state dicts map 1:1.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace qface::backbones {

class Graph;

// Another implementation of a folded backbone's features() for inference
// (the int8 engine of infer/int8.h), installed with BackboneImpl::set_engine.
class FeaturesEngine {
 public:
  virtual ~FeaturesEngine() = default;
  virtual torch::Tensor features(const torch::Tensor& x) = 0;
  virtual std::string name() const = 0;  // "int8", ...
};

// How a model family expects its input: images are read as 8-bit BGR (OpenCV)
// and become float CHW `(pixel / 255 - mean) / std` in the channel order given.
struct Preprocessing {
  bool bgr = true;     // AdaFace and MagFace: BGR; InsightFace arcface_torch: RGB
  float mean = 0.5f;   // AdaFace: (x/255 - 0.5) / 0.5
  float std = 0.5f;    // MagFace: mean 0, std 1 (x/255)
};

class BackboneImpl : public torch::nn::Module {
 public:
  BackboneImpl(std::string arch, int64_t embedding_size, Preprocessing preprocessing)
      : arch_(std::move(arch)), embedding_size_(embedding_size), preprocessing_(preprocessing) {}

  // The raw (unnormalized) embedding, N x D, of preprocessed N x 3 x 112 x 112 input.
  virtual torch::Tensor features(torch::Tensor x) = 0;

  // (x / ||x||, ||x||): the normalized embedding N x D and its norm N x 1.
  std::pair<torch::Tensor, torch::Tensor> forward(torch::Tensor x);

  // Folds every BatchNorm that follows a convolution or linear layer (and the
  // BatchNorm before the final linear layer) into that layer's weights and
  // bias, for inference. Puts the module in eval mode; irreversible (the
  // folded model is not meant for training or for saving state dicts).
  // BatchNorms that precede a padded convolution stay (folding them would
  // change the border). Idempotent.
  void fold_batchnorm();
  bool folded() const { return folded_; }

  // The folded model's inference computation as a graph (backbones/graph.h);
  // run_graph of it equals features(). Requires fold_batchnorm().
  Graph graph();

  // Inference features: the installed engine's, else features(). Training
  // (forward) never uses the engine.
  torch::Tensor inference_features(const torch::Tensor& x);
  void set_engine(std::shared_ptr<FeaturesEngine> engine) { engine_ = std::move(engine); }
  const std::shared_ptr<FeaturesEngine>& engine() const { return engine_; }

  // Multiply-accumulates of convolutions and linear layers for one 112x112 image.
  virtual double macs() const = 0;

  const std::string& arch() const { return arch_; }
  int64_t embedding_size() const { return embedding_size_; }
  const Preprocessing& preprocessing() const { return preprocessing_; }

 protected:
  virtual void fold_batchnorm_impl() = 0;
  virtual void build_graph(Graph& g) = 0;
  bool folded_ = false;

 private:
  std::string arch_;
  int64_t embedding_size_;
  Preprocessing preprocessing_;
  std::shared_ptr<FeaturesEngine> engine_;
};
// Shared handle to a backbone (the class is abstract, so no TORCH_MODULE holder).
using Backbone = std::shared_ptr<BackboneImpl>;

// Names accepted by make_backbone: ir_18 ir_34 ir_50 ir_101 ir_se_50
// iresnet18 iresnet34 iresnet50 iresnet100 mobilefacenet.
const std::vector<std::string>& backbone_names();

// Builds a backbone by name (112x112 input); throws qface::Error for an unknown name.
Backbone make_backbone(const std::string& arch, int64_t embedding_size = 512);

// make_backbone without LibTorch's random initialisation of the parameters
// (their values are whatever the allocator gave; BatchNorm buffers still get
// their constants), for a network whose weights are loaded next:
// io::load_state_dict refuses a file that misses any parameter. Leaves the
// default generator where it was. Saves IR-50 ~0.1 s of serial uniform_.
Backbone make_backbone_for_weights(const std::string& arch, int64_t embedding_size = 512);

// The state dict as Python sees it: parameters and buffers by dotted name.
std::vector<std::pair<std::string, torch::Tensor>> state_dict(const torch::nn::Module& module);

// Stores every 4-d parameter (convolution weights) channels_last, so oneDNN
// runs the convolutions in NHWC for training and inference alike.
void weights_to_channels_last(torch::nn::Module& module);

// Multiply-accumulate count of one 112x112 image through `arch` (convolutions
// and linear layers), used to report GFLOP/s (1 MAC = 2 FLOP).
double macs_per_image(const std::string& arch);

// MACs of one conv layer producing an out_hw x out_hw map.
double conv_macs(const torch::nn::Conv2d& conv, int64_t out_hw);

}  // namespace qface::backbones
