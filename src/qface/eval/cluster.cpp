#include "qface/eval/cluster.h"

#include <faiss/IndexFlat.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <numeric>
#include <unordered_map>

#include "qface/core/error.h"

namespace qface::eval {
namespace {

struct UnionFind {
  std::vector<int64_t> p;
  explicit UnionFind(int64_t n) : p(n) { std::iota(p.begin(), p.end(), 0); }
  int64_t find(int64_t x) {
    while (p[x] != x) x = p[x] = p[p[x]];
    return x;
  }
  void unite(int64_t a, int64_t b) {
    a = find(a);
    b = find(b);
    if (a != b) p[std::max(a, b)] = std::min(a, b);
  }
};

std::vector<int64_t> densify(const std::vector<int64_t>& raw) {
  std::unordered_map<int64_t, int64_t> id;
  std::vector<int64_t> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = id.emplace(raw[i], static_cast<int64_t>(id.size())).first->second;
  return out;
}

double comb2(double n) { return n * (n - 1) / 2; }

}  // namespace

std::vector<int64_t> cluster_knn(const torch::Tensor& embeddings, const ClusterOptions& o,
                                 std::span<const double> quality) {
  require(embeddings.dim() == 2, "cluster: embeddings must be N x D");
  torch::Tensor e = embeddings.to(torch::kFloat32).contiguous();
  const int64_t n = e.size(0), d = e.size(1);
  require(n > 0, "cluster: no embeddings");
  require(o.k >= 1, "cluster: k must be >= 1");
  require(!o.quality_ordered || static_cast<int64_t>(quality.size()) == n,
          "cluster: quality-ordered clustering needs one quality per row ({} for {} rows)", quality.size(), n);
  auto knn_components = [&](const float* base, int64_t nbase, const std::vector<int64_t>& ids) {
    // Connected components of the thresholded k-NN graph of `nbase` rows.
    const int64_t k = std::min<int64_t>(o.k + 1, nbase);
    faiss::IndexFlatIP index(d);
    index.add(nbase, base);
    std::vector<float> sim(nbase * k);
    // faiss labels are int64_t: Index::idx_t in Debian 12's faiss, faiss::idx_t in 13's.
    std::vector<int64_t> nb(nbase * k);
    index.search(nbase, base, k, sim.data(), nb.data());
    UnionFind uf(nbase);
    for (int64_t i = 0; i < nbase; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const int64_t b = nb[i * k + j];
        if (b >= 0 && b != i && sim[i * k + j] >= o.threshold) uf.unite(i, b);
      }
    std::vector<int64_t> comp(nbase);
    for (int64_t i = 0; i < nbase; ++i) comp[i] = ids.empty() ? uf.find(i) : ids[uf.find(i)];
    return comp;
  };
  std::vector<int64_t> label(n);
  if (!o.quality_ordered) {
    label = knn_components(e.data_ptr<float>(), n, {});
  } else {
    // Core = the top core_fraction by quality, clustered among themselves;
    // every other sample joins the cluster of its most similar core sample
    // when that similarity reaches the threshold. The samples that reach no
    // core sample are clustered among themselves by the same graph, so they
    // form clusters of their own but never bridge two core clusters.
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return quality[a] > quality[b]; });
    const int64_t n_core = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(o.core_fraction * n)), 1, n);
    std::vector<int64_t> core(order.begin(), order.begin() + n_core);
    torch::Tensor ce = e.index_select(0, torch::tensor(core, torch::kInt64)).contiguous();
    std::vector<int64_t> comp = knn_components(ce.data_ptr<float>(), n_core, core);
    for (int64_t i = 0; i < n_core; ++i) label[core[i]] = comp[i];
    const int64_t rest = n - n_core;
    if (rest > 0) {
      std::vector<int64_t> low(order.begin() + n_core, order.end());
      torch::Tensor le = e.index_select(0, torch::tensor(low, torch::kInt64)).contiguous();
      faiss::IndexFlatIP index(d);
      index.add(n_core, ce.data_ptr<float>());
      std::vector<float> sim(rest);
      std::vector<int64_t> nb(rest);
      index.search(rest, le.data_ptr<float>(), 1, sim.data(), nb.data());
      std::vector<int64_t> unattached;
      for (int64_t i = 0; i < rest; ++i) {
        if (nb[i] >= 0 && sim[i] >= o.threshold) label[low[i]] = comp[nb[i]];
        else unattached.push_back(low[i]);
      }
      if (!unattached.empty()) {
        torch::Tensor ue = e.index_select(0, torch::tensor(unattached, torch::kInt64)).contiguous();
        const std::vector<int64_t> ucomp = knn_components(ue.data_ptr<float>(), static_cast<int64_t>(unattached.size()),
                                                          unattached);
        for (std::size_t i = 0; i < unattached.size(); ++i) label[unattached[i]] = n + ucomp[i];  // ids apart from the core's
      }
    }
  }
  return densify(label);
}

