// qface bench search: gallery search speed on random unit vectors (default
// 1M x 512, as a large deployment): queries/s of exact flat inner product and
// of the approximate ivf / hnsw indexes (the gallery's index kinds), their
// build time, and recall@1 of the approximate ones against the exact answer.
// Queries are noisy copies of random gallery vectors (a probe near its mate,
// cosine ~ 1/sqrt(1 + noise^2)), or plain random vectors with --random-queries.
#include <faiss/Index.h>
#include <omp.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <thread>
#include <iostream>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/threads.h"
#include "qface/deploy/gallery.h"

namespace qface::cli {
namespace {
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct BenchArgs {
  int64_t n = 1'000'000, dim = 512, queries = 1000;
  double noise = 1.0;
  bool random_queries = false;
  std::vector<std::string> indexes{"flat", "ivf", "hnsw"};
  std::vector<int> nprobe{8, 32, 128}, ef_search{32, 128, 512};
  deploy::IndexOptions index;
  int threads = 0;
  std::string json_out;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

torch::Tensor unit_rows(torch::Tensor x) { return (x / x.norm(2, 1, true)).contiguous(); }

int run(const BenchArgs& a) {
  require(a.n > 0 && a.dim > 0 && a.queries > 0, "bench search: --n, --dim and --queries must be positive");
  torch::manual_seed(0);
  auto t0 = Clock::now();
  const torch::Tensor base = unit_rows(torch::randn({a.n, a.dim}));
  torch::Tensor q;
  if (a.random_queries) {
    q = unit_rows(torch::randn({a.queries, a.dim}));
  } else {
    const torch::Tensor mates = torch::randint(a.n, {a.queries}, torch::kInt64);
    q = unit_rows(base.index_select(0, mates) + a.noise * unit_rows(torch::randn({a.queries, a.dim})));
  }
  // After the tensor ops (LibTorch's lazy thread init would reset OpenMP's count).
  use_threads(a.threads);
  std::vector<int64_t> ids(static_cast<std::size_t>(a.n));
  std::iota(ids.begin(), ids.end(), 0);
  std::cout << fmt::format("qface bench search: {} x {} gallery, {} {} queries, {} OpenMP threads (data {:.1f} s)\n",
                           a.n, a.dim, a.queries, a.random_queries ? "random" : fmt::format("mated (noise {})", a.noise),
                           omp_get_max_threads(), seconds_since(t0));
  const float* xb = base.data_ptr<float>();
  const float* xq = q.data_ptr<float>();
  std::vector<int64_t> exact(static_cast<std::size_t>(a.queries));
  json report{{"n", a.n}, {"dim", a.dim}, {"queries", a.queries}, {"random_queries", a.random_queries},
              {"noise", a.noise}, {"threads", omp_get_max_threads()}, {"results", json::array()}};
  auto search = [&](faiss::Index& idx, std::vector<int64_t>& top1) {
    std::vector<float> d(static_cast<std::size_t>(a.queries));
    auto t = Clock::now();
    idx.search(a.queries, xq, 1, d.data(), top1.data());
    return a.queries / seconds_since(t);
  };
  auto line = [&](const std::string& name, const std::string& param, double build_s, double qps, double recall) {
    std::cout << fmt::format("{:<6} {:<14} build {:8.1f} s  {:10.1f} queries/s  recall@1 {:.4f}\n", name, param,
                             build_s, qps, recall)
              << std::flush;
    report["results"].push_back({{"index", name}, {"param", param}, {"build_s", build_s}, {"queries_per_s", qps},
                                 {"recall_at_1", recall}});
  };
  // Exact answer first (always computed: it is the reference).
  {
    deploy::IndexOptions o = a.index;
    o.type = "flat";
    t0 = Clock::now();
    auto idx = deploy::make_index(a.dim, o);
    idx->add_with_ids(a.n, xb, ids.data());
    const double build = seconds_since(t0);
    const double qps = search(*idx, exact);
    line("flat", "exact", build, qps, 1.0);
  }
  for (const std::string& kind : a.indexes) {
    if (kind == "flat") continue;
    require(kind == "ivf" || kind == "hnsw", "bench search: unknown index '{}' (flat, ivf, hnsw)", kind);
    deploy::IndexOptions o = a.index;
    o.type = kind;
    t0 = Clock::now();
    auto idx = deploy::make_index(a.dim, o, xb, a.n);
    // In chunks, with progress: an hnsw build of 1M vectors takes a while.
    const int64_t chunk = std::max<int64_t>(10'000, a.n / 20);
    for (int64_t i = 0; i < a.n; i += chunk) {
      const int64_t m = std::min(chunk, a.n - i);
      idx->add_with_ids(m, xb + i * a.dim, ids.data() + i);
      const double s = seconds_since(t0);
      if (i + m < a.n)
        spdlog::info("bench search: {} build {}/{} vectors, {:.0f} s, about {:.0f} s left", kind, i + m, a.n, s,
                     s / static_cast<double>(i + m) * static_cast<double>(a.n - i - m));
    }
    const double build = seconds_since(t0);
    for (int p : kind == "ivf" ? a.nprobe : a.ef_search) {
      (kind == "ivf" ? o.nprobe : o.ef_search) = p;
      deploy::set_search_parameters(*idx, o);
      std::vector<int64_t> top1(static_cast<std::size_t>(a.queries));
      const double qps = search(*idx, top1);
      int64_t hit = 0;
      for (std::size_t i = 0; i < top1.size(); ++i) hit += top1[i] == exact[i];
      line(kind, fmt::format("{} {}", kind == "ivf" ? "nprobe" : "efSearch", p), build, qps,
           static_cast<double>(hit) / static_cast<double>(a.queries));
    }
  }
  if (!a.json_out.empty()) write_file_atomic(a.json_out, report.dump(2) + "\n");
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("--n", a->n, "gallery vectors")->capture_default_str();
  app.add_option("--dim", a->dim, "dimensions")->capture_default_str();
  app.add_option("--queries", a->queries, "queries")->capture_default_str();
  app.add_option("--noise", a->noise, "query = normalize(mate + noise * random unit vector)")->capture_default_str();
  app.add_flag("--random-queries", a->random_queries, "plain random queries instead of noisy mates");
  app.add_option("--index", a->indexes, "approximate indexes to time (flat is always the reference)")
      ->capture_default_str()->delimiter(',');
  app.add_option("--nlist", a->index.nlist, "ivf lists (0: ~4 sqrt(n))")->capture_default_str();
  app.add_option("--nprobe", a->nprobe, "ivf nprobe values")->capture_default_str()->delimiter(',');
  app.add_option("--hnsw-m", a->index.hnsw_m, "hnsw links per node")->capture_default_str();
  app.add_option("--ef-construction", a->index.ef_construction, "hnsw build breadth")->capture_default_str();
  app.add_option("--ef-search", a->ef_search, "hnsw efSearch values")->capture_default_str()->delimiter(',');
  app.add_option("--threads", a->threads, "OpenMP threads (0: every logical core, or OMP_NUM_THREADS)")->capture_default_str();
  app.add_option("--json", a->json_out, "also write the numbers as JSON here");
  return [a] { return run(*a); };
}

const Registrar registrar{{"search", "Gallery search speed and recall@1: exact flat vs ivf / hnsw (faiss)", setup, "bench"}};

}  // namespace
}  // namespace qface::cli
