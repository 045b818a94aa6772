// SGD with the AdaFace recipe's parameter groups (docs/method.md, Training
// recipe; AdaFace's split_parameters): weight decay on every parameter except
// BatchNorm's (conv and linear weights and biases, PReLU slopes) and on the
// head's class centres; none on BatchNorm weights and biases.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/sgd.h>

#include <memory>
#include <vector>

#include "qface/train/config.h"

namespace qface::train {

struct ParamSplit {
  std::vector<torch::Tensor> decay;
  std::vector<torch::Tensor> no_decay;
};

// BatchNorm parameters of `module` go to `no_decay`, every other parameter to `decay`.
ParamSplit split_for_weight_decay(const torch::nn::Module& module);

// Group 0: decayed parameters (every non-BatchNorm backbone parameter + `extra_decay`,
// e.g. the head kernel); group 1: the rest, without decay.
std::unique_ptr<torch::optim::SGD> make_sgd(const torch::nn::Module& backbone,
                                            const std::vector<torch::Tensor>& extra_decay,
                                            const OptimizerConfig& config);

void set_lr(torch::optim::Optimizer& optimizer, double lr);

}  // namespace qface::train
