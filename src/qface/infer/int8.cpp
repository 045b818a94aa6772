#include "qface/infer/int8.h"
#include "qface/core/torch_compat.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "qface/core/error.h"

namespace qface::infer {
namespace {
using backbones::GraphStep;
using Op = GraphStep::Op;

// The quantized operators are registered in LibTorch's dispatcher (the same
// ones Python's torch.ao.nn.quantized calls); there is no C++ API for them.
c10::OperatorHandle op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

c10::IValue call(const c10::OperatorHandle& h, std::vector<c10::IValue> stack) {
  h.callBoxed(&stack);
  return stack.at(0);
}

QParams covering(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  QParams q;
  q.scale = std::max((hi - lo) / 255.0, 1e-8);
  q.zero_point = std::clamp<int64_t>(std::llround(-lo / q.scale), 0, 255);
  return q;
}

std::vector<int64_t> vec2(const torch::ExpandingArray<2>& a) { return {(*a)[0], (*a)[1]}; }

}  // namespace

torch::Tensor quantize_quint8(const torch::Tensor& x, const QParams& q) {
  const auto format = x.dim() == 4 && x.is_contiguous(torch::MemoryFormat::ChannelsLast) && !x.is_contiguous()
                          ? torch::MemoryFormat::ChannelsLast
                          : torch::MemoryFormat::Contiguous;
  const torch::Tensor src = x.to(torch::kFloat32).contiguous(format);
  torch::Tensor out = at::_empty_affine_quantized(src.sizes(), src.options().dtype(torch::kQUInt8), q.scale,
                                                  q.zero_point, format);
  const float* in = src.data_ptr<float>();
  auto* o = reinterpret_cast<uint8_t*>(out.data_ptr<c10::quint8>());
  // quantize_val's arithmetic: a float inverse scale, rounding half to even
  // (nearbyint in the default rounding mode), the zero point added in float.
  const float inv = 1.0f / static_cast<float>(q.scale);
  const auto zp = static_cast<float>(q.zero_point);
  at::parallel_for(0, src.numel(), int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float t = zp + std::nearbyint(in[i] * inv);
      t = t >= 0.f ? t : 0.f;  // written so that NaN lands on 0, not in a cast's undefined behaviour
      t = t <= 255.f ? t : 255.f;
      o[i] = static_cast<uint8_t>(t);
    }
  });
  return out;
}

bool int8_supported() {
  const auto& engines = at::globalContext().supportedQEngines();
  if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) == engines.end()) return false;
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  return true;
}

namespace {
constexpr int64_t kSamplePerBatch = 32768, kSampleCap = 262144;

double quantization_mse(const torch::Tensor& x, const QParams& q) {
  const torch::Tensor r = ((x / q.scale).round() + static_cast<double>(q.zero_point)).clamp(0, 255);
  return ((r - static_cast<double>(q.zero_point)) * q.scale - x).square().mean().item<double>();
}
}  // namespace

Calibrator::Calibrator(backbones::Graph graph)
    : graph_(std::move(graph)),
      lo_(static_cast<std::size_t>(graph_.values()), std::numeric_limits<double>::infinity()),
      hi_(static_cast<std::size_t>(graph_.values()), -std::numeric_limits<double>::infinity()),
      samples_(static_cast<std::size_t>(graph_.values())),
      sampled_(static_cast<std::size_t>(graph_.values()), 0) {}

void Calibrator::observe(const torch::Tensor& x) {
  torch::NoGradGuard g;
  // A fixed generator: the same images calibrate to the same file.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(images_) + 1);
  backbones::run_graph(graph_, x.contiguous(torch::MemoryFormat::ChannelsLast), [&](int v, const torch::Tensor& t) {
    const auto i = static_cast<std::size_t>(v);
    auto [mn, mx] = torch::aminmax(t);
    lo_[i] = std::min(lo_[i], mn.item<double>());
    hi_[i] = std::max(hi_[i], mx.item<double>());
    if (sampled_[i] >= kSampleCap) return;
    const torch::Tensor flat = t.reshape({-1});
    const int64_t k = std::min({kSamplePerBatch, flat.numel(), kSampleCap - sampled_[i]});
    samples_[i].push_back(flat.index_select(0, torch::randint(flat.numel(), {k}, gen, torch::kInt64)).to(torch::kFloat64));
    sampled_[i] += k;
  });
  images_ += x.size(0);
}

