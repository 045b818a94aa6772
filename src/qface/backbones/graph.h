// A backbone's inference computation as data: a list of steps over numbered
// values (value 0 is the preprocessed input, step i makes value i + 1). The
// BN-folded fp32 model and its int8 version (infer/int8.h) run the same
// graph, so the int8 path needs no second copy of each architecture, and
// calibration observes exactly the tensors the int8 path quantizes.
#pragma once

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <functional>
#include <vector>

namespace qface::backbones {

struct GraphStep {
  enum class Op {
    kConv,       // conv(a), BN folded into its weights and bias
    kBatchNorm,  // bn(a): a BatchNorm before a padded convolution (cannot be folded)
    kPReLU,      // prelu(a)
    kAdd,        // a + b (residual)
    kSubsample,  // a[:, :, ::stride, ::stride] (MaxPool2d(1, stride))
    kFloat,      // fn(a), always computed in fp32 (a squeeze-excitation gate)
    kLinear,     // linear(flatten(a)): the embedding; the last step
  };
  Op op = Op::kConv;
  int a = -1, b = -1;  // input values
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::PReLU prelu{nullptr};
  torch::nn::Linear linear{nullptr};
  int64_t stride = 1;
  std::function<torch::Tensor(const torch::Tensor&)> fn;
};

class Graph {
 public:
  int conv(const torch::nn::Conv2d& c, int a);
  int bn(const torch::nn::BatchNorm2d& b, int a);
  int prelu(const torch::nn::PReLU& p, int a);
  int add(int a, int b);
  int subsample(int a, int64_t stride);  // returns `a` itself for stride 1
  int fp32(std::function<torch::Tensor(const torch::Tensor&)> fn, int a);
  int linear(const torch::nn::Linear& l, int a);

  const std::vector<GraphStep>& steps() const { return steps_; }
  int values() const { return static_cast<int>(steps_.size()) + 1; }

 private:
  int push(GraphStep s);
  std::vector<GraphStep> steps_;
};

// One step in fp32 on its inputs (b undefined for one-input steps).
torch::Tensor run_step(GraphStep s, const torch::Tensor& a, const torch::Tensor& b);

// For each value, the index of the last step that reads it (-1: none).
std::vector<int> last_uses(const Graph& g);

// Runs the graph in fp32 on preprocessed N x 3 x 112 x 112 input; returns the
// raw embedding (N x D), the same numbers as BackboneImpl::features of the
// folded model. `observe(v, t)`, when given, sees every value as it is made.
torch::Tensor run_graph(const Graph& g, const torch::Tensor& x,
                        const std::function<void(int, const torch::Tensor&)>& observe = {});

}  // namespace qface::backbones
