// The IJB-S-style surveillance set DIR/ijbs (docs/ijbs.md): per enrolled
// subject a single photo, a booking set and videos; subjects seen only in
// videos (open-set probes); templates.csv and the protocol files through
// eval/ijbs_meta.h, and a manifest of its own.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "qface/core/fs.h"
#include "qface/eval/ijbs_meta.h"
#include "qface/synth/rng.h"
#include "qface/synth/writer.h"

namespace qface::synth::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Largest change of any nuisance strength between consecutive frames of a video.
constexpr double kMaxFrameStep = 0.15;
constexpr double kTwoPi = 6.283185307179586;

// Sets the pose strength from an exact yaw / pitch (degrees), the inverse of
// derive()'s mapping; returns the (yaw, pitch) to put back after derive().
std::pair<double, double> set_pose(ImageNuisance& n, double yaw, double pitch) {
  const double s = std::hypot(yaw / 50.0, pitch / 35.0);
  if (s > 1) yaw /= s, pitch /= s;
  n.s[kPose] = std::min(1.0, s);
  return {yaw, pitch};
}

// A controlled still (single photo, booking set): mild nuisances, exact pose.
ImageNuisance still_nuisance(Rng& rng, double yaw, double pitch) {
  ImageNuisance n;
  n.s[kExpression] = rng.uniform(0, 0.12);
  n.s[kIllumination] = rng.uniform(0, 0.15);
  n.s[kJpeg] = rng.uniform(0, 0.1);
  n.s[kClutter] = rng.uniform(0, 0.1);
  const auto [y, p] = set_pose(n, yaw + rng.uniform(-3, 3), pitch + rng.uniform(-3, 3));
  derive(n, rng);
  n.yaw = y;
  n.pitch = p;
  return n;
}

// One surveillance video: a subject walking towards (or away from) a camera
// mounted above. Along the video, smoothly: the distance (lowres strength
// from far to near), the pose (yaw drift plus gait sway, camera pitch), motion
// blur (walking speed and direction), sensor noise and compression level; an
// object may cross in front of the face (occlusion rising and falling as it
// enters and leaves). Light, background, clothing and the other directions
// are one draw shared by all frames (the same scene); the noise pattern is
// fresh per frame. No strength moves by more than kMaxFrameStep per frame.
std::vector<ImageNuisance> video_nuisances(uint64_t seed, uint64_t key, int frames_mean) {
  Rng lay(derive_seed(seed, kIjbsVideo, key));
  const int lo = std::max(6, static_cast<int>(std::lround(0.75 * frames_mean)));
  const int hi = std::max(lo, static_cast<int>(std::lround(1.25 * frames_mean)));
  const int F = static_cast<int>(lay.integer(lo, hi));
  const bool approach = lay.chance(0.7);
  const double far = lay.uniform(0.45, 0.75), near = lay.uniform(0.05, 0.25);
  const double yaw0 = lay.uniform(-35, 35), yaw1 = std::clamp(yaw0 + lay.uniform(-30, 30), -45.0, 45.0);
  const double pitch0 = lay.uniform(-18, -4), pitch1 = std::clamp(pitch0 + lay.uniform(-5, 5), -24.0, 0.0);
  const double cycles = lay.uniform(0.8, 2.0), phase = lay.uniform(0, 1);  // gait
  const double blur0 = lay.uniform(0.0, 0.25), blur1 = lay.uniform(0.0, 0.3), blur_angle = lay.uniform(0, 180);
  const double noise0 = lay.uniform(0.05, 0.35), noise_drift = lay.uniform(-0.1, 0.1);
  const double jpeg0 = lay.uniform(0.2, 0.55), jpeg_phase = lay.uniform(0, 1);
  const double illum = lay.uniform(0.05, 0.45), expr = lay.uniform(0, 0.25), clutter = lay.uniform(0, 0.5);
  const bool occluded = lay.chance(0.5);
  const double occ_start = lay.uniform(0, 0.5), occ_dir = lay.chance(0.5) ? 1.0 : -1.0, occ_y = lay.uniform(-0.2, 0.4);
  // The object crosses x = -1.2 .. 1.2 (face half-widths) in occ_len of the
  // video; coverage (strength) peaks at x = 0: slow enough for the step limit.
  double occ_peak = lay.uniform(0.3, 0.9);
  const double occ_len = std::max(lay.uniform(0.3, 0.6), 2 * occ_peak / (kMaxFrameStep * (F - 1)));
  occ_peak = std::min(occ_peak, kMaxFrameStep * (F - 1) * occ_len / 2);
  const Rng scene = lay.fork();

  std::vector<ImageNuisance> out(static_cast<std::size_t>(F));
  std::vector<std::pair<double, double>> pose(out.size());
  std::vector<double> occ_x(out.size(), 0.0);
  for (int f = 0; f < F; ++f) {
    const double t = static_cast<double>(f) / (F - 1), ease = t * t * (3 - 2 * t);
    const double gait = std::sin(kTwoPi * (cycles * t + phase));
    ImageNuisance& n = out[static_cast<std::size_t>(f)];
    n.s[kLowres] = approach ? far + (near - far) * t : near + (far - near) * t;
    n.s[kBlur] = std::clamp(blur0 + (blur1 - blur0) * t + 0.05 * gait, 0.0, 1.0);
    n.s[kNoise] = std::clamp(noise0 + noise_drift * t, 0.0, 1.0);
    n.s[kJpeg] = std::clamp(jpeg0 + 0.08 * std::sin(kTwoPi * (t + jpeg_phase)), 0.0, 1.0);
    n.s[kIllumination] = illum;
    n.s[kExpression] = expr;
    n.s[kClutter] = clutter;
    if (occluded) {
      const double u = (t - occ_start) / occ_len;
      if (u > 0 && u < 1) {
        const double x = occ_dir * (-1.2 + 2.4 * u);
        occ_x[static_cast<std::size_t>(f)] = x;
        n.s[kOcclusion] = occ_peak * std::max(0.0, 1 - std::abs(x) / 1.2);
      }
    }
    pose[static_cast<std::size_t>(f)] = set_pose(n, yaw0 + (yaw1 - yaw0) * ease + 4 * gait,
                                                 pitch0 + (pitch1 - pitch0) * t + 1.5 * std::sin(2 * kTwoPi * (cycles * t + phase)));
  }
  // Safety net: the rate limit holds whatever the draws (strengths move towards their targets).
  for (int f = 1; f < F; ++f)
    for (int k = 0; k < kNuisances; ++k) {
      const double prev = out[static_cast<std::size_t>(f - 1)].s[static_cast<std::size_t>(k)];
      double& v = out[static_cast<std::size_t>(f)].s[static_cast<std::size_t>(k)];
      v = std::clamp(v, prev - kMaxFrameStep, prev + kMaxFrameStep);
    }
  for (int f = 0; f < F; ++f) {
    ImageNuisance& n = out[static_cast<std::size_t>(f)];
    Rng r = scene;  // the same directions for every frame
    derive(n, r);
    n.yaw = pose[static_cast<std::size_t>(f)].first;
    n.pitch = pose[static_cast<std::size_t>(f)].second;
    n.blur_kind = BlurKind::kMotion;
    n.blur_extent = 11.0 * n.s[kBlur];
    n.blur_angle = blur_angle + 15.0 * f / (F - 1);
    n.occluder = n.s[kOcclusion] > 0 ? Occluder::kHand : Occluder::kNone;
    n.occluder_x = occ_x[static_cast<std::size_t>(f)];
    n.occluder_y = occ_y;
    n.noise_seed = derive_seed(seed, kIjbsNoise, key << 12 | static_cast<uint64_t>(f)) | 1;
  }
  return out;
}

