// qface bench eval: times the IJB 1:1 protocol (templates -> pair scores ->
// exact ROC -> TAR@FAR) at IJB-C scale on random features, and runs the NumPy
// reference (bench/python/eval_reference.py) on the same data in the same run
// when /usr/bin/python3 with numpy is present; prints both and the ratio.
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <random>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/eval/features.h"
#include "qface/eval/ijb.h"
#include "qface/eval/roc.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct BenchArgs {
  int64_t templates = 23124, pairs = 15658489, images = 469375, subjects = 3531, genuine = 19557, dim = 512;
  double noise = 8.0;
  uint64_t seed = 0;
  int threads = 2, repeat = 3;
  bool no_python = false, shuffle_pairs = false;
  std::string reference, work_dir, out;
};

fs::path default_reference() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path())
    if (fs::exists(d / "bench/python/eval_reference.py")) return d / "bench/python/eval_reference.py";
  return {};
}

int run_bench(const BenchArgs& a) {
  require(a.subjects >= 2, "bench eval: need at least 2 subjects");
  require(a.templates >= 2 * a.subjects, "bench eval: need two templates per subject ({} templates, {} subjects)", a.templates, a.subjects);
  require(a.images >= a.templates, "bench eval: fewer images ({}) than templates ({})", a.images, a.templates);
  require(a.genuine > 0 && a.genuine < a.pairs, "bench eval: genuine pairs must be in (0, pairs)");
  at::set_num_threads(a.threads);
  torch::manual_seed(a.seed);
  std::mt19937_64 rng(a.seed);
  auto t_gen = std::chrono::steady_clock::now();
  // Subjects with random unit centres; each template belongs to one subject;
  // images = centre + noise (so genuine pairs score higher), 4 media per template.
  const int64_t S = a.subjects, T = a.templates, N = a.images, D = a.dim;
  std::vector<int64_t> subject_of(T);
  for (int64_t t = 0; t < T; ++t) subject_of[t] = t % S;
  std::shuffle(subject_of.begin(), subject_of.end(), rng);
  std::vector<std::vector<int64_t>> by_subject(S);
  for (int64_t t = 0; t < T; ++t) by_subject[subject_of[t]].push_back(t);
  std::vector<int64_t> tid(N), mid(N);
  std::uniform_int_distribution<int64_t> any_t(0, T - 1), media4(0, 3);
  for (int64_t i = 0; i < N; ++i) {
    tid[i] = i < T ? i : any_t(rng);
    mid[i] = tid[i] * 4 + media4(rng);
  }
  torch::Tensor centres = eval::l2_normalize(torch::randn({S, D}));
  std::vector<int64_t> subj_of_image(N);
  for (int64_t i = 0; i < N; ++i) subj_of_image[i] = subject_of[tid[i]];
  torch::Tensor subj = torch::from_blob(subj_of_image.data(), {N}, torch::kInt64);
  torch::Tensor feats = eval::l2_normalize(centres.index_select(0, subj).add_(torch::randn({N, D}).mul_(a.noise / std::sqrt(double(D)))));
  torch::Tensor norms = torch::ones({N});
  // Pairs: genuine = two templates of one subject, impostor = different subjects.
  std::vector<int64_t> p1(a.pairs), p2(a.pairs);
  std::vector<uint8_t> label(a.pairs);
  for (int64_t p = 0; p < a.pairs; ++p) {
    const bool gen = p < a.genuine;
    int64_t t1 = any_t(rng), t2 = any_t(rng);
    if (gen) {
      const auto& ts = by_subject[subject_of[t1]];
      for (int tries = 0; tries < 8 && (t2 = ts[rng() % ts.size()]) == t1; ++tries) {
      }
    } else {
      while (subject_of[t2] == subject_of[t1]) t2 = any_t(rng);
    }
    p1[p] = t1;
    p2[p] = t2;
    label[p] = gen ? (subject_of[t1] == subject_of[t2]) : 0;
  }
  if (!a.shuffle_pairs) {
    // Pair lists of IJB are grouped by the first template: sort by t1 (stable counting sort).
    std::vector<int64_t> cnt(T + 1, 0), order(a.pairs);
    for (int64_t p = 0; p < a.pairs; ++p) ++cnt[p1[p] + 1];
    for (int64_t t = 0; t < T; ++t) cnt[t + 1] += cnt[t];
    for (int64_t p = 0; p < a.pairs; ++p) order[cnt[p1[p]]++] = p;
    std::vector<int64_t> q1(a.pairs), q2(a.pairs);
    std::vector<uint8_t> ql(a.pairs);
    for (int64_t k = 0; k < a.pairs; ++k) {
      q1[k] = p1[order[k]];
      q2[k] = p2[order[k]];
      ql[k] = label[order[k]];
    }
    p1.swap(q1);
    p2.swap(q2);
    label.swap(ql);
  }
  const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_gen).count();
  spdlog::info("bench eval: {} images, {} templates, {} subjects, {} pairs ({} genuine), {}-d, {} threads (data {:.1f} s)",
               N, T, S, a.pairs, std::count(label.begin(), label.end(), 1), D, a.threads, gen_s);

  // qface: the protocol from image features to TAR@FAR, repeated.
  const std::vector<double> fars = eval::default_fars();
  std::vector<double> times;
  std::map<std::string, double> stage;
  eval::RocResult roc;
  for (int r = 0; r < a.repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> rows(N);
    std::iota(rows.begin(), rows.end(), 0);
    eval::Templates tpl = eval::build_templates(feats, norms, rows, tid, mid, {});
    auto t1 = std::chrono::steady_clock::now();
    eval::Buffer<int32_t> r1 = eval::template_rows(tpl, p1), r2 = eval::template_rows(tpl, p2);
    auto t2 = std::chrono::steady_clock::now();
    eval::Buffer<float> s = eval::pair_scores(tpl.features, r1, r2);
    auto t3 = std::chrono::steady_clock::now();
    roc = eval::roc_at_far(s, label, fars);
    auto t4 = std::chrono::steady_clock::now();
    auto sec = [](auto x, auto y) { return std::chrono::duration<double>(y - x).count(); };
    times.push_back(sec(t0, t4));
    if (r == 0 || sec(t0, t4) <= *std::min_element(times.begin(), times.end())) {
      stage = {{"templates", sec(t0, t1)}, {"pair_index", sec(t1, t2)}, {"pair_scores", sec(t2, t3)}, {"roc", sec(t3, t4)}};
    }
    spdlog::info("qface run {}: {:.3f} s (templates {:.3f}, index {:.3f}, scores {:.3f}, roc {:.3f})", r + 1,
                 sec(t0, t4), sec(t0, t1), sec(t1, t2), sec(t2, t3), sec(t3, t4));
  }
  const double best = *std::min_element(times.begin(), times.end());
  json j{{"kind", "bench.eval"},
         {"images", N},
         {"templates", T},
         {"pairs", a.pairs},
         {"dim", D},
         {"threads", a.threads},
         {"qface_seconds", best},
         {"qface_runs", times},
         {"qface_stages", stage}};
  for (const auto& t : roc.tar_at_far) j["qface_tar_at_far"].push_back({{"far", t.far}, {"tar", t.tar}, {"fpr", t.fpr}});

  // NumPy reference on the same data.
  const fs::path ref = a.reference.empty() ? default_reference() : fs::path(a.reference);
  const bool have_python = fs::exists("/usr/bin/python3") && !ref.empty() && fs::exists(ref);
  if (a.no_python || !have_python) {
    if (!a.no_python) spdlog::warn("bench eval: no /usr/bin/python3 or no {}: reference skipped", ref.string());
  } else {
    const fs::path dir = a.work_dir.empty() ? fs::temp_directory_path() / fmt::format("qface-bench-eval-{}", ::getpid())
                                            : fs::path(a.work_dir);
    ensure_dir(dir);
    auto i64 = [](const std::vector<int64_t>& v) { return torch::from_blob(const_cast<int64_t*>(v.data()), {(int64_t)v.size()}, torch::kInt64); };
    write_npy(dir / "feats.npy", feats);
    write_npy(dir / "tid.npy", i64(tid));
    write_npy(dir / "mid.npy", i64(mid));
    write_npy(dir / "p1.npy", i64(p1));
    write_npy(dir / "p2.npy", i64(p2));
    write_npy(dir / "label.npy", torch::from_blob(label.data(), {(int64_t)label.size()}, torch::kUInt8));
    const std::string cmd = fmt::format("OMP_NUM_THREADS={0} OPENBLAS_NUM_THREADS={0} /usr/bin/python3 '{1}' '{2}' 2>&1",
                                        a.threads, ref.string(), dir.string());
    spdlog::info("bench eval: running the NumPy reference ({})", ref.string());
    std::string output;
    if (FILE* pipe = ::popen(cmd.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
      const int rc = ::pclose(pipe);
      if (a.work_dir.empty()) fs::remove_all(dir);
      require(rc == 0, "bench eval: the NumPy reference failed: {}", output.substr(0, 400));
    }
    json py = json::parse(output.substr(output.find('{')));
    const double py_s = py["seconds"]["total"].get<double>();
    j["numpy_seconds"] = py_s;
    j["numpy_stages"] = py["seconds"];
    j["numpy_tar_at_far"] = py["tar_at_far"];
    j["speedup"] = py_s / best;
    double max_diff = 0;
    for (size_t k = 0; k < roc.tar_at_far.size(); ++k)
      max_diff = std::max(max_diff, std::abs(roc.tar_at_far[k].tar - py["tar_at_far"][k]["tar"].get<double>()));
    j["max_tar_difference"] = max_diff;
    spdlog::info("bench eval: numpy {:.2f} s, qface {:.3f} s: {:.1f}x; max |TAR difference| {:.2e}", py_s, best, py_s / best,
                 max_diff);
  }
  std::cout << fmt::format("qface eval (IJB 1:1, {} templates, {} pairs, {} threads): {:.3f} s", T, a.pairs, a.threads, best);
  if (j.contains("numpy_seconds"))
    std::cout << fmt::format("; numpy reference {:.2f} s; speed-up {:.1f}x", j["numpy_seconds"].get<double>(),
                             j["speedup"].get<double>());
  std::cout << "\n";
  for (const auto& t : roc.tar_at_far) std::cout << fmt::format("  TAR@FAR={:.0e}: {:.4f}\n", t.far, t.tar);
  if (!a.out.empty()) eval::write_json(a.out, j);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("--templates", a->templates, "templates (IJB-C: 23124)")->capture_default_str();
  app.add_option("--pairs", a->pairs, "template pairs (IJB-C: 15658489)")->capture_default_str();
  app.add_option("--genuine", a->genuine, "genuine pairs (IJB-C: 19557)")->capture_default_str();
  app.add_option("--images", a->images, "images (IJB-C: 469375)")->capture_default_str();
  app.add_option("--subjects", a->subjects, "subjects (IJB-C: 3531)")->capture_default_str();
  app.add_option("--dim", a->dim, "feature dimension")->capture_default_str();
  app.add_option("--noise", a->noise, "image noise norm relative to the unit subject centre")->capture_default_str();
  app.add_option("--threads", a->threads, "threads (ATen pool)")->capture_default_str();
  app.add_option("--repeat", a->repeat, "timed runs (best is reported)")->capture_default_str();
  app.add_option("--seed", a->seed, "random seed")->capture_default_str();
  app.add_flag("--shuffle-pairs", a->shuffle_pairs, "random pair order (default: grouped by first template, as IJB lists)");
  app.add_flag("--no-python", a->no_python, "skip the NumPy reference");
  app.add_option("--reference", a->reference, "path of eval_reference.py (default: found next to the build)");
  app.add_option("--work-dir", a->work_dir, "keep the generated data here (default: a temporary folder, removed)");
  app.add_option("--out", a->out, "JSON output");
  return [a] { return run_bench(*a); };
}

const Registrar registrar{{"eval", "Time the IJB-C-scale 1:1 protocol against the NumPy reference", setup, "bench"}};

}  // namespace
}  // namespace qface::cli
