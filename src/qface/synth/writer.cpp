#include "qface/synth/writer.h"

#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/parallel.h"
#include "qface/core/progress.h"

namespace qface::synth::detail {
namespace fs = std::filesystem;
using nlohmann::json;

double r4(double v) { return std::round(v * 1e4) / 1e4; }

json landmarks_json(const Landmarks& l) {
  json j = json::array();
  for (const auto& p : l) j.push_back({r4(p.x), r4(p.y)});
  return j;
}

json identities_json(const std::vector<Identity>& ids) {
  json j = json::array();
  for (const auto& id : ids) j.push_back(identity_to_json(id));
  return j;
}

json quality_formula_json() {
  json w;
  for (int k = 0; k < kNuisances; ++k) w[nuisance_name(k)] = quality_weights()[static_cast<std::size_t>(k)];
  return {{"formula", "q = prod_k (1 - w_k * s_k), s_k in [0, 1] the nuisance strengths"}, {"weights", w}};
}

namespace {

std::string encode_jpeg(const cv::Mat& img, int quality) {
  std::vector<uchar> buf;
  if (!cv::imencode(".jpg", img, buf, {cv::IMWRITE_JPEG_QUALITY, quality}))
    fail("synth: JPEG encoding failed");
  return std::string(buf.begin(), buf.end());
}

}  // namespace

void render_jobs(const std::vector<Job>& jobs, const SynthOptions& o, const std::string& what,
                 const std::function<void(std::size_t, Done&&)>& sink) {
  const std::size_t chunk = 1024;
  Progress progress("synth: " + what, static_cast<int64_t>(jobs.size()), "images");
  for (std::size_t start = 0; start < jobs.size(); start += chunk) {
    const std::size_t end = std::min(jobs.size(), start + chunk);
    std::vector<Done> done(end - start);
    parallel_for(static_cast<int64_t>(end - start), o.threads, [&](int64_t k) {
      const Job& job = jobs[start + static_cast<std::size_t>(k)];
      Rendered r = job.loose_size > 0 ? render_loose(*job.identity, job.nuisance, job.loose_size)
                                      : render_aligned(*job.identity, job.nuisance);
      done[static_cast<std::size_t>(k)] = Done{encode_jpeg(r.image, o.jpeg_quality), r.landmarks};
    });
    for (std::size_t k = 0; k < done.size(); ++k) sink(start + k, std::move(done[k]));
    progress.update(static_cast<int64_t>(end));
  }
}

json image_json(const Job& job, const Done& d) {
  json j;
  j["identity"] = job.identity->index;
  j["quality"] = r4(job.nuisance.quality());
  j["nuisance"] = nuisance_to_json(job.nuisance);
  j["landmarks"] = landmarks_json(d.landmarks);
  return j;
}

json write_labelled_images(const fs::path& out, const std::vector<Job>& jobs, const std::vector<LabelledFile>& files,
                           const SynthOptions& o, const std::string& what) {
  require(jobs.size() == files.size(), "synth: {}: {} images for {} file names", what, jobs.size(), files.size());
  std::set<fs::path> folders;
  for (const LabelledFile& f : files) folders.insert((out / f.file).parent_path());
  for (const fs::path& f : folders) ensure_dir(f);
  json manifest_files;
  render_jobs(jobs, o, what, [&](std::size_t k, Done&& d) {
    write_file_atomic(out / files[k].file, d.jpeg);
    json j = image_json(jobs[k], d);
    j["label"] = files[k].label;
    manifest_files[files[k].file] = std::move(j);
  });
  return manifest_files;
}

PopulationOptions free_population(const SynthOptions& o) {
  PopulationOptions p = o.population;
  p.family_fraction = 0.0;
  return p;
}

}  // namespace qface::synth::detail