std::vector<QParams> Calibrator::qparams() const {
  require(images_ > 0, "int8 calibration: no images observed");
  std::vector<QParams> out;
  for (std::size_t v = 0; v < lo_.size(); ++v) {
    const torch::Tensor s = std::get<0>(torch::cat(samples_[v]).sort());
    const int64_t n = s.numel();
    QParams best = covering(lo_[v], hi_[v]);
    double best_mse = quantization_mse(s, best);
    for (double tail : {1e-6, 1e-5, 1e-4, 1e-3, 1e-2}) {
      const auto k = static_cast<int64_t>(tail * static_cast<double>(n));
      const QParams q = covering(s[k].item<double>(), s[n - 1 - k].item<double>());
      const double mse = quantization_mse(s, q);
      if (mse < best_mse) {
        best = q;
        best_mse = mse;
      }
    }
    out.push_back(best);
  }
  return out;
}

struct Int8Engine::Step {
  c10::IValue packed;                         // kConv: oneDNN packed int8 weights + fp32 bias
  torch::Tensor weight, bias, mean, var;      // kBatchNorm (fp32); kPReLU: weight (quint8)
  double eps = 0;
  torch::Tensor shift;                        // added to an fp32 step's output (bias correction)
};

int64_t bias_channels(const backbones::Graph& graph, std::size_t i) {
  GraphStep s = graph.steps().at(i);  // a copy: module holders give non-const access
  if (s.a == 0) return 0;
  switch (s.op) {
    case Op::kConv: return s.conv->options.out_channels();
    case Op::kBatchNorm: return s.bn->options.num_features();
    case Op::kLinear: return s.linear->options.out_features();
    default: return 0;
  }
}

Int8Engine::Int8Engine(backbones::Graph graph, std::vector<QParams> act, int fp32_from, BiasShift shift)
    : graph_(std::move(graph)), act_(std::move(act)), last_(backbones::last_uses(graph_)),
      fp32_from_(fp32_from < 0 ? static_cast<int>(graph_.steps().size()) : fp32_from) {
  require(int8_supported(), "int8: this LibTorch has no oneDNN quantized engine");
  require(static_cast<int>(act_.size()) == graph_.values(), "int8: calibration for {} values, the graph has {}",
          act_.size(), graph_.values());
  require(shift.empty() || shift.size() == graph_.steps().size(), "int8: bias shifts for {} steps, the graph has {}",
          shift.size(), graph_.steps().size());
  for (std::size_t i = 1; i < graph_.steps().size(); ++i)
    require(graph_.steps()[i].a != 0 && graph_.steps()[i].b != 0, "int8: only the first step may read the input");
  for (std::size_t i = 0; i < graph_.steps().size(); ++i)
    steps_.push_back(make_step(i, shift.empty() ? torch::Tensor() : shift[i]));
}

Int8Engine::Step Int8Engine::make_step(std::size_t i, torch::Tensor sh) const {
  torch::NoGradGuard g;
  static const auto prepack = op("quantized::conv2d_prepack", "");
  GraphStep s = graph_.steps()[i];  // a copy: module holders give non-const access
  Step c;
  if (sh.defined()) {
    require(sh.dim() == 1 && sh.numel() > 0 && sh.numel() == bias_channels(graph_, i),
            "int8: bias shift of step {}: {} values where the step has {} correctable channels", i, sh.numel(),
            bias_channels(graph_, i));
    sh = sh.to(torch::kFloat32).contiguous();
  }
  if (runs_fp32(i) || s.op == Op::kLinear) {
    // The fp32 modules run as they are; a shift is added to their output.
    c.shift = sh;
  } else if (s.op == Op::kConv) {
    const auto& o = s.conv->options;
    torch::Tensor w = s.conv->weight.detach().contiguous();
    torch::Tensor scale = (w.abs().amax({1, 2, 3}).to(torch::kFloat64) / 127.0).clamp_min(1e-12);
    torch::Tensor qw = torch::quantize_per_channel(w, scale, torch::zeros({w.size(0)}, torch::kInt64), 0, torch::kQInt8);
    const auto pad = compat::get<torch::ExpandingArray<2>>(o.padding());
    torch::Tensor bias = s.conv->bias.defined() ? s.conv->bias.detach() : torch::Tensor();
    if (sh.defined()) bias = bias.defined() ? bias + sh : sh;
    c.packed = call(prepack, {qw, bias.defined() ? c10::IValue(bias) : c10::IValue(), vec2(o.stride()), vec2(pad),
                              vec2(o.dilation()), o.groups()});
  } else if (s.op == Op::kBatchNorm) {
    c.weight = s.bn->weight.detach();
    c.bias = sh.defined() ? s.bn->bias.detach() + sh : s.bn->bias.detach();
    c.mean = s.bn->running_mean.detach();
    c.var = s.bn->running_var.detach();
    c.eps = s.bn->options.eps();
  } else if (s.op == Op::kPReLU) {
    // LibTorch 1.13's quantized::prelu also represents the identity slope
    // (1, for x > 0) in the weight's quantization: a range without 1
    // saturates it and scales every positive output by max(w) (measured:
    // errors of 2.9 on outputs of 8). So the range always includes [0, 1].
    torch::Tensor w = s.prelu->weight.detach();
    c.weight = quantize_quint8(w, covering(w.min().item<double>(), std::max(1.0, w.max().item<double>())));
  }
  return c;
}

