#include "qface/backbones/winograd.h"
#include "qface/core/torch_compat.h"

#include <ATen/autocast_mode.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <unordered_map>

namespace qface::backbones {
namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

std::atomic<bool> g_on{false};
thread_local bool t_inference = false;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// The primitive descriptors of one shape: all three for training (no bias),
// the forward alone for inference (with or without bias); null when oneDNN
// has no Winograd kernel for the shape on this CPU.
struct Plan {
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_backward_data::primitive_desc bwd_data;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights;
};

enum class Use { kTraining, kInference, kInferenceBias };

struct Key {
  int64_t n, c, k, h, w;
  Use use;
  auto operator<=>(const Key&) const = default;
};

std::unique_ptr<Plan> make_plan(const Key& key) {
  const dnnl::memory::desc src({key.n, key.c, key.h, key.w}, dt::f32, tag::any),
      wei({key.k, key.c, 3, 3}, dt::f32, tag::any), dst({key.n, key.k, key.h, key.w}, dt::f32, tag::any),
      bias({key.k}, dt::f32, tag::any);
  const dnnl::memory::dims one{1, 1};
  const auto wino = dnnl::algorithm::convolution_winograd;
  auto& e = cpu_engine();
  const auto train = dnnl::prop_kind::forward_training;
  // oneDNN 3 (Debian 13) builds a primitive_desc from the engine and the
  // shapes directly; oneDNN 2 (Debian 12) goes through an operation desc.
#if DNNL_VERSION_MAJOR >= 3
  if (key.use != Use::kTraining) {
    // forward_training: with forward_inference oneDNN wants the weights in its
    // transformed Winograd format, a reorder 4x their size on every call.
    return std::make_unique<Plan>(Plan{
        key.use == Use::kInferenceBias
            ? dnnl::convolution_forward::primitive_desc(e, train, wino, src, wei, bias, dst, one, one, one)
            : dnnl::convolution_forward::primitive_desc(e, train, wino, src, wei, dst, one, one, one),
        {}, {}});
  }
  dnnl::convolution_forward::primitive_desc fwd(e, train, wino, src, wei, dst, one, one, one);
  dnnl::convolution_backward_data::primitive_desc bwd_data(e, wino, src, wei, dst, one, one, one, fwd);
  dnnl::convolution_backward_weights::primitive_desc bwd_weights(e, wino, src, wei, dst, one, one, one, fwd);
#else
  if (key.use != Use::kTraining) {
    // forward_training: as above.
    auto d = key.use == Use::kInferenceBias
                 ? dnnl::convolution_forward::desc(train, wino, src, wei, bias, dst, one, one, one)
                 : dnnl::convolution_forward::desc(train, wino, src, wei, dst, one, one, one);
    return std::make_unique<Plan>(Plan{dnnl::convolution_forward::primitive_desc(d, e), {}, {}});
  }
  dnnl::convolution_forward::primitive_desc fwd({train, wino, src, wei, dst, one, one, one}, e);
  dnnl::convolution_backward_data::primitive_desc bwd_data({wino, src, wei, dst, one, one, one}, e, fwd);
  dnnl::convolution_backward_weights::primitive_desc bwd_weights({wino, src, wei, dst, one, one, one}, e, fwd);
#endif
  return std::make_unique<Plan>(Plan{fwd, bwd_data, bwd_weights});
}

const Plan* plan_for(const Key& key) {
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<Plan>> plans;
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second.get();
  std::unique_ptr<Plan> p;
  try {
    p = make_plan(key);
  } catch (const dnnl::error&) {
    p.reset();  // no Winograd kernel here: LibTorch's convolution serves this shape
  }
  return (plans[key] = std::move(p)).get();
}

// A LibTorch N x C x H x W float tensor as oneDNN memory (no copy): nhwc for
// channels_last activations, oihw / ohwi for plain / channels_last weights.
dnnl::memory user_memory(const torch::Tensor& t, bool weights) {
  const bool last = !t.is_contiguous() && t.is_contiguous(torch::MemoryFormat::ChannelsLast);
  const tag f = weights ? (last ? tag::ohwi : tag::oihw) : tag::nhwc;
  return dnnl::memory({{t.size(0), t.size(1), t.size(2), t.size(3)}, dt::f32, f}, cpu_engine(), t.data_ptr<float>());
}

// `from` in the layout `to_desc` wants (a copy only when they differ).
dnnl::memory in_layout(dnnl::stream& s, dnnl::memory from, const dnnl::memory::desc& to_desc) {
  if (from.get_desc() == to_desc) return from;
  dnnl::memory to(to_desc, cpu_engine());
  dnnl::reorder(from, to).execute(s, from, to);
  return to;
}

void copy_out(dnnl::stream& s, dnnl::memory& from, dnnl::memory to) {
  if (from.get_desc() == to.get_desc()) {
    std::memcpy(to.get_data_handle(), from.get_data_handle(), from.get_desc().get_size());
    return;
  }
  dnnl::reorder(from, to).execute(s, from, to);
}

// y = conv(x, weight [, bias]) with the forward primitive of `pd`, as a
// channels_last LibTorch tensor.
torch::Tensor run_forward(const dnnl::convolution_forward::primitive_desc& pd, const torch::Tensor& x,
                          const torch::Tensor& weight, const torch::Tensor& bias) {
  dnnl::stream s(cpu_engine());
  dnnl::memory src = in_layout(s, user_memory(x, false), pd.src_desc());
  dnnl::memory wei = in_layout(s, user_memory(weight, true), pd.weights_desc());
  dnnl::memory dst(pd.dst_desc(), cpu_engine());
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
  if (bias.defined())
    args[DNNL_ARG_BIAS] = dnnl::memory({{bias.size(0)}, dt::f32, tag::x}, cpu_engine(), bias.data_ptr<float>());
  dnnl::convolution_forward(pd).execute(s, args);
  torch::Tensor y = torch::empty({x.size(0), weight.size(0), x.size(2), x.size(3)},
                                 x.options().memory_format(torch::MemoryFormat::ChannelsLast));
  copy_out(s, dst, user_memory(y, false));
  s.wait();
  return y;
}

struct WinogradConv : torch::autograd::Function<WinogradConv> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight) {
    const Plan* p = plan_for({x.size(0), x.size(1), weight.size(0), x.size(2), x.size(3), Use::kTraining});
    ctx->save_for_backward({x, weight});
    return run_forward(p->fwd, x, weight, {});
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor g = grads[0].contiguous(torch::MemoryFormat::ChannelsLast);
    const Plan* p = plan_for({x.size(0), x.size(1), weight.size(0), x.size(2), x.size(3), Use::kTraining});
    dnnl::stream s(cpu_engine());
    const dnnl::memory user_g = user_memory(g, false);
    // g in oneDNN's layout: reordered once when both passes want the same one.
    std::optional<dnnl::memory> dy;
    auto dy_in = [&](const dnnl::memory::desc& d) {
      if (!dy || dy->get_desc() != d) dy = in_layout(s, user_g, d);
      return *dy;
    };
    torch::Tensor gx, gw;
    if (ctx->needs_input_grad(0)) {
      const dnnl::memory dy_data = dy_in(p->bwd_data.diff_dst_desc());
      dnnl::memory wei = in_layout(s, user_memory(weight, true), p->bwd_data.weights_desc());
      dnnl::memory dx(p->bwd_data.diff_src_desc(), cpu_engine());
      dnnl::convolution_backward_data(p->bwd_data)
          .execute(s, {{DNNL_ARG_DIFF_DST, dy_data}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DIFF_SRC, dx}});
      gx = torch::empty_like(x, torch::MemoryFormat::ChannelsLast);
      copy_out(s, dx, user_memory(gx, false));
    }
    if (ctx->needs_input_grad(1)) {
      dnnl::memory src = in_layout(s, user_memory(x, false), p->bwd_weights.src_desc());
      const dnnl::memory dy_weights = dy_in(p->bwd_weights.diff_dst_desc());
      dnnl::memory dw(p->bwd_weights.diff_weights_desc(), cpu_engine());
      dnnl::convolution_backward_weights(p->bwd_weights)
          .execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dy_weights}, {DNNL_ARG_DIFF_WEIGHTS, dw}});
      gw = torch::empty_like(weight, weight.suggest_memory_format());
      copy_out(s, dw, user_memory(gw, true));
    }
    s.wait();
    return {gx, gw};
  }
};

