// qface bench ijbs: times the IJB-S-style surveillance protocols (frames ->
// templates under each fusion -> probe x gallery -> rank-k, TPIR@FPIR) at
// IJB-S scale (a million video frames by default) on random features, and the
// NumPy reference (bench/python/ijbs_reference.py) on the same data in the
// same run; prints both, the ratio, and the largest metric difference.
#include <ATen/Parallel.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <random>

#include "apps/qface/bench/util.h"
#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/eval/features.h"
#include "qface/eval/ijbs.h"
#include "qface/eval/ijbs_meta.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct BenchArgs {
  int64_t subjects = 200, unenrolled = 50, videos = 4, frames = 1000, booking = 5, dim = 512;
  double noise = 1.5, similarity = 0.8, video_bias = 0.3;
  uint64_t seed = 0;
  int threads = 2, repeat = 2;
  bool no_python = false;
  std::string python_dir, work_dir, out;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

torch::Tensor i64(const std::vector<int64_t>& v) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())}, torch::kInt64).clone();
}

const std::vector<std::string> kFusions = {"mean", "norm", "topk:5"};

// Per frame or photo, in templates.csv order: its template, subject and quality.
struct Layout {
  std::vector<int64_t> tid, frame_subject, tmpl, tsubj;  // tmpl, tsubj: per template
  std::vector<float> quality;
  std::vector<eval::IjbsProtocolLists> protocols;
};

// Layout as `qface synth` writes it (docs/ijbs.md): per enrolled subject a
// single photo, a booking set and videos; unenrolled subjects have videos
// only. Writes the meta folder into `dir`, to be read back by the real reader
// (timed on its own).
Layout write_layout(const BenchArgs& a, const fs::path& dir) {
  std::mt19937_64 rng(a.seed);
  std::uniform_real_distribution<double> U(0, 1);
  Layout l;
  eval::IjbsTemplatesCsv csv;
  eval::IjbsTemplateRoles roles;
  int64_t next = 1;
  auto add = [&](int64_t t, int64_t s, const std::string& media, int64_t n, double q0, double q1) {
    l.tmpl.push_back(t);
    l.tsubj.push_back(s);
    for (int64_t f = 0; f < n; ++f) {
      l.tid.push_back(t);
      l.frame_subject.push_back(s);
      const double x = n > 1 ? static_cast<double>(f) / static_cast<double>(n - 1) : 0.0;
      l.quality.push_back(static_cast<float>(q0 + (q1 - q0) * x));
      csv.add(t, s, fmt::format("{}/{}_{}.jpg", s, t, f), media);
    }
  };
  for (int64_t s = 1; s <= a.subjects + a.unenrolled; ++s) {
    const bool enrolled = s <= a.subjects;
    if (enrolled) {
      roles.singles.push_back(next);
      add(next++, s, "single", 1, 0.95, 0.95);
      roles.bookings.push_back(next);
      add(next++, s, "booking", a.booking, 0.9, 0.7);
    }
    for (int64_t v = 0; v < a.videos; ++v) {
      // A subject walking through the scene: quality drifts between two draws.
      roles.add_video(next, enrolled, v == 0);
      add(next++, s, "video", a.frames, 0.05 + 0.5 * U(rng), 0.05 + 0.9 * U(rng));
    }
  }
  csv.write(dir);
  l.protocols = eval::ijbs_protocols(roles);
  for (const eval::IjbsProtocolLists& p : l.protocols) eval::write_ijbs_protocol(dir, p);
  return l;
}

struct Features {
  torch::Tensor feats, norms;
};

// The subject's unit centre (centres share a common direction, mean cosine
// `similarity`) scaled by the frame's quality, plus a bias per template (the
// video's scene and pose, which averaging frames cannot remove) and frame
// noise, normalized; the norm grows with quality (as a trained model's).
// Rank-1 is then far from perfect and the fusions differ.
Features make_features(const BenchArgs& a, const Layout& l) {
  const int64_t S = a.subjects + a.unenrolled, D = a.dim, N = static_cast<int64_t>(l.tid.size());
  const int64_t templates = static_cast<int64_t>(l.tmpl.size());
  const torch::Tensor common = eval::l2_normalize(torch::randn({1, D}));
  const double spread = std::sqrt((1 - a.similarity) / std::max(a.similarity, 1e-6));
  torch::Tensor centres = eval::l2_normalize(common + eval::l2_normalize(torch::randn({S + 1, D})).mul_(spread));
  torch::Tensor bias = eval::l2_normalize(torch::randn({templates + 1, D})).mul_(a.video_bias);
  torch::Tensor q = torch::from_blob(const_cast<float*>(l.quality.data()), {N}, torch::kFloat32).clone();
  torch::Tensor feats = centres.index_select(0, i64(l.frame_subject)).mul_(q.unsqueeze(1));
  feats.add_(bias.index_select(0, i64(l.tid)));
  feats.add_(torch::randn({N, D}).mul_(a.noise / std::sqrt(static_cast<double>(D))));
  return {eval::l2_normalize(feats), q.mul(30).add_(torch::rand({N}).mul_(3)).add_(5)};
}