ClusterMetrics cluster_metrics(std::span<const int64_t> predicted, std::span<const int64_t> truth) {
  require(predicted.size() == truth.size(), "cluster metrics: {} predictions for {} labels", predicted.size(),
          truth.size());
  require(!predicted.empty(), "cluster metrics: no items");
  const std::vector<int64_t> p = densify({predicted.begin(), predicted.end()});
  const std::vector<int64_t> t = densify({truth.begin(), truth.end()});
  ClusterMetrics m;
  m.items = static_cast<int64_t>(p.size());
  m.clusters = *std::max_element(p.begin(), p.end()) + 1;
  m.classes = *std::max_element(t.begin(), t.end()) + 1;
  std::vector<double> csize(m.clusters, 0), tsize(m.classes, 0);
  std::map<std::pair<int64_t, int64_t>, double> joint;
  for (size_t i = 0; i < p.size(); ++i) {
    csize[p[i]] += 1;
    tsize[t[i]] += 1;
    joint[{p[i], t[i]}] += 1;
  }
  const double n = static_cast<double>(m.items);
  double tp = 0, pred_pairs = 0, true_pairs = 0;
  for (auto& [key, c] : joint) tp += comb2(c);
  for (double c : csize) pred_pairs += comb2(c);
  for (double c : tsize) true_pairs += comb2(c);
  // With no predicted (or true) pairs the precision (recall) is 1 by convention.
  m.pairwise_precision = pred_pairs > 0 ? tp / pred_pairs : 1.0;
  m.pairwise_recall = true_pairs > 0 ? tp / true_pairs : 1.0;
  const double pr = m.pairwise_precision + m.pairwise_recall;
  m.pairwise_f = pr > 0 ? 2 * m.pairwise_precision * m.pairwise_recall / pr : 0.0;
  double bp = 0, br = 0;
  m.bcubed_item_precision.resize(p.size());
  m.bcubed_item_recall.resize(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const double c = joint[{p[i], t[i]}];
    bp += m.bcubed_item_precision[i] = c / csize[p[i]];
    br += m.bcubed_item_recall[i] = c / tsize[t[i]];
  }
  m.bcubed_precision = bp / n;
  m.bcubed_recall = br / n;
  const double bsum = m.bcubed_precision + m.bcubed_recall;
  m.bcubed_f = bsum > 0 ? 2 * m.bcubed_precision * m.bcubed_recall / bsum : 0.0;
  double mi = 0, hc = 0, ht = 0;
  for (auto& [key, c] : joint) mi += c / n * std::log(n * c / (csize[key.first] * tsize[key.second]));
  for (double c : csize) hc -= c / n * std::log(c / n);
  for (double c : tsize) ht -= c / n * std::log(c / n);
  // sklearn: NMI is 1 when both labelings are a single cluster (both entropies 0).
  m.nmi = (hc + ht) > 0 ? mi / ((hc + ht) / 2) : 1.0;
  return m;
}

double bcubed_f(const ClusterMetrics& m, std::span<const int64_t> draw) {
  require(!draw.empty(), "bcubed: no items");
  double bp = 0, br = 0;
  for (int64_t i : draw) {
    bp += m.bcubed_item_precision.at(static_cast<std::size_t>(i));
    br += m.bcubed_item_recall.at(static_cast<std::size_t>(i));
  }
  // F of the means: 2 (bp/n)(br/n) / ((bp + br)/n) = 2 bp br / ((bp + br) n).
  return bp + br > 0 ? 2 * bp * br / ((bp + br) * static_cast<double>(draw.size())) : 0.0;
}

nlohmann::json to_json(const ClusterMetrics& m) {
  return {{"items", m.items},
          {"clusters", m.clusters},
          {"classes", m.classes},
          {"pairwise", {{"precision", m.pairwise_precision}, {"recall", m.pairwise_recall}, {"f", m.pairwise_f}}},
          {"bcubed", {{"precision", m.bcubed_precision}, {"recall", m.bcubed_recall}, {"f", m.bcubed_f}}},
          {"nmi", m.nmi}};
}

}  // namespace qface::eval
