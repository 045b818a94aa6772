#include "qface/backbones/winograd.h"

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <tuple>

namespace qface::backbones {
namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

std::atomic<bool> g_on{false};

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// The three primitive descriptors of one shape (N, C, K, H, W); null when
// oneDNN has no Winograd kernel for it on this CPU.
struct Plan {
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_backward_data::primitive_desc bwd_data;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights;
};

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>;

const Plan* plan_for(const Key& key) {
  static std::mutex mu;
  static std::map<Key, std::unique_ptr<Plan>> plans;
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second.get();
  const auto [n, c, k, h, w] = key;
  const dnnl::memory::desc src({n, c, h, w}, dt::f32, tag::any), wei({k, c, 3, 3}, dt::f32, tag::any),
      dst({n, k, h, w}, dt::f32, tag::any);
  const dnnl::memory::dims one{1, 1};
  std::unique_ptr<Plan> p;
  try {
    auto& e = cpu_engine();
    dnnl::convolution_forward::primitive_desc fwd(
        {dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_winograd, src, wei, dst, one, one, one}, e);
    dnnl::convolution_backward_data::primitive_desc bwd_data(
        {dnnl::algorithm::convolution_winograd, src, wei, dst, one, one, one}, e, fwd);
    dnnl::convolution_backward_weights::primitive_desc bwd_weights(
        {dnnl::algorithm::convolution_winograd, src, wei, dst, one, one, one}, e, fwd);
    p = std::make_unique<Plan>(Plan{fwd, bwd_data, bwd_weights});
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

struct WinogradConv : torch::autograd::Function<WinogradConv> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight) {
    const Plan* p = plan_for({x.size(0), x.size(1), weight.size(0), x.size(2), x.size(3)});
    ctx->save_for_backward({x, weight});
    dnnl::stream s(cpu_engine());
    dnnl::memory src = in_layout(s, user_memory(x, false), p->fwd.src_desc());
    dnnl::memory wei = in_layout(s, user_memory(weight, true), p->fwd.weights_desc());
    dnnl::memory dst(p->fwd.dst_desc(), cpu_engine());
    dnnl::convolution_forward(p->fwd).execute(s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    torch::Tensor y = torch::empty({x.size(0), weight.size(0), x.size(2), x.size(3)},
                                   x.options().memory_format(torch::MemoryFormat::ChannelsLast));
    copy_out(s, dst, user_memory(y, false));
    s.wait();
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor g = grads[0].contiguous(torch::MemoryFormat::ChannelsLast);
    const Plan* p = plan_for({x.size(0), x.size(1), weight.size(0), x.size(2), x.size(3)});
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

}  // namespace

void set_winograd_training(bool on) { g_on = on; }

bool winograd_serves(const torch::nn::Conv2d& conv, const torch::Tensor& x) {
  const auto& o = conv->options;
  const torch::Tensor& w = conv->weight;
  if (!g_on || !torch::GradMode::is_enabled() || !(x.requires_grad() || w.requires_grad())) return false;
  auto both = [](const torch::ExpandingArray<2>& a, int64_t v) { return (*a)[0] == v && (*a)[1] == v; };
  if (!both(o.kernel_size(), 3) || !both(o.stride(), 1) || !both(o.dilation(), 1) || o.groups() != 1 || o.bias())
    return false;
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  if (!pad || !both(*pad, 1)) return false;
  if (x.dim() != 4 || x.scalar_type() != torch::kFloat32 || w.scalar_type() != torch::kFloat32 || !x.is_cpu() ||
      !x.is_contiguous(torch::MemoryFormat::ChannelsLast) || x.size(1) != w.size(1) || x.numel() == 0)
    return false;
  if (!w.is_contiguous() && !w.is_contiguous(torch::MemoryFormat::ChannelsLast)) return false;
  return plan_for({x.size(0), x.size(1), w.size(0), x.size(2), x.size(3)}) != nullptr;
}

torch::Tensor train_conv(torch::nn::Conv2d& conv, const torch::Tensor& x) {
  if (!winograd_serves(conv, x)) return conv->forward(x);
  return WinogradConv::apply(x, conv->weight);
}

}  // namespace qface::backbones
