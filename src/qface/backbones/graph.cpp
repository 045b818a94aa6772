#include "qface/backbones/graph.h"

#include <torch/torch.h>

#include "qface/backbones/winograd.h"
#include "qface/core/error.h"

namespace qface::backbones {

int Graph::push(GraphStep s) {
  const int n = values();
  require(s.a >= 0 && s.a < n && s.b < n, "graph: step {} reads a value not yet made", steps_.size());
  require(steps_.empty() || steps_.back().op != GraphStep::Op::kLinear, "graph: the linear layer must be last");
  steps_.push_back(std::move(s));
  return n;
}

namespace {
GraphStep step(GraphStep::Op op, int a, int b = -1) {
  GraphStep s;
  s.op = op;
  s.a = a;
  s.b = b;
  return s;
}
}  // namespace

int Graph::conv(const torch::nn::Conv2d& c, int a) {
  GraphStep s = step(GraphStep::Op::kConv, a);
  s.conv = c;
  return push(std::move(s));
}

int Graph::bn(const torch::nn::BatchNorm2d& b, int a) {
  GraphStep s = step(GraphStep::Op::kBatchNorm, a);
  s.bn = b;
  return push(std::move(s));
}

int Graph::prelu(const torch::nn::PReLU& p, int a) {
  GraphStep s = step(GraphStep::Op::kPReLU, a);
  s.prelu = p;
  return push(std::move(s));
}

int Graph::add(int a, int b) {
  require(b >= 0, "graph: add needs two values");
  return push(step(GraphStep::Op::kAdd, a, b));
}

int Graph::subsample(int a, int64_t stride) {
  if (stride == 1) return a;
  GraphStep s = step(GraphStep::Op::kSubsample, a);
  s.stride = stride;
  return push(std::move(s));
}

int Graph::fp32(std::function<torch::Tensor(const torch::Tensor&)> fn, int a) {
  GraphStep s = step(GraphStep::Op::kFloat, a);
  s.fn = std::move(fn);
  return push(std::move(s));
}

int Graph::linear(const torch::nn::Linear& l, int a) {
  GraphStep s = step(GraphStep::Op::kLinear, a);
  s.linear = l;
  return push(std::move(s));
}

torch::Tensor run_step(GraphStep s, const torch::Tensor& a, const torch::Tensor& b) {
  switch (s.op) {
    case GraphStep::Op::kConv: return conv_forward(s.conv, a);
    case GraphStep::Op::kBatchNorm: return s.bn->forward(a);
    case GraphStep::Op::kPReLU: return s.prelu->forward(a);
    case GraphStep::Op::kAdd: return a + b;
    case GraphStep::Op::kSubsample: return a.slice(2, 0, a.size(2), s.stride).slice(3, 0, a.size(3), s.stride);
    case GraphStep::Op::kFloat: return s.fn(a);
    case GraphStep::Op::kLinear: return s.linear->forward(a.flatten(1));
  }
  fail("graph: unknown step");
}

std::vector<int> last_uses(const Graph& g) {
  std::vector<int> last(static_cast<std::size_t>(g.values()), -1);
  for (std::size_t i = 0; i < g.steps().size(); ++i)
    for (int k : {g.steps()[i].a, g.steps()[i].b})
      if (k >= 0) last[static_cast<std::size_t>(k)] = static_cast<int>(i);
  return last;
}

torch::Tensor run_graph(const Graph& g, const torch::Tensor& x,
                        const std::function<void(int, const torch::Tensor&)>& observe) {
  require(!g.steps().empty() && g.steps().back().op == GraphStep::Op::kLinear, "graph: must end in the linear layer");
  std::vector<torch::Tensor> v(static_cast<std::size_t>(g.values()));
  const std::vector<int> last = last_uses(g);
  v[0] = x;
  if (observe) observe(0, x);
  for (std::size_t i = 0; i < g.steps().size(); ++i) {
    const GraphStep& s = g.steps()[i];
    const torch::Tensor& a = v[static_cast<std::size_t>(s.a)];
    torch::Tensor y = run_step(s, a, s.b >= 0 ? v[static_cast<std::size_t>(s.b)] : torch::Tensor());
    v[i + 1] = y;
    if (observe) observe(static_cast<int>(i) + 1, y);
    for (int k : {s.a, s.b})  // free what no later step reads
      if (k >= 0 && last[static_cast<std::size_t>(k)] == static_cast<int>(i)) v[static_cast<std::size_t>(k)] = torch::Tensor();
  }
  return v.back();
}

}  // namespace qface::backbones
