// qface eval ijb: IJB-B/C 1:1 (TAR@FAR) and 1:N (CMC, TPIR@FPIR) on the
// features of the IJB images, with template fusion (eval/ijb.h).
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/eval/features.h"
#include "qface/eval/ijb.h"

namespace qface::cli {
namespace {
using nlohmann::json;

struct IjbArgs {
  std::string meta, features, out, name;
  bool norm_score = false, detector_score = false, no_11 = false, no_1n = false;
};

int run_ijb(const IjbArgs& a) {
  eval::IjbMeta meta = eval::load_ijb_meta(a.meta);
  eval::Features f = eval::load_features(a.features);
  eval::IjbOptions opt;
  opt.templates.norm_weighted = a.norm_score;
  opt.templates.detector_weighted = a.detector_score;
  opt.verification = !a.no_11;
  opt.identification = !a.no_1n;
  eval::IjbResult r = eval::evaluate_ijb(meta, f.embeddings, f.norms, f.files, opt);
  json j = eval::to_json(r);
  j["kind"] = "eval.ijb";
  j["name"] = a.name.empty() ? eval::features_name(a.features) : a.name;
  j["meta"] = meta.prefix;
  j["options"] = {{"norm_score", a.norm_score}, {"detector_score", a.detector_score}};
  if (r.verification)
    for (const auto& t : r.verification->tar_at_far)
      spdlog::info("ijb 1:1 TAR@FAR={:.0e}: {:.4f}", t.far, t.tar);
  for (const auto& g : r.identification)
    spdlog::info("ijb 1:N {}: top-1 {:.4f}, TPIR@FPIR=0.01 {:.4f}", g.gallery, g.cmc.at(0).second,
                 g.tpir_at_fpir.empty() ? 0.0 : g.tpir_at_fpir[0].tpir);
  eval::write_json(a.out, j);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<IjbArgs>();
  app.add_option("--meta", a->meta, "IJB meta folder (*_face_tid_mid.txt, *_template_pair_label.txt, 1:N csv)")
      ->required()
      ->check(CLI::ExistingDirectory);
  app.add_option("--features", a->features, "features folder of the IJB images")->required()->check(CLI::ExistingDirectory);
  app.add_flag("--norm-score", a->norm_score, "weight image features by their raw norm (keep the norm)");
  app.add_flag("--detector-score", a->detector_score, "weight image features by the detector score (*_name_5pts_score.txt)");
  app.add_flag("--no-1to1", a->no_11, "skip the 1:1 protocol");
  app.add_flag("--no-1toN", a->no_1n, "skip the 1:N protocol");
  app.add_option("--name", a->name, "model / run name in the report");
  app.add_option("--out", a->out, "JSON output (default: stdout)");
  return [a] { return run_ijb(*a); };
}

const Registrar registrar{{"ijb", "IJB-B/C 1:1 (TAR@FAR) and 1:N (CMC, TPIR@FPIR) on template features", setup, "eval"}};

}  // namespace
}  // namespace qface::cli