// One image of the set: a still or a video frame.
struct Row {
  int64_t tmpl, subject;
  std::string file, media;
  int64_t video = 0, frame = -1;
};

// What the set holds before anything is rendered: a job per row, the
// manifest's subjects and videos, the template ids by role.
struct Layout {
  std::vector<Row> rows;
  std::vector<Job> jobs;
  json subjects = json::array(), videos = json::array();
  eval::IjbsTemplateRoles roles;
  int64_t next_template = 1;
};

// An enrolled subject's controlled stills: a single photo and a booking set
// (frontal, profiles, 3/4 views), one template each.
void add_stills(Layout& l, const SynthOptions& o, int64_t s, const Identity& id, const std::string& stem, json& js) {
  static const double kBookingYaw[5] = {0, -45, 45, -25, 25};
  const int64_t subject = s + 1;
  const int64_t single = l.next_template++;
  Rng rng(derive_seed(o.seed, kIjbsStill, static_cast<uint64_t>(s) << 8));
  l.jobs.push_back(Job{&id, still_nuisance(rng, 0, 0), 0});
  l.rows.push_back({single, subject, stem + "single.jpg", "single"});
  l.roles.singles.push_back(single);
  const int64_t booking = l.next_template++;
  for (int k = 0; k < o.ijbs_booking; ++k) {
    Rng brng(derive_seed(o.seed, kIjbsStill, static_cast<uint64_t>(s) << 8 | static_cast<uint64_t>(k + 1)));
    const double yaw = k < 5 ? kBookingYaw[k] : brng.uniform(-45, 45);
    l.jobs.push_back(Job{&id, still_nuisance(brng, yaw, 0), 0});
    l.rows.push_back({booking, subject, stem + fmt::format("booking{}.jpg", k + 1), "booking"});
  }
  l.roles.bookings.push_back(booking);
  js["single"] = single;
  js["booking"] = booking;
}

