// Face clustering (MagFace's experiment, docs/method.md): a k-NN graph from faiss
// (exact inner-product search on normalized embeddings), edges kept when the
// cosine is at least a threshold, clusters = connected components (union-find).
// The quality-ordered variant (MagFace: high-magnitude samples are reliable
// seeds) clusters only the highest-quality `core_fraction` of the samples by
// the same graph, then attaches every other sample to the cluster of its most
// similar core sample (when at least the threshold); the rest are clustered
// among themselves. Low-quality samples join clusters but never bridge two
// core clusters.
// Metrics against labels: pairwise precision/recall/F, BCubed P/R/F, NMI
// (arithmetic normalization, sklearn's default). Hand-written metrics.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <span>
#include <vector>

namespace qface::eval {

struct ClusterOptions {
  int k = 20;               // neighbours per sample (excluding itself)
  float threshold = 0.5f;   // cosine similarity of an edge
  bool quality_ordered = false;
  double core_fraction = 0.5;  // quality-ordered: share of samples (highest quality) that may link clusters
};

// Returns a cluster id per row (0-based, dense). quality is needed for the
// quality-ordered variant (one value per row, higher = better).
std::vector<int64_t> cluster_knn(const torch::Tensor& embeddings, const ClusterOptions& options,
                                 std::span<const double> quality = {});

struct ClusterMetrics {
  int64_t items = 0, clusters = 0, classes = 0;
  double pairwise_precision = 0, pairwise_recall = 0, pairwise_f = 0;
  double bcubed_precision = 0, bcubed_recall = 0, bcubed_f = 0;
  double nmi = 0;
  // Per item (in input order): the BCubed precision (share of its predicted
  // cluster with its label) and recall (share of its label in its cluster);
  // their means are bcubed_precision / bcubed_recall (for item bootstraps).
  std::vector<double> bcubed_item_precision, bcubed_item_recall;
};

// BCubed F of the items in `draw` (indices, repeats allowed) from the per-item values.
double bcubed_f(const ClusterMetrics& m, std::span<const int64_t> draw);

ClusterMetrics cluster_metrics(std::span<const int64_t> predicted, std::span<const int64_t> truth);

nlohmann::json to_json(const ClusterMetrics& m);

}  // namespace qface::eval
