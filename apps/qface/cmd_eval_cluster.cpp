// qface eval cluster: k-NN graph clustering (faiss) of a features folder,
// plain and quality-ordered, with pairwise / BCubed F and NMI (eval/cluster.h).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <unordered_map>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/npy.h"
#include "qface/eval/features.h"
#include "qface/eval/cluster.h"

namespace qface::cli {
namespace {
using nlohmann::json;

struct ClusterArgs {
  std::string features, labels, out, name;
  int k = 20;
  std::vector<float> thresholds{0.5f};
  bool quality_ordered = false;
};

int run_cluster(const ClusterArgs& a) {
  eval::Features f = eval::load_features(a.features);
  std::vector<int64_t> truth;
  if (!a.labels.empty()) {
    torch::Tensor t = read_npy(a.labels);
    require(t.dim() == 1 && t.numel() == f.size(), "{}: expected {} labels, got shape of {} values", a.labels, f.size(),
            t.numel());
    t = t.to(torch::kInt64).contiguous();
    truth.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + f.size());
  } else {
    std::unordered_map<std::string, int64_t> ids;
    for (const auto& s : f.files)
      truth.push_back(ids.emplace(eval::label_from_name(s), static_cast<int64_t>(ids.size())).first->second);
  }
  torch::Tensor nq = f.norms.to(torch::kFloat64).contiguous();
  std::vector<double> quality(nq.data_ptr<double>(), nq.data_ptr<double>() + f.size());
  json results = json::array();
  for (float thr : a.thresholds) {
    for (bool qo : {false, true}) {
      if (qo && !a.quality_ordered) continue;
      eval::ClusterOptions o;
      o.k = a.k;
      o.threshold = thr;
      o.quality_ordered = qo;
      std::vector<int64_t> pred = eval::cluster_knn(f.embeddings, o, quality);
      eval::ClusterMetrics m = eval::cluster_metrics(pred, truth);
      spdlog::info("cluster {} threshold {:.2f}: {} clusters for {} labels, pairwise F {:.4f}, BCubed F {:.4f}, NMI {:.4f}",
                   qo ? "quality-ordered" : "components", thr, m.clusters, m.classes, m.pairwise_f, m.bcubed_f, m.nmi);
      results.push_back({{"method", qo ? "quality_ordered" : "connected_components"},
                         {"k", a.k},
                         {"threshold", thr},
                         {"metrics", eval::to_json(m)}});
    }
  }
  eval::write_json(a.out, {{"kind", "eval.cluster"},
                           {"name", a.name.empty() ? eval::features_name(a.features) : a.name},
                           {"results", results}});
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<ClusterArgs>();
  app.add_option("--features", a->features, "features folder")->required()->check(CLI::ExistingDirectory);
  app.add_option("--labels", a->labels, "int64 .npy of true labels (default: file-name prefix before '_')")
      ->check(CLI::ExistingFile);
  app.add_option("--k", a->k, "neighbours of the k-NN graph (faiss)")->capture_default_str();
  app.add_option("--threshold", a->thresholds, "cosine threshold(s) of an edge")->capture_default_str()->delimiter(',');
  app.add_flag("--quality-ordered", a->quality_ordered,
               "also run the quality-ordered variant (feature norm as quality; low quality never bridges clusters)");
  app.add_option("--name", a->name, "model / run name in the report");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  return [a] { return run_cluster(*a); };
}

const Registrar registrar{{"cluster", "k-NN graph clustering (faiss) with pairwise/BCubed F and NMI", setup, "eval"}};

}  // namespace
}  // namespace qface::cli
