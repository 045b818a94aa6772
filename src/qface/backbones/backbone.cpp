#include "qface/backbones/backbone.h"

#include <torch/library.h>
#include <torch/torch.h>

#include <map>

#include "qface/backbones/fold.h"
#include "qface/backbones/graph.h"
#include "qface/backbones/iresnet.h"
#include "qface/backbones/ir.h"
#include "qface/backbones/mobilefacenet.h"
#include "qface/core/error.h"

namespace qface::backbones {
namespace {
// LibTorch modules initialise their parameters as they are built (kaiming_uniform_
// and the like end in uniform_ or normal_ on the default generator). Python skips
// that with torch.nn.utils.skip_init (meta device); LibTorch has no such switch.
// So: while DispatchKey::CustomRNGKeyId is in a thread's included set (only
// make_backbone_for_weights puts it there), uniform_ and normal_ reach these
// kernels, which leave the tensor as it is, and every other operator falls
// through to its usual kernel. qface has no custom generator that the key would
// otherwise serve.
at::Tensor& keep_values(at::Tensor& self, double, double, c10::optional<at::Generator>) { return self; }
}  // namespace

TORCH_LIBRARY_IMPL(_, CustomRNGKeyId, m) { m.fallback(torch::CppFunction::makeFallthrough()); }
TORCH_LIBRARY_IMPL(aten, CustomRNGKeyId, m) {
  m.impl("uniform_", keep_values);
  m.impl("normal_", keep_values);
}

std::pair<torch::Tensor, torch::Tensor> BackboneImpl::forward(torch::Tensor x) {
  torch::Tensor f = features(std::move(x));
  torch::Tensor norm = f.norm(2, 1, /*keepdim=*/true);
  return {f / norm, norm};
}

Graph BackboneImpl::graph() {
  require(folded_, "{}: the inference graph needs the folded model (fold_batchnorm)", arch_);
  Graph g;
  build_graph(g);
  return g;
}

torch::Tensor BackboneImpl::inference_features(const torch::Tensor& x) {
  return engine_ ? engine_->features(x) : features(x);
}

void BackboneImpl::fold_batchnorm() {
  eval();
  if (folded_) return;
  torch::NoGradGuard no_grad;
  fold_batchnorm_impl();
  folded_ = true;
}

const std::vector<std::string>& backbone_names() {
  static const std::vector<std::string> names = {"ir_18",     "ir_34",     "ir_50",     "ir_101",     "ir_se_50",
                                                 "iresnet18", "iresnet34", "iresnet50", "iresnet100", "mobilefacenet"};
  return names;
}

Backbone make_backbone(const std::string& arch, int64_t embedding_size) {
  require(embedding_size > 0, "backbone {}: embedding size must be positive, got {}", arch, embedding_size);
  static const std::map<std::string, std::vector<int64_t>> units = {
      {"18", {2, 2, 2, 2}}, {"34", {3, 4, 6, 3}}, {"50", {3, 4, 14, 3}}, {"100", {3, 13, 30, 3}}};
  if (arch == "ir_18") return IRNet(arch, units.at("18"), false, embedding_size).ptr();
  if (arch == "ir_34") return IRNet(arch, units.at("34"), false, embedding_size).ptr();
  if (arch == "ir_50") return IRNet(arch, units.at("50"), false, embedding_size).ptr();
  if (arch == "ir_101") return IRNet(arch, units.at("100"), false, embedding_size).ptr();
  if (arch == "ir_se_50") return IRNet(arch, units.at("50"), true, embedding_size).ptr();
  if (arch == "iresnet18") return IResNet(arch, units.at("18"), embedding_size).ptr();
  if (arch == "iresnet34") return IResNet(arch, units.at("34"), embedding_size).ptr();
  if (arch == "iresnet50") return IResNet(arch, units.at("50"), embedding_size).ptr();
  if (arch == "iresnet100") return IResNet(arch, units.at("100"), embedding_size).ptr();
  if (arch == "mobilefacenet") return MobileFaceNet(embedding_size).ptr();
  fail("unknown backbone '{}' (known: {})", arch, fmt::join(backbone_names(), ", "));
}

Backbone make_backbone_for_weights(const std::string& arch, int64_t embedding_size) {
  c10::impl::IncludeDispatchKeyGuard no_random_init(c10::DispatchKey::CustomRNGKeyId);
  return make_backbone(arch, embedding_size);
}

std::vector<std::pair<std::string, torch::Tensor>> state_dict(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

void weights_to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard g;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
}

// Only the layer shapes count here, so the parameters need no values.
double macs_per_image(const std::string& arch) { return make_backbone_for_weights(arch)->macs(); }

double conv_macs(const torch::nn::Conv2d& conv, int64_t out_hw) {
  const auto& o = conv->options;
  const auto k = o.kernel_size();
  return static_cast<double>(o.out_channels()) * (o.in_channels() / o.groups()) * (*k)[0] * (*k)[1] * out_hw *
         out_hw;
}


}  // namespace qface::backbones