void Int8Engine::set_shift(std::size_t i, const torch::Tensor& shift) { steps_.at(i) = make_step(i, shift); }

Int8Engine::~Int8Engine() = default;

bool Int8Engine::runs_fp32(std::size_t i) const {
  const GraphStep& s = graph_.steps()[i];
  return s.op != Op::kLinear && (static_cast<int>(i) >= fp32_from_ || s.a == 0);
}

torch::Tensor Int8Engine::run(const torch::Tensor& x, const std::function<void(int, const torch::Tensor&)>& observe,
                              int last_step) {
  static const auto conv = op("quantized::conv2d", "new");
  static const auto bn = op("quantized::batch_norm2d", "");
  static const auto prelu = op("quantized::prelu", "");
  static const auto add = op("quantized::add", "");
  torch::NoGradGuard g;
  std::vector<torch::Tensor> v(static_cast<std::size_t>(graph_.values()));
  // The first layer runs in fp32 on the preprocessed image, as is usual:
  // 8-bit pixels through (p / 255 - 0.5) / 0.5 do not land on a quint8 grid
  // (AdaFace's zero point would be 127.5), and the half-level rounding acts
  // like image noise, to which the norm (the quality score) is sensitive
  // (measured: up to 2.6 % on the norm). It is < 1.5 % of the MACs.
  v[0] = x.to(torch::kFloat32).contiguous(torch::MemoryFormat::ChannelsLast);
  for (std::size_t i = 0; i < graph_.steps().size(); ++i) {
    GraphStep s = graph_.steps()[i];  // a copy: module holders give non-const access
    const Step& c = steps_[i];
    const QParams& q = act_[i + 1];
    if (static_cast<int>(i) >= fp32_from_) {
      for (int k : {s.a, s.b})
        if (k >= 0 && v[static_cast<std::size_t>(k)].is_quantized()) v[static_cast<std::size_t>(k)] = v[static_cast<std::size_t>(k)].dequantize();
    }
    const torch::Tensor& a = v[static_cast<std::size_t>(s.a)];
    torch::Tensor y;
    if (runs_fp32(i)) {
      y = backbones::run_step(s, a, s.b >= 0 ? v[static_cast<std::size_t>(s.b)] : torch::Tensor());
    } else switch (s.op) {
      case Op::kConv: y = call(conv, {a, c.packed, q.scale, q.zero_point}).toTensor(); break;
      case Op::kBatchNorm:
        y = call(bn, {a, c.weight, c.bias, c.mean, c.var, c.eps, q.scale, q.zero_point}).toTensor();
        break;
      case Op::kPReLU: y = call(prelu, {a, c.weight, q.scale, q.zero_point}).toTensor(); break;
      case Op::kAdd: y = call(add, {a, v[static_cast<std::size_t>(s.b)], q.scale, q.zero_point}).toTensor(); break;
      case Op::kSubsample:
        y = a.slice(2, 0, a.size(2), s.stride).slice(3, 0, a.size(3), s.stride).contiguous(torch::MemoryFormat::ChannelsLast);
        break;
      case Op::kFloat: y = quantize_quint8(s.fn(a.dequantize()).contiguous(torch::MemoryFormat::ChannelsLast), q); break;
      case Op::kLinear: y = s.linear->forward((a.is_quantized() ? a.dequantize() : a).flatten(1)); break;
    }
    if (c.shift.defined()) y = y + (y.dim() == 4 ? c.shift.view({1, -1, 1, 1}) : c.shift.view({1, -1}));
    if (s.a == 0 && static_cast<int>(i) < fp32_from_ && s.op != Op::kLinear) y = quantize_quint8(y, q);  // into the int8 part
    if (observe) observe(static_cast<int>(i) + 1, y);
    if (static_cast<int>(i) == last_step) return y;
    v[i + 1] = y;
    for (int k : {s.a, s.b})
      if (k >= 0 && last_[static_cast<std::size_t>(k)] == static_cast<int>(i)) v[static_cast<std::size_t>(k)] = torch::Tensor();
  }
  return v.back();
}

