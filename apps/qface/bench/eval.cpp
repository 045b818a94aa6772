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
#include <filesystem>
#include <iostream>
#include <numeric>
#include <random>

#include "apps/qface/bench/util.h"
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

// The benchmark's data: image features in templates of subjects, and the
// template pairs to score with their labels.
struct Protocol {
  int64_t subjects = 0, templates = 0, images = 0, dim = 0;
  std::vector<int64_t> tid, mid;  // per image: template and media
  torch::Tensor feats, norms;
  std::vector<int64_t> p1, p2;  // per pair: the two templates
  std::vector<uint8_t> label;   // per pair: 1 genuine
};

// Genuine pairs are two templates of one subject, impostors two of different subjects.
void add_pairs(Protocol& d, const BenchArgs& a, const std::vector<int64_t>& subject_of,
               const std::vector<std::vector<int64_t>>& by_subject, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> any_t(0, d.templates - 1);
  d.p1.resize(a.pairs);
  d.p2.resize(a.pairs);
  d.label.resize(a.pairs);
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
    d.p1[p] = t1;
    d.p2[p] = t2;
    d.label[p] = gen ? (subject_of[t1] == subject_of[t2]) : 0;
  }
}

// Pair lists of IJB are grouped by the first template: sort by t1 (stable counting sort).
void group_by_first_template(Protocol& d) {
  const int64_t T = d.templates, P = static_cast<int64_t>(d.p1.size());
  std::vector<int64_t> cnt(T + 1, 0), order(P);
  for (int64_t p = 0; p < P; ++p) ++cnt[d.p1[p] + 1];
  for (int64_t t = 0; t < T; ++t) cnt[t + 1] += cnt[t];
  for (int64_t p = 0; p < P; ++p) order[cnt[d.p1[p]]++] = p;
  std::vector<int64_t> q1(P), q2(P);
  std::vector<uint8_t> ql(P);
  for (int64_t k = 0; k < P; ++k) {
    q1[k] = d.p1[order[k]];
    q2[k] = d.p2[order[k]];
    ql[k] = d.label[order[k]];
  }
  d.p1.swap(q1);
  d.p2.swap(q2);
  d.label.swap(ql);
}

// Subjects with random unit centres; each template belongs to one subject;
// images = centre + noise (so genuine pairs score higher), 4 media per template.
Protocol make_protocol(const BenchArgs& a) {
  torch::manual_seed(a.seed);
  std::mt19937_64 rng(a.seed);
  Protocol d{.subjects = a.subjects, .templates = a.templates, .images = a.images, .dim = a.dim};
  const int64_t S = a.subjects, T = a.templates, N = a.images, D = a.dim;
  std::vector<int64_t> subject_of(T);
  for (int64_t t = 0; t < T; ++t) subject_of[t] = t % S;
  std::shuffle(subject_of.begin(), subject_of.end(), rng);
  std::vector<std::vector<int64_t>> by_subject(S);
  for (int64_t t = 0; t < T; ++t) by_subject[subject_of[t]].push_back(t);
  d.tid.resize(N);
  d.mid.resize(N);
  std::uniform_int_distribution<int64_t> any_t(0, T - 1), media4(0, 3);
  for (int64_t i = 0; i < N; ++i) {
    d.tid[i] = i < T ? i : any_t(rng);
    d.mid[i] = d.tid[i] * 4 + media4(rng);
  }
  torch::Tensor centres = eval::l2_normalize(torch::randn({S, D}));
  std::vector<int64_t> subj_of_image(N);
  for (int64_t i = 0; i < N; ++i) subj_of_image[i] = subject_of[d.tid[i]];
  torch::Tensor subj = torch::from_blob(subj_of_image.data(), {N}, torch::kInt64);
  d.feats = eval::l2_normalize(centres.index_select(0, subj).add_(torch::randn({N, D}).mul_(a.noise / std::sqrt(double(D)))));
  d.norms = torch::ones({N});
  add_pairs(d, a, subject_of, by_subject, rng);
  if (!a.shuffle_pairs) group_by_first_template(d);
  return d;
}

