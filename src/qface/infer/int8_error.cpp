#include "qface/infer/int8_error.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>

#include "qface/core/error.h"

namespace qface::infer {
namespace {
using backbones::GraphStep;
using Op = GraphStep::Op;

const char* op_name(Op op) {
  switch (op) {
    case Op::kConv: return "conv";
    case Op::kBatchNorm: return "bn";
    case Op::kPReLU: return "prelu";
    case Op::kAdd: return "add";
    case Op::kSubsample: return "subsample";
    case Op::kFloat: return "float";
    case Op::kLinear: return "linear";
  }
  return "?";
}

// fp32 run with the listed values rounded to their grids; raw embeddings.
torch::Tensor run_rounded(const backbones::Graph& g, const std::vector<QParams>& act, const torch::Tensor& x,
                          const std::vector<int>& values) {
  std::vector<char> round(static_cast<std::size_t>(g.values()), 0);
  for (int v : values) round[static_cast<std::size_t>(v)] = 1;
  // The observer sees each value as it is made and before any step reads it;
  // the steps it rounds (conv, bn, prelu, add, float) make fresh tensors, so
  // rounding in place changes nothing else.
  return backbones::run_graph(g, x, [&](int v, const torch::Tensor& t) {
    if (!round[static_cast<std::size_t>(v)]) return;
    const QParams& q = act[static_cast<std::size_t>(v)];
    t.copy_(torch::fake_quantize_per_tensor_affine(t, q.scale, q.zero_point, 0, 255));
  });
}

ValueNormError compare(const torch::Tensor& ref, const torch::Tensor& got) {
  const torch::Tensor nr = ref.norm(2, 1).to(torch::kFloat64), ng = got.norm(2, 1).to(torch::kFloat64);
  const torch::Tensor err = ((ng - nr) / nr.clamp_min(1e-12)).abs();
  const torch::Tensor cos =
      (ref * got).sum(1).to(torch::kFloat64) / (nr * ng).clamp_min(1e-24);
  ValueNormError e;
  e.max_norm_error = err.max().item<double>();
  e.mean_norm_error = err.mean().item<double>();
  e.min_cosine = cos.min().item<double>();
  return e;
}
}  // namespace

bool quantized_value(const backbones::Graph& g, int value) {
  if (value <= 0 || value > static_cast<int>(g.steps().size())) return false;
  const Op op = g.steps()[static_cast<std::size_t>(value - 1)].op;
  return op != Op::kSubsample && op != Op::kLinear;
}

namespace {
// The fp32 run every rounded run is compared with, made once per input.
struct Reference {
  torch::Tensor in, ref;
  std::vector<std::string> shapes;  // C x H x W of each value
};

Reference fp32_reference(const backbones::Graph& g, const std::vector<QParams>& act, const torch::Tensor& x) {
  require(static_cast<int>(act.size()) == g.values(), "int8 error: calibration for {} values, the graph has {}",
          act.size(), g.values());
  Reference r;
  r.in = x.contiguous(torch::MemoryFormat::ChannelsLast);
  r.shapes.resize(static_cast<std::size_t>(g.values()));
  r.ref = backbones::run_graph(g, r.in, [&](int v, const torch::Tensor& t) {
    if (t.dim() == 4) r.shapes[static_cast<std::size_t>(v)] = fmt::format("{}x{}x{}", t.size(1), t.size(2), t.size(3));
  });
  return r;
}

std::vector<ValueNormError> by_value(const backbones::Graph& g, const std::vector<QParams>& act, const Reference& r) {
  std::vector<ValueNormError> out;
  for (int v = 1; v < g.values(); ++v) {
    if (!quantized_value(g, v)) continue;
    ValueNormError e = compare(r.ref, run_rounded(g, act, r.in, {v}));
    e.value = v;
    e.op = op_name(g.steps()[static_cast<std::size_t>(v - 1)].op);
    e.shape = r.shapes[static_cast<std::size_t>(v)];
    out.push_back(e);
  }
  return out;
}
}  // namespace

ValueNormError norm_error_of(const backbones::Graph& g, const std::vector<QParams>& act, const torch::Tensor& x,
                             const std::vector<int>& values) {
  torch::NoGradGuard ng;
  const Reference r = fp32_reference(g, act, x);
  return compare(r.ref, run_rounded(g, act, r.in, values));
}

std::vector<ValueNormError> norm_error_by_value(const backbones::Graph& g, const std::vector<QParams>& act,
                                                const torch::Tensor& x) {
  torch::NoGradGuard ng;
  return by_value(g, act, fp32_reference(g, act, x));
}

nlohmann::json int8_error_report(const backbones::Graph& g, const std::vector<QParams>& act, const torch::Tensor& x) {
  torch::NoGradGuard ng;
  const Reference ref = fp32_reference(g, act, x);
  auto row = [](const ValueNormError& e) {
    return nlohmann::json{{"max_norm_error", e.max_norm_error}, {"mean_norm_error", e.mean_norm_error},
                          {"min_cosine", e.min_cosine}};
  };
  auto rounded = [&](const std::vector<int>& values) { return row(compare(ref.ref, run_rounded(g, act, ref.in, values))); };
  nlohmann::json out{{"images", x.size(0)}, {"values", nlohmann::json::array()}, {"stages", nlohmann::json::array()}};
  std::vector<int> all;
  for (const auto& e : by_value(g, act, ref)) {
    nlohmann::json r = row(e);
    r["value"] = e.value;
    r["op"] = e.op;
    r["shape"] = e.shape;
    r["scale"] = act[static_cast<std::size_t>(e.value)].scale;
    r["zero_point"] = act[static_cast<std::size_t>(e.value)].zero_point;
    out["values"].push_back(r);
    all.push_back(e.value);
  }
  std::vector<int> starts = stage_starts(g);  // latest first; value v is made by step v - 1
  std::reverse(starts.begin(), starts.end());
  if (starts.empty() || starts.front() != 0) starts.insert(starts.begin(), 0);
  for (std::size_t k = 0; k < starts.size(); ++k) {
    const int from = starts[k] + 1, to = k + 1 < starts.size() ? starts[k + 1] + 1 : g.values();
    std::vector<int> set;
    for (int v : all)
      if (v >= from && v < to) set.push_back(v);
    nlohmann::json r = rounded(set);
    r["values"] = {from, to - 1};
    r["quantized"] = set.size();
    out["stages"].push_back(r);
  }
  out["all"] = rounded(all);
  return out;
}

}  // namespace qface::infer