void install_int8(backbones::BackboneImpl& model, const std::vector<QParams>& act, int fp32_from,
                  const BiasShift& shift) {
  model.set_engine(std::make_shared<Int8Engine>(model.graph(), act, fp32_from, shift));
}

BiasShift bias_correction(const backbones::Graph& graph, const std::vector<QParams>& act, int fp32_from,
                          const std::vector<torch::Tensor>& batches) {
  require(!batches.empty(), "int8 bias correction: no calibration batches");
  torch::NoGradGuard g;
  const std::size_t steps = graph.steps().size();
  // The per-channel mean of a step's output over the batches (fp64).
  struct Mean {
    torch::Tensor sum;
    double count = 0;
    void add(const torch::Tensor& t) {
      const torch::Tensor f = (t.is_quantized() ? t.dequantize() : t).to(torch::kFloat64);
      const torch::Tensor m = f.dim() == 4 ? f.sum({0, 2, 3}) : f.sum(0);
      sum = sum.defined() ? sum + m : m;
      count += static_cast<double>(f.numel() / f.size(1));
    }
    torch::Tensor get() const { return sum / count; }
  };
  std::vector<torch::Tensor> input;
  for (const torch::Tensor& x : batches) input.push_back(x.contiguous(torch::MemoryFormat::ChannelsLast));
  std::vector<char> fix(steps);
  for (std::size_t i = 0; i < steps; ++i) fix[i] = bias_channels(graph, i) > 0 ? 1 : 0;
  std::vector<Mean> ref(steps);  // fp32's, every correctable step in one pass
  for (const torch::Tensor& x : input)
    backbones::run_graph(graph, x, [&](int v, const torch::Tensor& t) {
      if (v > 0 && fix[static_cast<std::size_t>(v - 1)]) ref[static_cast<std::size_t>(v - 1)].add(t);
    });
  BiasShift shift(steps);
  Int8Engine engine(graph, act, fp32_from);  // each step's shift set as it is measured: one step repacked
  for (std::size_t i = 0; i < steps; ++i) {
    if (!fix[i]) continue;
    Mean got;
    for (const torch::Tensor& x : input) got.add(engine.run(x, {}, static_cast<int>(i)));
    shift[i] = (ref[i].get() - got.get()).to(torch::kFloat32);
    engine.set_shift(i, shift[i]);
  }
  return shift;
}

std::vector<int> stage_starts(const backbones::Graph& g) {
  // A step that reads a value of the previous spatial size and makes a
  // smaller one: the strided convolution (or subsampling) of a stage. The
  // stage starts at the first step that reads that block's input.
  std::vector<int> out;
  for (std::size_t i = 0; i < g.steps().size(); ++i) {
    const auto& s = g.steps()[i];
    const bool strided = (s.op == Op::kConv && (*s.conv->options.stride())[0] > 1) || s.op == Op::kSubsample;
    if (!strided) continue;
    // The block begins at the earliest step that reads the same input as this stride's branch chain.
    int first = static_cast<int>(i);
    for (int j = static_cast<int>(i) - 1; j >= 0; --j) {
      const auto& t = g.steps()[static_cast<std::size_t>(j)];
      if (t.op == Op::kAdd) break;
      first = j;
    }
    if (out.empty() || out.back() != first) out.push_back(first);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace qface::infer