// Video v of subject s: one template, a row per frame. Returns its template id.
int64_t add_video(Layout& l, const SynthOptions& o, int64_t s, int64_t v, const Identity& id, bool enrolled,
                  const std::string& stem) {
  const int64_t subject = s + 1;
  const int64_t tmpl = l.next_template++;
  const auto frames = video_nuisances(o.seed, static_cast<uint64_t>(s) << 8 | static_cast<uint64_t>(v), o.ijbs_frames);
  json names = json::array();
  for (std::size_t f = 0; f < frames.size(); ++f) {
    l.jobs.push_back(Job{&id, frames[f], 0});
    l.rows.push_back({tmpl, subject, stem + fmt::format("video{}_{:03d}.jpg", v + 1, f + 1), "video", v + 1,
                      static_cast<int64_t>(f)});
    names.push_back(l.rows.back().file);
  }
  l.videos.push_back({{"template", tmpl}, {"subject", subject}, {"enrolled", enrolled}, {"video", v + 1},
                      {"frames", std::move(names)}});
  l.roles.add_video(tmpl, enrolled, v == 0);
  return tmpl;
}

Layout plan_layout(const SynthOptions& o, const std::vector<Identity>& ids) {
  Layout l;
  for (int64_t s = 0; s < static_cast<int64_t>(ids.size()); ++s) {
    const int64_t subject = s + 1;
    const bool enrolled = s < o.ijbs_subjects;
    const Identity& id = ids[static_cast<std::size_t>(s)];
    Rng lay(derive_seed(o.seed, kIjbsLayout, static_cast<uint64_t>(s)));
    // Every other enrolled subject has at least two videos, so that the
    // surveillance-to-surveillance protocol has mated probes.
    const int64_t nvideo = o.ijbs_max_videos >= 2 && enrolled && s % 2 == 0 ? lay.integer(2, o.ijbs_max_videos)
                                                                             : lay.integer(1, o.ijbs_max_videos);
    json js{{"subject", subject}, {"identity", id.index}, {"family", id.family}, {"enrolled", enrolled}};
    const std::string stem = fmt::format("images/{:04d}_", subject);
    if (enrolled) add_stills(l, o, s, id, stem, js);
    json vids = json::array();
    for (int64_t v = 0; v < nvideo; ++v) vids.push_back(add_video(l, o, s, v, id, enrolled, stem));
    js["videos"] = std::move(vids);
    l.subjects.push_back(std::move(js));
  }
  return l;
}

// Renders every row into dir and writes templates.csv. Returns the manifest's files.
json write_images(const fs::path& dir, const Layout& l, const SynthOptions& o) {
  eval::IjbsTemplatesCsv csv;
  json files;
  render_jobs(l.jobs, o, "ijbs", [&](std::size_t k, Done&& d) {
    const Row& r = l.rows[k];
    write_file_atomic(dir / r.file, d.jpeg);
    csv.add(r.tmpl, r.subject, r.file, r.media);
    json j = image_json(l.jobs[k], d);
    j["template"] = r.tmpl;
    j["subject"] = r.subject;
    j["media"] = r.media;
    if (r.frame >= 0) {
      j["video"] = r.video;
      j["frame"] = r.frame;
    }
    files[r.file] = std::move(j);
  });
  csv.write(dir);
  return files;
}

// Writes the protocol files. Returns the manifest's protocols.
json write_protocols(const fs::path& dir, const eval::IjbsTemplateRoles& roles) {
  json protocols;
  for (const eval::IjbsProtocolLists& p : eval::ijbs_protocols(roles)) {
    eval::write_ijbs_protocol(dir, p);
    protocols[p.name] = {{"file", p.name + ".csv"}, {"probes", p.probes.size()}, {"gallery_templates", p.gallery.size()}};
  }
  return protocols;
}

}  // namespace

SynthSummary write_surveillance(const fs::path& out, const SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dir = out / "ijbs";
  std::error_code ec;
  fs::remove_all(dir, ec);  // an older set (other sizes) must not leave frames behind
  ensure_dir(dir / "images");
  const int64_t E = o.ijbs_subjects, S = o.ijbs_subjects + o.ijbs_unenrolled;
  const auto ids = sample_population(o.seed, kIdsIjbs, S, o.population);
  Layout l = plan_layout(o, ids);
  json manifest;
  manifest["files"] = write_images(dir, l, o);
  manifest["protocols"] = write_protocols(dir, l.roles);
  manifest["version"] = kSurveillanceVersion;
  manifest["options"] = surveillance_options_json(o);
  manifest["quality_formula"] = quality_formula_json();
  manifest["max_frame_step"] = kMaxFrameStep;
  manifest["identities"] = identities_json(ids);
  manifest["subjects"] = std::move(l.subjects);
  manifest["videos"] = std::move(l.videos);
  write_file_atomic(dir / "manifest.json", manifest.dump() + "\n");  // last: marks the set complete
  SynthSummary sum;
  sum.ijbs_images = static_cast<int64_t>(l.jobs.size());
  sum.ijbs_templates = l.next_template - 1;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("synth: surveillance set: {} subjects ({} enrolled), {} templates, {} images, {} frames in {} videos ({:.1f} s)",
               S, E, sum.ijbs_templates, sum.ijbs_images, sum.ijbs_images - E * (1 + o.ijbs_booking),
               l.roles.videos.size(), sum.seconds);
  return sum;
}

}  // namespace qface::synth::detail
