// qface eval rank: TinyFace-style rank-k identification, probes against a
// gallery with distractors (eval/rank.h).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/eval/features.h"
#include "qface/eval/rank.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct RankArgs {
  std::string features, probe, gallery, distractors, out, name;
  std::vector<int> ks{1, 5, 20};
};

int run_rank(const RankArgs& a) {
  torch::Tensor probe, gallery, distractors;
  std::vector<std::string> pl, gl;
  if (!a.features.empty()) {
    require(a.probe.empty() && a.gallery.empty(), "eval rank: give --features, or --probe and --gallery, not both");
    eval::Features f = eval::load_features(a.features);
    std::vector<int64_t> pi, gi, di;
    for (int64_t i = 0; i < f.size(); ++i) {
      const std::string split = fs::path(f.files[i]).parent_path().filename().string();
      if (split == "probe") pi.push_back(i);
      else if (split == "gallery") gi.push_back(i);
      else if (split == "distractor" || split == "distractors") di.push_back(i);
      else fail("{}/files.txt:{}: '{}' is not under probe/, gallery/ or distractor/", a.features, i + 1, f.files[i]);
    }
    auto take = [&](const std::vector<int64_t>& idx) {
      return f.embeddings.index_select(0, torch::tensor(idx, torch::kInt64));
    };
    require(!pi.empty() && !gi.empty(), "{}: no probe/ or no gallery/ images in files.txt", a.features);
    probe = take(pi);
    gallery = take(gi);
    if (!di.empty()) distractors = take(di);
    for (auto i : pi) pl.push_back(eval::label_from_name(f.files[i]));
    for (auto i : gi) gl.push_back(eval::label_from_name(f.files[i]));
  } else {
    require(!a.probe.empty() && !a.gallery.empty(), "eval rank: give --probe DIR and --gallery DIR (or --features DIR)");
    eval::Features p = eval::load_features(a.probe), g = eval::load_features(a.gallery);
    probe = p.embeddings;
    gallery = g.embeddings;
    for (const auto& s : p.files) pl.push_back(eval::label_from_name(s));
    for (const auto& s : g.files) gl.push_back(eval::label_from_name(s));
    if (!a.distractors.empty()) distractors = eval::load_features(a.distractors).embeddings;
  }
  eval::RankResult r = eval::rank_identification(probe, pl, gallery, gl, distractors, a.ks);
  for (auto [k, v] : r.rank_accuracy) spdlog::info("rank-{}: {:.4f}", k, v);
  json j{{"kind", "eval.rank"},
         {"name", a.name.empty() ? eval::features_name(a.features.empty() ? a.probe : a.features) : a.name},
         {"result", eval::to_json(r)}};
  eval::write_json(a.out, j);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<RankArgs>();
  app.add_option("--features", a->features, "one features folder whose files are under probe/, gallery/, distractor/")
      ->check(CLI::ExistingDirectory);
  app.add_option("--probe", a->probe, "features folder of the probes")->check(CLI::ExistingDirectory);
  app.add_option("--gallery", a->gallery, "features folder of the gallery")->check(CLI::ExistingDirectory);
  app.add_option("--distractors", a->distractors, "features folder of the distractors")->check(CLI::ExistingDirectory);
  app.add_option("--ranks", a->ks, "ranks k to report")->capture_default_str()->delimiter(',');
  app.add_option("--name", a->name, "model / run name in the report");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  return [a] { return run_rank(*a); };
}

const Registrar registrar{{"rank", "TinyFace-style rank-1/5/20 identification with distractors", setup, "eval"}};

}  // namespace
}  // namespace qface::cli
