// qface synth: synthetic face identities with ground-truth quality (issue 6).
#include <spdlog/spdlog.h>


#include <iostream>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/image.h"
#include "qface/synth/baseline.h"
#include "qface/synth/generate.h"

namespace qface::cli {
namespace {

struct SynthArgs {
  std::string out, preset = "demo", baseline;
  int64_t ids = 0, per_id = 0;
  uint64_t seed = 1;
  int threads = 2;
  int preview = 0;
  double label_noise = -1, unrecognizable = -1, identity_free = -1;
  int64_t val_pairs = 0, tail_probe = -1;
  bool surveillance_only = false;
};

int run_synth(const SynthArgs& a) {
  if (!a.baseline.empty()) {
    const auto rows = synth::run_baseline(a.baseline, a.threads);
    const std::string md = synth::baseline_markdown(rows);
    std::cout << md;
    if (!a.out.empty()) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& r : rows)
        j.push_back({{"set", r.set}, {"pairs", r.pairs}, {"mean_min_quality", r.mean_min_quality},
                     {"pixels_acc", r.pixels.mean}, {"pixels_std", r.pixels.std}, {"lbp_acc", r.lbp.mean},
                     {"lbp_std", r.lbp.std}});
      write_file_atomic(a.out, j.dump(2) + "\n");
    }
    return 0;
  }
  require(!a.out.empty(), "synth: --out is required (a folder, or the PNG with --preview)");
  synth::SynthOptions o = synth::preset_options(a.preset);
  o.seed = a.seed;
  o.threads = a.threads;
  if (a.ids > 0) o.ids = a.ids;
  if (a.per_id > 0) o.per_id = a.per_id;
  if (a.val_pairs > 0) o.val_pairs = a.val_pairs;
  if (a.label_noise >= 0) o.label_noise = a.label_noise;
  if (a.unrecognizable >= 0) o.nuisance.unrecognizable = a.unrecognizable;
  if (a.identity_free >= 0) o.identity_free = a.identity_free;
  if (a.tail_probe >= 0) o.tail_probe = a.tail_probe;
  if (a.preview > 0) {
    const cv::Mat sheet = synth::preview_sheet(a.preview, o);
    write_file_atomic(a.out, data::encode_image(sheet, ".png", a.out));
    spdlog::info("synth: preview of {} identities x 7 quality bands -> {}", a.preview, a.out);
    return 0;
  }
  if (a.surveillance_only) {
    synth::SynthSummary s;
    if (synth::ensure_surveillance(a.out, o, &s))
      std::cout << fmt::format("ijbs {} images / {} templates\n", s.ijbs_images, s.ijbs_templates);
    else
      std::cout << fmt::format("ijbs: {}/ijbs already holds this set\n", a.out);
    return 0;
  }
  const synth::SynthSummary s = synth::generate(a.out, o);
  std::cout << fmt::format(
      "train {} images / {} identities ({} identity-free), val {} pairs, val_cross {} pairs, ijb {} images / {} "
      "templates, tinyface {} images, tail_probe {} images, ijbs {} images / {} templates, {:.1f} s\n",
      s.train_images, s.train_ids, s.identity_free_images, s.val_pairs, s.val_cross_pairs, s.ijb_images,
      s.ijb_templates, s.tinyface_images, s.tail_probe_images, s.ijbs_images, s.ijbs_templates, s.seconds);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  app.add_option("--out", a->out, "output folder (with --preview: the PNG file; with --baseline: optional JSON report)");
  app.add_option("--preset", a->preset, "tiny (tests), demo, main (the main job), full (benchmarks), study (qface study)")
      ->check(CLI::IsMember(synth::preset_names()))
      ->capture_default_str();
  app.add_option("--ids", a->ids, "training identities (default: the preset's)")->check(CLI::Range(2, 10000000));
  app.add_option("--per-id", a->per_id, "mean training images per identity (default: the preset's)")
      ->check(CLI::Range(2, 100000));
  app.add_option("--seed", a->seed, "random seed")->capture_default_str();
  app.add_option("--threads", a->threads, "worker threads (the output does not depend on it)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--label-noise", a->label_noise, "share of training images under a wrong identity (default 0)")
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--unrecognizable", a->unrecognizable, "share of unrecognizable training images (default 0.03)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--identity-free", a->identity_free,
                 fmt::format("share of identity-free training images: filed under an identity, a fresh identity "
                             "under the unrecognizable recipe (default 0; the study's: {}); > 0 also writes DIR/tail_probe",
                             synth::kStudyIdentityFree))
      ->check(CLI::Range(0.0, 0.99));
  app.add_option("--tail-probe", a->tail_probe, "tail-probe images per kind (default: the preset's)")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--val-pairs", a->val_pairs, "pairs per verification set, val_cross included (default: the preset's)")
      ->check(CLI::Range(2, 10000000));
  app.add_flag("--surveillance-only", a->surveillance_only,
               "write only the IJB-S-style set DIR/ijbs (e.g. into a folder made before it existed); "
               "nothing when DIR/ijbs already holds it");
  app.add_option("--preview", a->preview, "write a contact sheet of N identities x 7 quality bands to --out (PNG)")
      ->check(CLI::Range(1, 200));
  app.add_option("--baseline", a->baseline, "print pixel / LBP verification accuracy per quality stratum of DIR's val sets")
      ->check(CLI::ExistingDirectory);
  return [a] { return run_synth(*a); };
}

const Registrar registrar{{"synth", "Synthetic face identities with ground-truth quality (train.rec, val .bin, IJB, TinyFace, IJB-S)", setup}};

}  // namespace
}  // namespace qface::cli
