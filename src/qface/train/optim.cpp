#include "qface/train/optim.h"

#include <torch/nn/modules/batchnorm.h>
#include <torch/torch.h>

namespace qface::train {

// AdaFace's split_parameters: the parameters of BatchNorm layers are not
// decayed; every other parameter is (conv and linear weights and biases,
// PReLU slopes).
ParamSplit split_for_weight_decay(const torch::nn::Module& module) {
  ParamSplit split;
  for (const auto& m : module.modules(/*include_self=*/true)) {
    const bool batchnorm = dynamic_cast<const torch::nn::BatchNorm1dImpl*>(m.get()) ||
                           dynamic_cast<const torch::nn::BatchNorm2dImpl*>(m.get()) ||
                           dynamic_cast<const torch::nn::BatchNorm3dImpl*>(m.get());
    for (const auto& p : m->named_parameters(/*recurse=*/false)) {
      if (!p.value().requires_grad()) continue;
      (batchnorm ? split.no_decay : split.decay).push_back(p.value());
    }
  }
  return split;
}

std::unique_ptr<torch::optim::SGD> make_sgd(const torch::nn::Module& backbone,
                                            const std::vector<torch::Tensor>& extra_decay,
                                            const OptimizerConfig& c) {
  ParamSplit split = split_for_weight_decay(backbone);
  split.decay.insert(split.decay.end(), extra_decay.begin(), extra_decay.end());
  auto decay = std::make_unique<torch::optim::SGDOptions>(c.lr);
  decay->momentum(c.momentum).weight_decay(c.weight_decay);
  auto plain = std::make_unique<torch::optim::SGDOptions>(c.lr);
  plain->momentum(c.momentum).weight_decay(0.0);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(split.decay, std::move(decay));
  groups.emplace_back(split.no_decay, std::move(plain));
  return std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(c.lr).momentum(c.momentum));
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
}

}  // namespace qface::train