// Which path conv(x) takes, and with which plan (null: LibTorch's).
std::pair<Use, const Plan*> route(const torch::nn::Conv2d& conv, const torch::Tensor& x) {
  const std::pair<Use, const Plan*> none{Use::kTraining, nullptr};
  const auto& o = conv->options;
  const torch::Tensor& w = conv->weight;
  const torch::Tensor& b = conv->bias;  // folded BatchNorm leaves one here
  const bool grad = torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() ||
                                                      (b.defined() && b.requires_grad()));
  if (grad ? !g_on : !t_inference) return none;
  if (grad && b.defined()) return none;
  // Under autocast LibTorch's convolution runs in bf16: leave it that.
  if (compat::autocast_enabled(c10::DeviceType::CPU)) return none;
  auto both = [](const torch::ExpandingArray<2>& a, int64_t v) { return (*a)[0] == v && (*a)[1] == v; };
  if (!both(o.kernel_size(), 3) || !both(o.stride(), 1) || !both(o.dilation(), 1) || o.groups() != 1) return none;
  const auto* pad = compat::get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!pad || !both(*pad, 1)) return none;
  if (x.dim() != 4 || x.scalar_type() != torch::kFloat32 || w.scalar_type() != torch::kFloat32 || !x.is_cpu() ||
      !x.is_contiguous(torch::MemoryFormat::ChannelsLast) || x.size(1) != w.size(1) || x.numel() == 0)
    return none;
  if (!w.is_contiguous() && !w.is_contiguous(torch::MemoryFormat::ChannelsLast)) return none;
  if (b.defined() && (b.scalar_type() != torch::kFloat32 || b.dim() != 1 || !b.is_contiguous())) return none;
  const Use use = grad ? Use::kTraining : b.defined() ? Use::kInferenceBias : Use::kInference;
  return {use, plan_for({x.size(0), x.size(1), w.size(0), x.size(2), x.size(3), use})};
}

}  // namespace

void set_winograd_training(bool on) { g_on = on; }

WinogradInference::WinogradInference(bool on) : prev_(t_inference) { t_inference = on; }
WinogradInference::~WinogradInference() { t_inference = prev_; }

bool winograd_serves(const torch::nn::Conv2d& conv, const torch::Tensor& x) { return route(conv, x).second != nullptr; }

torch::Tensor conv_forward(torch::nn::Conv2d& conv, const torch::Tensor& x) {
  const auto [use, plan] = route(conv, x);
  if (!plan) return conv->forward(x);
  if (use == Use::kTraining) return WinogradConv::apply(x, conv->weight);
  return run_forward(plan->fwd, x, conv->weight, conv->bias);
}

}  // namespace qface::backbones
