#include "qface/heads/margin_analysis.h"

#include <torch/torch.h>

#include <numeric>

#include "qface/core/error.h"
#include "qface/core/svg_plot.h"
#include "qface/core/tensor_util.h"
#include "qface/heads/adaface.h"
#include "qface/heads/curricularface.h"

namespace qface::heads {

MarginResult analyze_margin(const torch::Tensor& raw_embeddings, const torch::Tensor& labels,
                            const torch::Tensor& kernel, heads::HeadConfig config) {
  require(raw_embeddings.dim() == 2, "embeddings: expected [N, D], got {}", shape_string(raw_embeddings.sizes()));
  require(kernel.dim() == 2, "kernel: expected [D, C], got {}", shape_string(kernel.sizes()));
  require(labels.dim() == 1, "labels: expected [N], got {}", shape_string(labels.sizes()));
  const int64_t n = raw_embeddings.size(0), d = raw_embeddings.size(1), c = kernel.size(1);
  require(n > 0, "embeddings: no samples");
  require(kernel.size(0) == d, "kernel has {} rows but the embeddings have D = {}", kernel.size(0), d);
  require(labels.size(0) == n, "labels has {} entries but the embeddings have N = {}", labels.size(0), n);
  torch::Tensor lab = labels.to(torch::kInt64);
  const int64_t lo = lab.min().item<int64_t>(), hi = lab.max().item<int64_t>();
  require(lo >= 0 && hi < c, "labels must lie in [0, {}) (the kernel's class count), got range [{}, {}]", c, lo, hi);

  config.embedding_size = d;
  config.num_classes = c;
  heads::Head head = heads::make_head(config);
  {
    torch::NoGradGuard no_grad;
    head->kernel.copy_(kernel.to(torch::kFloat32));
  }
  torch::Tensor x = raw_embeddings.to(torch::kFloat32).detach().requires_grad_(true);
  torch::Tensor norm = x.norm(2, 1, true);
  require(norm.min().item<float>() > 0, "embeddings: a row has zero norm");
  heads::LossOutput out = head->loss(x / norm, norm, lab);
  out.loss.backward();

  nlohmann::json r;
  r["head"] = head->name();
  r["n"] = n;
  r["embedding_size"] = d;
  r["num_classes"] = c;
  r["loss"] = out.loss.item<double>();
  r["ce"] = out.ce.item<double>();
  if (config.name == "magface" || config.name == "magface-cos") r["reg"] = out.reg.item<double>();
  r["norm"] = to_json(norm.detach().reshape({n}));
  for (const auto& [name, value] : head->last_terms()) r[name] = to_json(value);
  if (auto* ada = dynamic_cast<heads::AdaFaceImpl*>(head.get())) {
    r["batch_mean"] = ada->batch_mean.item<double>();
    r["batch_std"] = ada->batch_std.item<double>();
  }
  if (auto* cf = dynamic_cast<heads::CurricularFaceImpl*>(head.get())) r["t"] = cf->t.item<double>();
  return {std::move(r), x.grad(), head->kernel.grad()};
}

std::string plot_margin(const nlohmann::json& report) {
  const auto norm = report.at("norm").get<std::vector<double>>();
  std::vector<std::size_t> order(norm.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return norm[a] < norm[b]; });
  auto series = [&](const std::string& key, const std::string& label) {
    const auto v = report.at(key).get<std::vector<double>>();
    PlotSeries s;
    s.label = label;
    for (std::size_t i : order) {
      s.x.push_back(norm[i]);
      s.y.push_back(v[i]);
    }
    return s;
  };
  std::vector<PlotSeries> all;
  if (report.contains("g_ang")) {
    all.push_back(series("g_ang", "angular margin g_ang"));
    all.push_back(series("g_add", "additive margin g_add"));
  } else {
    all.push_back(series("margin", "margin m"));
  }
  PlotOptions o;
  o.title = fmt::format("{}: margin vs feature norm (N = {})", report.at("head").get<std::string>(), norm.size());
  o.x_label = "feature norm ||x||";
  o.y_label = "margin";
  return render_svg(o, all);
}

}  // namespace qface::heads
