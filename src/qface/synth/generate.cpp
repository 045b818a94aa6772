// generate() and ensure_surveillance(): check the options, then run the set
// writers (one file per set, declared in writer.h) and write DIR/manifest.json.
#include "qface/synth/generate.h"

#include <opencv2/core/utility.hpp>
#include <spdlog/spdlog.h>

#include <chrono>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/synth/writer.h"

namespace qface::synth {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace detail;  // writer.h: the set writers

namespace {

void check_options(const SynthOptions& o) {
  require(o.ids >= 2, "synth: --ids must be at least 2, got {}", o.ids);
  require(o.per_id >= 2, "synth: --per-id must be at least 2, got {}", o.per_id);
  require(o.threads >= 1, "synth: --threads must be at least 1, got {}", o.threads);
  require(o.label_noise >= 0 && o.label_noise < 1, "synth: --label-noise must be in [0, 1), got {}", o.label_noise);
  require(o.identity_free >= 0 && o.identity_free < 1, "synth: --identity-free must be in [0, 1), got {}",
          o.identity_free);
  require(o.tail_probe >= 0, "synth: --tail-probe must be at least 0, got {}", o.tail_probe);
  require(o.val_cross_pairs >= -1, "synth: val_cross pairs must be >= 0 (-1: val_pairs), got {}", o.val_cross_pairs);
  require(o.nuisance.unrecognizable >= 0 && o.nuisance.unrecognizable <= 1,
          "synth: --unrecognizable must be in [0, 1], got {}", o.nuisance.unrecognizable);
  require(o.val_ids >= 4 && o.val_pairs >= 2, "synth: need at least 4 val identities and 2 val pairs");
  require(o.ijb_subjects >= 2, "synth: need at least 2 IJB subjects, got {}", o.ijb_subjects);
  require(o.tf_ids >= 1 && o.tf_distractors >= 1, "synth: need TinyFace identities and distractors");
  require(o.jpeg_quality >= 1 && o.jpeg_quality <= 100, "synth: JPEG quality must be 1..100");
  require(o.ijbs_subjects >= 1 && o.ijbs_unenrolled >= 0, "synth: need at least 1 enrolled surveillance subject");
  require(o.ijbs_max_videos >= 1 && o.ijbs_max_videos <= 255, "synth: surveillance videos per subject must be 1..255");
  require(o.ijbs_frames >= 1 && o.ijbs_frames <= 3000, "synth: surveillance frames per video must be 1..3000");
  require(o.ijbs_booking >= 1 && o.ijbs_booking <= 255, "synth: booking photos per subject must be 1..255");
}

// Our own threads do the parallel work; OpenCV's pool would only contend.
struct SingleThreadedOpenCv {
  int n = cv::getNumThreads();
  SingleThreadedOpenCv() { cv::setNumThreads(1); }
  ~SingleThreadedOpenCv() { cv::setNumThreads(n); }
};

}  // namespace

bool ensure_surveillance(const fs::path& out, const SynthOptions& o, SynthSummary* summary) {
  check_options(o);
  const fs::path m = out / "ijbs" / "manifest.json";
  if (fs::exists(m)) {
    try {
      const json have = json::parse(read_file(m));
      if (have.value("version", std::string()) == kSurveillanceVersion &&
          have.value("options", json()) == surveillance_options_json(o))
        return false;
    } catch (const json::exception&) {
      // unreadable: write it again
    }
  }
  ensure_dir(out);
  SingleThreadedOpenCv cv_threads;
  const SynthSummary s = write_surveillance(out, o);
  if (summary) {
    summary->ijbs_images = s.ijbs_images;
    summary->ijbs_templates = s.ijbs_templates;
  }
  return true;
}

SynthSummary generate(const fs::path& out, const SynthOptions& o) {
  check_options(o);
  const auto t0 = std::chrono::steady_clock::now();
  ensure_dir(out);
  SingleThreadedOpenCv cv_threads;

  json manifest;
  manifest["version"] = kSynthVersion;
  manifest["options"] = options_json(o);
  manifest["quality_formula"] = quality_formula_json();
  manifest["template_112"] = landmarks_json(data::face_template());
  SynthSummary sum;
  sum.train_ids = o.ids;
  spdlog::info("synth: preset {} seed {} -> {}", o.preset, o.seed, out.string());
  sum.train_images = write_train(out, o, manifest, &sum.identity_free_images);
  sum.val_pairs = write_val(out, o, manifest);
  sum.val_cross_pairs = write_val_cross(out, o, manifest);
  const IjbCounts ijb = write_ijb(out, o, manifest);
  sum.ijb_images = ijb.images;
  sum.ijb_templates = ijb.templates;
  sum.tinyface_images = write_tinyface(out, o, manifest);
  sum.tail_probe_images = write_tail_probe(out, o, manifest);
  write_file_atomic(out / "manifest.json", manifest.dump() + "\n");
  const SynthSummary ijbs = write_surveillance(out, o);
  sum.ijbs_images = ijbs.ijbs_images;
  sum.ijbs_templates = ijbs.ijbs_templates;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("synth: {} training images of {} identities ({} identity-free), {} val pairs, {} val_cross pairs, "
               "{} IJB images ({} templates), {} TinyFace images, {} tail-probe images, "
               "{} surveillance images ({} templates) in {:.1f} s",
               sum.train_images, sum.train_ids, sum.identity_free_images, sum.val_pairs, sum.val_cross_pairs,
               sum.ijb_images, sum.ijb_templates, sum.tinyface_images, sum.tail_probe_images, sum.ijbs_images,
               sum.ijbs_templates, sum.seconds);
  return sum;
}

}  // namespace qface::synth