// qface: the protocol from image features to TAR@FAR, repeated; the best
// run's seconds, every run's, and the best run's stages.
json time_qface(const BenchArgs& a, const Protocol& d, eval::RocResult& roc) {
  const std::vector<double> fars = eval::default_fars();
  std::vector<double> times;
  std::map<std::string, double> stage;
  for (int r = 0; r < a.repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int64_t> rows(d.images);
    std::iota(rows.begin(), rows.end(), 0);
    eval::Templates tpl = eval::build_templates(d.feats, d.norms, rows, d.tid, d.mid, {});
    auto t1 = std::chrono::steady_clock::now();
    eval::Buffer<int32_t> r1 = eval::template_rows(tpl, d.p1), r2 = eval::template_rows(tpl, d.p2);
    auto t2 = std::chrono::steady_clock::now();
    eval::Buffer<float> s = eval::pair_scores(tpl.features, r1, r2);
    auto t3 = std::chrono::steady_clock::now();
    roc = eval::roc_at_far(s, d.label, fars);
    auto t4 = std::chrono::steady_clock::now();
    auto sec = [](auto x, auto y) { return std::chrono::duration<double>(y - x).count(); };
    times.push_back(sec(t0, t4));
    if (r == 0 || sec(t0, t4) <= *std::min_element(times.begin(), times.end())) {
      stage = {{"templates", sec(t0, t1)}, {"pair_index", sec(t1, t2)}, {"pair_scores", sec(t2, t3)}, {"roc", sec(t3, t4)}};
    }
    spdlog::info("qface run {}: {:.3f} s (templates {:.3f}, index {:.3f}, scores {:.3f}, roc {:.3f})", r + 1,
                 sec(t0, t4), sec(t0, t1), sec(t1, t2), sec(t2, t3), sec(t3, t4));
  }
  return {{"qface_seconds", *std::min_element(times.begin(), times.end())}, {"qface_runs", times}, {"qface_stages", stage}};
}

// eval_reference.py: --reference, or found as bench/python's other references are.
fs::path reference_script(const BenchArgs& a) {
  if (!a.reference.empty()) return a.reference;
  const std::string dir = python_script_dir("eval_reference.py", "");
  return dir.empty() ? fs::path() : fs::path(dir) / "eval_reference.py";
}

// The NumPy reference on the same data, in j next to qface's results.
void run_numpy_reference(const BenchArgs& a, const Protocol& d, const eval::RocResult& roc, json& j) {
  const fs::path ref = reference_script(a);
  if (!fs::exists("/usr/bin/python3") || ref.empty() || !fs::exists(ref)) {
    spdlog::warn("bench eval: no /usr/bin/python3 or no {}: reference skipped", ref.string());
    return;
  }
  const fs::path dir = a.work_dir.empty() ? fs::temp_directory_path() / fmt::format("qface-bench-eval-{}", ::getpid())
                                          : fs::path(a.work_dir);
  ensure_dir(dir);
  auto i64 = [](const std::vector<int64_t>& v) { return torch::from_blob(const_cast<int64_t*>(v.data()), {(int64_t)v.size()}, torch::kInt64); };
  write_npy(dir / "feats.npy", d.feats);
  write_npy(dir / "tid.npy", i64(d.tid));
  write_npy(dir / "mid.npy", i64(d.mid));
  write_npy(dir / "p1.npy", i64(d.p1));
  write_npy(dir / "p2.npy", i64(d.p2));
  write_npy(dir / "label.npy", torch::from_blob(const_cast<uint8_t*>(d.label.data()), {(int64_t)d.label.size()}, torch::kUInt8));
  spdlog::info("bench eval: running the NumPy reference ({})", ref.string());
  std::string note;
  const json py = run_python_script(ref, fmt::format("'{}'", dir.string()), a.threads, note);
  if (a.work_dir.empty()) fs::remove_all(dir);
  require(!py.is_null(), "bench eval: the NumPy reference failed: {}", note);
  const double best = j["qface_seconds"].get<double>(), py_s = py["seconds"]["total"].get<double>();
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

int run_bench(const BenchArgs& a) {
  require(a.subjects >= 2, "bench eval: need at least 2 subjects");
  require(a.templates >= 2 * a.subjects, "bench eval: need two templates per subject ({} templates, {} subjects)", a.templates, a.subjects);
  require(a.images >= a.templates, "bench eval: fewer images ({}) than templates ({})", a.images, a.templates);
  require(a.genuine > 0 && a.genuine < a.pairs, "bench eval: genuine pairs must be in (0, pairs)");
  at::set_num_threads(a.threads);
  auto t_gen = std::chrono::steady_clock::now();
  const Protocol d = make_protocol(a);
  const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_gen).count();
  spdlog::info("bench eval: {} images, {} templates, {} subjects, {} pairs ({} genuine), {}-d, {} threads (data {:.1f} s)",
               d.images, d.templates, d.subjects, a.pairs, std::count(d.label.begin(), d.label.end(), 1), d.dim,
               a.threads, gen_s);

  eval::RocResult roc;
  const json timing = time_qface(a, d, roc);
  json j{{"kind", "bench.eval"}, {"images", d.images}, {"templates", d.templates}, {"pairs", a.pairs},
         {"dim", d.dim},         {"threads", a.threads}};
  j.update(timing);
  for (const auto& t : roc.tar_at_far) j["qface_tar_at_far"].push_back({{"far", t.far}, {"tar", t.tar}, {"fpr", t.fpr}});
  if (!a.no_python) run_numpy_reference(a, d, roc, j);

  std::cout << fmt::format("qface eval (IJB 1:1, {} templates, {} pairs, {} threads): {:.3f} s", d.templates, a.pairs,
                           a.threads, j["qface_seconds"].get<double>());
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