// Times every fusion (best of a.repeat) into j's qface_seconds, qface_stages
// and qface_results. Returns the total seconds.
double time_qface(const eval::IjbsMeta& meta, const Features& f, const BenchArgs& a, json& j) {
  double total = 0;
  for (const std::string& fusion : kFusions) {
    eval::IjbsOptions opt;
    opt.fusion = eval::parse_fusion(fusion);
    eval::IjbsResult r;
    const double s =
        best_seconds([&] { r = eval::evaluate_ijbs(meta, f.feats, f.norms, meta.files, opt); }, 0, a.repeat);
    total += s;
    j["qface_seconds"][fusion] = s;
    for (const auto& [stage, t] : r.timings) j["qface_stages"][fusion][stage] = t;  // of the last run
    for (const auto& p : r.protocols) {
      json m;
      for (auto [k, v] : p.summary.cmc) m["top" + std::to_string(k)] = v;
      for (const auto& t : p.summary.tpir_at_fpir)
        m["tpir"][fmt::format("{}", t.fpir)] = std::isfinite(t.tpir) ? json(t.tpir) : json();
      j["qface_results"][fusion][p.protocol] = m;
    }
    spdlog::info("qface {}: {:.3f} s", fusion, s);
  }
  j["qface_seconds"]["total"] = total;
  return total;
}

// The same protocol on both sides: every rank-k rate and TPIR should agree
// (up to float rounding flipping a near-tie).
double max_metric_difference(const json& ours, const json& theirs, const Layout& l) {
  double max_diff = 0;
  for (const std::string& f : kFusions)
    for (const auto& p : l.protocols) {
      const json& x = ours[f][p.name];
      const json& y = theirs[f][p.name];
      for (const char* k : {"top1", "top5", "top10"})
        max_diff = std::max(max_diff, std::abs(x[k].get<double>() - y[k].get<double>()));
      for (const auto& [fp, v] : x["tpir"].items()) {
        const json& w = y["tpir"][fp];  // "0.01", "0.1" on both sides
        if (v.is_null() != w.is_null()) max_diff = std::max(max_diff, 1.0);
        else if (!v.is_null()) max_diff = std::max(max_diff, std::abs(v.get<double>() - w.get<double>()));
      }
    }
  return max_diff;
}

// Runs bench/python/ijbs_reference.py on the same data (written as .npy into
// dir) and adds its timings, results and the comparison to j.
void run_numpy_reference(const BenchArgs& a, const fs::path& dir, const Layout& l, const Features& f, json& j) {
  write_npy(dir / "feats.npy", f.feats);
  write_npy(dir / "norms.npy", f.norms.to(torch::kFloat32));
  write_npy(dir / "tid.npy", i64(l.tid));
  write_npy(dir / "tmpl.npy", i64(l.tmpl));
  write_npy(dir / "tsubj.npy", i64(l.tsubj));
  std::string names;
  for (const auto& p : l.protocols) {
    write_npy(dir / (p.name + "_probe.npy"), i64(p.probes));
    write_npy(dir / (p.name + "_gallery.npy"), i64(p.gallery));
    names += (names.empty() ? "" : ",") + p.name;
  }
  std::string note;
  const json py = run_python_reference("ijbs_reference.py",
                                       fmt::format("'{}' {} {}", dir.string(), fmt::join(kFusions, ","), names),
                                       a.python_dir, note, a.threads);
  if (py.is_null()) {
    spdlog::warn("bench ijbs: NumPy reference skipped: {}", note);
    return;
  }
  const double py_s = py["seconds"]["total"].get<double>(), total = j["qface_seconds"]["total"].get<double>();
  j["numpy"] = py["numpy"];
  j["numpy_seconds"] = py["seconds"];
  j["numpy_results"] = py["results"];
  j["speedup"] = py_s / total;
  const double max_diff = max_metric_difference(j["qface_results"], py["results"], l);
  j["max_metric_difference"] = max_diff;
  spdlog::info("bench ijbs: numpy {:.2f} s, qface {:.2f} s: {:.1f}x; max |metric difference| {:.2e}", py_s, total,
               py_s / total, max_diff);
}

