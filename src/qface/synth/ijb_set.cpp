// The IJB-style set DIR/ijb: loose crops (face not aligned, roll kept) of
// subjects with three templates each (one gallery, two probes), several media
// per template, and the IJB-B/C meta files (1:1 pairs, 1:N lists) about them.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "qface/core/fs.h"
#include "qface/synth/rng.h"
#include "qface/synth/writer.h"

namespace qface::synth::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The 1:1 template pairs ("t1 t2 label" lines): every genuine pair, and
// impostors (random and look-alike), each pair once.
std::string template_pairs(const std::vector<Identity>& ids, const SynthOptions& o) {
  const auto S = static_cast<int64_t>(ids.size());
  std::set<std::pair<int64_t, int64_t>> seen;
  std::string pairs;
  auto add_pair = [&](int64_t a, int64_t b, int label) {
    if (a == b) return;
    const auto key = std::minmax(a, b);
    if (!seen.insert(key).second) return;
    pairs += fmt::format("{} {} {}\n", key.first, key.second, label);
  };
  std::map<int64_t, std::vector<int64_t>> families;
  for (const auto& id : ids) families[id.family].push_back(id.index);
  for (int64_t s = 0; s < S; ++s) {
    Rng prng(derive_seed(o.seed, kIjbLayout + 7, static_cast<uint64_t>(s)));
    for (int t = 0; t < 3; ++t)
      for (int u = t + 1; u < 3; ++u) add_pair(s * 3 + t + 1, s * 3 + u + 1, 1);
    for (int t = 0; t < 3; ++t) {
      for (int k = 0; k < 4; ++k) {
        int64_t other = prng.integer(0, S - 2);
        if (other >= s) ++other;
        add_pair(s * 3 + t + 1, other * 3 + prng.integer(0, 2) + 1, 0);
      }
      for (int64_t other : families[ids[static_cast<std::size_t>(s)].family])
        if (other != s) add_pair(s * 3 + t + 1, other * 3 + prng.integer(0, 2) + 1, 0);
    }
  }
  return pairs;
}

}  // namespace

IjbCounts write_ijb(const fs::path& out, const SynthOptions& o, json& manifest) {
  const int64_t S = o.ijb_subjects;
  const auto ids = sample_population(o.seed, kIdsIjb, S, o.population);
  manifest["identities"]["ijb"] = identities_json(ids);
  NuisanceOptions nopt = o.nuisance;
  nopt.severity = 0.25;  // mixed quality, harder than training on average
  struct Img {
    int64_t subject, tmpl, media;
  };
  std::vector<Img> imgs;
  std::vector<Job> jobs;
  int64_t media_id = 0;
  for (int64_t s = 0; s < S; ++s) {
    Rng lay(derive_seed(o.seed, kIjbLayout, static_cast<uint64_t>(s)));
    for (int t = 0; t < 3; ++t) {
      const int64_t tid = s * 3 + t + 1;
      const int64_t medias = lay.integer(1, 4);
      for (int64_t m = 0; m < medias; ++m) {
        ++media_id;
        const bool video = lay.chance(0.4);
        const int64_t frames = video ? lay.integer(2, 3) : 1;
        Rng mrng(derive_seed(o.seed, kIjbImage, static_cast<uint64_t>(media_id)));
        const ImageNuisance base = sample_nuisance(mrng, nopt);
        const int size = static_cast<int>(mrng.integer(120, 160));
        for (int64_t f = 0; f < frames; ++f) {
          ImageNuisance n = base;
          if (f > 0) {  // frames of one video: same capture, small motion
            n.yaw += mrng.normal(0, 3);
            n.pitch += mrng.normal(0, 2);
            n.roll += mrng.normal(0, 2);
          }
          jobs.push_back(Job{&ids[static_cast<std::size_t>(s)], n, size});
          imgs.push_back({s, tid, media_id});
        }
      }
    }
  }
  ensure_dir(out / "ijb" / "images");
  ensure_dir(out / "ijb" / "meta");
  std::string tid_mid, pts;
  json files;
  render_jobs(jobs, o, "ijb", [&](std::size_t k, Done&& d) {
    const std::string name = std::to_string(k + 1) + ".jpg";
    write_file_atomic(out / "ijb" / "images" / name, d.jpeg);
    tid_mid += fmt::format("{} {} {}\n", name, imgs[k].tmpl, imgs[k].media);
    // Detector score: a monotone function of the true quality.
    const double score = 0.3 + 0.7 * jobs[k].nuisance.quality();
    pts += name;
    for (const auto& p : d.landmarks) pts += fmt::format(" {:.3f} {:.3f}", p.x, p.y);
    pts += fmt::format(" {:.4f}\n", score);
    json j = image_json(jobs[k], d);
    j["subject"] = imgs[k].subject + 1;
    j["template"] = imgs[k].tmpl;
    j["media"] = imgs[k].media;
    j["size"] = jobs[k].loose_size;
    files["ijb/images/" + name] = std::move(j);
  });
  write_file_atomic(out / "ijb" / "meta" / "synth_face_tid_mid.txt", tid_mid);
  write_file_atomic(out / "ijb" / "meta" / "synth_name_5pts_score.txt", pts);
  write_file_atomic(out / "ijb" / "meta" / "synth_template_pair_label.txt", template_pairs(ids, o));
  // 1:N: gallery template 0 of the first (G1) / second (G2) half of the subjects; probes: templates 1, 2 of all.
  std::string g1 = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n", g2 = g1, probe = g1;
  for (std::size_t k = 0; k < imgs.size(); ++k) {
    const std::string row = fmt::format("{},{},{}.jpg\n", imgs[k].tmpl, imgs[k].subject + 1, k + 1);
    const int t = static_cast<int>((imgs[k].tmpl - 1) % 3);
    if (t == 0) (imgs[k].subject < S / 2 ? g1 : g2) += row;
    else probe += row;
  }
  write_file_atomic(out / "ijb" / "meta" / "synth_1N_gallery_G1.csv", g1);
  write_file_atomic(out / "ijb" / "meta" / "synth_1N_gallery_G2.csv", g2);
  write_file_atomic(out / "ijb" / "meta" / "synth_1N_probe_mixed.csv", probe);
  manifest["ijb"] = {{"subjects", S}, {"templates", 3 * S}, {"media", media_id}, {"images", std::move(files)}};
  return {static_cast<int64_t>(jobs.size()), 3 * S};
}

}  // namespace qface::synth::detail
