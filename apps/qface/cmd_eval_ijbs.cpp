// qface eval ijbs: IJB-S-style surveillance identification (video probes
// against single photos, booking sets and other videos) on frame features,
// with mean / norm-weighted / top-K template fusion (eval/ijbs.h,
// docs/ijbs.md). Writes JSON of kind "eval.ijbs" that `qface report` reads.
#include <spdlog/spdlog.h>


#include "apps/qface/command.h"
#include "qface/eval/features.h"
#include "qface/eval/ijbs.h"

namespace qface::cli {
namespace {
using nlohmann::json;

struct IjbsArgs {
  std::string meta, features, fusion = "mean", out, name;
  bool per_probe = false;
};

int run_ijbs(const IjbsArgs& a) {
  eval::IjbsOptions opt;
  opt.fusion = eval::parse_fusion(a.fusion);
  const eval::IjbsMeta meta = eval::load_ijbs_meta(a.meta);
  const eval::Features f = eval::load_features(a.features);
  const eval::IjbsResult r = eval::evaluate_ijbs(meta, f.embeddings, f.norms, f.files, opt);
  json j = eval::to_json(r, a.per_probe);
  j["kind"] = "eval.ijbs";
  j["name"] = a.name.empty() ? eval::features_name(a.features) : a.name;
  j["meta"] = a.meta;
  for (const auto& pr : r.protocols) {
    const auto& s = pr.summary;
    spdlog::info("ijbs {} [{}]: {} probes ({} mated), rank-1 {:.4f}, TPIR@FPIR=0.01 {:.4f}", pr.protocol, r.fusion,
                 pr.outcomes.size(), s.mated_probes, s.cmc.empty() ? 0.0 : s.cmc[0].second,
                 s.tpir_at_fpir.empty() ? 0.0 : s.tpir_at_fpir[0].tpir);
  }
  eval::write_json(a.out, j);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<IjbsArgs>();
  app.add_option("--meta", a->meta,
                 "IJB-S meta folder: templates.csv and surveillance_to_{single,booking,surveillance}.csv")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--features", a->features, "features folder of the images / frames listed in templates.csv")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--fusion", a->fusion,
                 "frames -> template: mean (average of normalized features), norm (weighted by feature norm), "
                 "topk:K (mean of the K highest-norm frames)")
      ->capture_default_str();
  app.add_flag("--per-probe", a->per_probe, "also write each probe's outcome (mated, rank, top and mate scores)");
  app.add_option("--name", a->name, "model / run name in the report (default: the features folder name)");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  return [a] { return run_ijbs(*a); };
}

const Registrar registrar{{"ijbs",
                           "IJB-S surveillance identification: video probes vs single photos, booking sets, videos "
                           "(rank-k, TPIR@FPIR)",
                           setup, "eval"}};

}  // namespace
}  // namespace qface::cli