int run_bench(const BenchArgs& a) {
  require(a.subjects >= 2 && a.unenrolled >= 1 && a.videos >= 2 && a.frames >= 1 && a.booking >= 1 && a.dim >= 2,
          "bench ijbs: need >= 2 subjects, >= 1 unenrolled, >= 2 videos, >= 1 frame and booking photo");
  at::set_num_threads(a.threads);
  torch::manual_seed(a.seed);
  const fs::path dir = a.work_dir.empty() ? fs::temp_directory_path() / fmt::format("qface-bench-ijbs-{}", ::getpid())
                                          : fs::path(a.work_dir);
  ensure_dir(dir);
  struct Cleanup {
    fs::path d;
    bool keep;
    ~Cleanup() {
      std::error_code ec;
      if (!keep) fs::remove_all(d, ec);
    }
  } cleanup{dir, !a.work_dir.empty()};

  auto t_gen = std::chrono::steady_clock::now();
  const Layout l = write_layout(a, dir);
  const Features f = make_features(a, l);
  const int64_t N = static_cast<int64_t>(l.tid.size());
  spdlog::info("bench ijbs: {} frames and photos ({}-d) in {} templates of {} subjects ({} unenrolled), {} threads "
               "(data {:.1f} s)", N, a.dim, l.tmpl.size(), a.subjects + a.unenrolled, a.unenrolled, a.threads,
               seconds_since(t_gen));

  auto t_load = std::chrono::steady_clock::now();
  const eval::IjbsMeta meta = eval::load_ijbs_meta(dir);
  const double load_s = seconds_since(t_load);
  json j{{"kind", "bench.ijbs"}, {"frames", N},         {"templates", l.tmpl.size()}, {"dim", a.dim},
         {"threads", a.threads}, {"load_seconds", load_s}};
  const double total = time_qface(meta, f, a, j);
  if (a.no_python) spdlog::info("bench ijbs: NumPy reference skipped (--no-python)");
  else run_numpy_reference(a, dir, l, f, j);

  std::cout << fmt::format("qface eval ijbs ({} frames, {} templates, fusions {}, {} threads): {:.2f} s "
                           "(+ {:.2f} s reading templates.csv)",
                           N, l.tmpl.size(), fmt::join(kFusions, ", "), a.threads, total, load_s);
  if (j.contains("speedup"))
    std::cout << fmt::format("; numpy reference {:.2f} s; speed-up {:.1f}x; max metric difference {:.1e}",
                             j["numpy_seconds"]["total"].get<double>(), j["speedup"].get<double>(),
                             j["max_metric_difference"].get<double>());
  std::cout << "\n";
  for (const auto& p : l.protocols)
    std::cout << fmt::format("  {} (norm fusion): rank-1 {:.4f}\n", p.name,
                             j["qface_results"]["norm"][p.name]["top1"].get<double>());
  if (!a.out.empty()) eval::write_json(a.out, j);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("--subjects", a->subjects, "enrolled subjects (IJB-S: 202)")->capture_default_str()->check(CLI::Range(2, 1000000));
  app.add_option("--unenrolled", a->unenrolled, "subjects seen only in videos (open-set probes)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--videos", a->videos, "videos per subject")->capture_default_str()->check(CLI::Range(2, 10000));
  app.add_option("--frames", a->frames, "frames per video")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--booking", a->booking, "photos per booking set")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--dim", a->dim, "feature dimension")->capture_default_str()->check(CLI::Range(2, 4096));
  app.add_option("--noise", a->noise, "frame noise norm relative to the unit subject centre")->capture_default_str();
  app.add_option("--similarity", a->similarity, "mean cosine between two subjects' centres")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999));
  app.add_option("--video-bias", a->video_bias, "norm of each template's own bias (scene, pose)")->capture_default_str();
  app.add_option("--threads", a->threads, "threads (ATen pool, and the reference's BLAS)")->capture_default_str();
  app.add_option("--repeat", a->repeat, "timed runs per fusion (best is reported)")->capture_default_str()->check(CLI::Range(1, 100));
  app.add_option("--seed", a->seed, "random seed")->capture_default_str();
  app.add_flag("--no-python", a->no_python, "skip the NumPy reference");
  app.add_option("--python-dir", a->python_dir, "folder of ijbs_reference.py (default: found next to the build)");
  app.add_option("--work-dir", a->work_dir, "keep the generated data here (default: a temporary folder, removed)");
  app.add_option("--out", a->out, "JSON output");
  return [a] { return run_bench(*a); };
}

const Registrar registrar{
    {"ijbs", "Time the IJB-S-scale surveillance protocols (1M frames) against the NumPy reference", setup, "bench"}};

}  // namespace
}  // namespace qface::cli
