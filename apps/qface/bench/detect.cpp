// qface bench detect: face detection by face size on synthetic scenes
// (synth/scene.h: synth faces under the generator's nuisances composited into
// busy 1920x1080 frames, ground truth exact), for each detector setting: ssd
// as face-api runs it (one whole-photo pass), ssd with its full-resolution
// scan at each factor asked (1 is the default), hog with qface's defaults, and face-api's own JavaScript on the
// same frames. Recall with a 95 % interval and false detections per frame;
// milliseconds per 640x480 and 1920x1080 frame on the configured threads (the
// median of several runs), the JavaScript reference timed in the same run;
// faces found on the package's six real group photos. Prints markdown tables
// and writes JSON.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <numeric>
#include <span>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/progress.h"
#include "qface/deploy/align.h"
#include "qface/deploy/ssd_detector.h"
#include "qface/eval/bootstrap.h"
#include "qface/eval/features.h"
#include "qface/infer/precision.h"
#include "qface/synth/rng.h"
#include "qface/synth/scene.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using synth::Detection;
using synth::SceneFace;

struct BenchArgs {
  std::vector<int> sizes{16, 24, 32, 48, 64, 96, 128};
  int frames = 10, faces = 12, width = 1920, height = 1080;
  uint64_t seed = 1;
  double min_score = 0.5;
  std::vector<double> scans{1.25, 2};
  int64_t scan_max_pixels = 0;
  int upsample = 1;
  int64_t max_pixels = 1'000'000;
  int threads = 2, repeat = 5;
  bool no_js = false, no_recall = false;
  std::string weights, reference_dir, photos, examples, out;
};

// One detector setting. SSD boxes come from the bare detector (what the
// JavaScript reference returns and times); `full` is the deployment path
// (`qface align`: detector + dlib's 68 landmarks), timed as well; HOG has
// only the full path.
struct Setting {
  std::string name;
  deploy::DetectorOptions options;
  std::unique_ptr<deploy::FaceDetector> full;
  std::unique_ptr<deploy::SsdFaceDetector> ssd;

  std::vector<Detection> detect(const cv::Mat& bgr) const {
    std::vector<Detection> out;
    if (ssd) {
      for (const auto& f : ssd->detect(bgr)) out.push_back({f.box, f.score});
    } else {
      for (const auto& f : full->detect(bgr)) out.push_back({cv::Rect2d(f.box), f.score});
    }
    return out;
  }
  json to_json() const {
    json j{{"name", name}, {"detector", deploy::detector_kind_name(options.kind)}};
    if (options.kind == deploy::DetectorKind::kSsd) {
      j["min_score"] = options.ssd.min_score;
      j["scan"] = options.ssd.scan;
      j["scan_max_pixels"] = options.ssd.scan_max_pixels;
    } else {
      j["upsample"] = options.upsample;
      j["max_pixels"] = options.max_pixels;
    }
    return j;
  }
};

// ------------------------------------------------------------ the reference
// face-api's JavaScript (tests/deploy/ssd_reference/detect.mjs, TensorFlow.js
// WASM backend in node) on raw RGB files that qface writes from its own
// decoded pixels, so both detectors see the same image.
struct Reference {
  std::string node;  // empty: unavailable, see note
  fs::path script;
  std::string note;
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs a shell command, returns (exit status, stdout); stderr goes to `err`.
std::pair<int, std::string> capture(const std::string& cmd, const fs::path& err) {
  FILE* p = ::popen((cmd + " 2>" + shell_quote(err.string())).c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = ::pclose(p);
  return {rc, out};
}

Reference find_reference(const BenchArgs& a, const fs::path& tmp) {
  Reference r;
  if (a.no_js) return r.note = "skipped (--no-js)", r;
  std::vector<fs::path> dirs;
  if (!a.reference_dir.empty()) {
    dirs.push_back(a.reference_dir);
  } else {
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) dirs.push_back(exe.parent_path().parent_path() / "tests/deploy/ssd_reference");
    dirs.push_back(fs::current_path() / "tests/deploy/ssd_reference");
  }
  fs::path dir;
  for (const auto& d : dirs)
    if (fs::exists(d / "detect.mjs") && fs::exists(d / "node_modules/@vladmandic/face-api/package.json")) {
      dir = d;
      break;
    }
  if (dir.empty())
    return r.note = fmt::format("skipped: tests/deploy/ssd_reference with its node_modules not found (looked in {}; "
                                "scripts/setup.sh installs it, or give --reference-dir)",
                                dirs.front().string()),
           r;
  for (const char* node : {"node", "nodejs"}) {
    const auto [rc, out] = capture(fmt::format("{} -p \"process.versions.node\"", node), tmp / "node.err");
    if (rc != 0) continue;
    const int major = std::atoi(out.c_str());
    if (major >= 18) {
      r.node = node;
      r.script = dir / "detect.mjs";
      r.note = fmt::format("face-api's JavaScript, TensorFlow.js WASM backend, node {}", out.substr(0, out.find('\n')));
      return r;
    }
    return r.note = fmt::format("skipped: {} is version {}, the reference needs node >= 18", node, out), r;
  }
  return r.note = "skipped: node not installed (scripts/setup.sh installs nodejs)", r;
}

// Writes `bgr` as raw RGB for the reference; returns its "file:W:H" argument.
std::string write_rgb(const cv::Mat& bgr, const fs::path& file) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(rgb.data), static_cast<std::streamsize>(rgb.total() * 3));
  return fmt::format("{}:{}:{}", file.string(), rgb.cols, rgb.rows);
}

// Per photo: the reference's detections and its milliseconds.
struct RefResult {
  std::vector<Detection> faces;
  double ms = 0;
};

std::vector<RefResult> run_reference(const Reference& r, double min_score, const std::vector<std::string>& photos,
                                     const fs::path& tmp) {
  std::string cmd = fmt::format("{} {} wasm {}", r.node, shell_quote(r.script.string()), min_score);
  for (const auto& p : photos) cmd += " " + shell_quote(p);
  const auto [rc, out] = capture(cmd, tmp / "reference.err");
  std::string err;
  try {
    err = read_file(tmp / "reference.err");
  } catch (const Error&) {
  }
  require(rc == 0, "bench detect: the JavaScript reference failed (exit {}): {}", rc, err.substr(0, 600));
  json j;
  try {
    j = json::parse(out);
  } catch (const std::exception& e) {
    fail("bench detect: unreadable output of the JavaScript reference ({}): {}", e.what(), out.substr(0, 300));
  }
  require(j.is_array() && j.size() == photos.size(), "bench detect: the JavaScript reference answered for {} of {} photos",
          j.size(), photos.size());
  std::vector<RefResult> res;
  for (const json& p : j) {
    RefResult x;
    x.ms = p.at("ms").get<double>();
    for (const json& f : p.at("faces"))
      x.faces.push_back({cv::Rect2d(f.at("x").get<double>(), f.at("y").get<double>(), f.at("w").get<double>(),
                                    f.at("h").get<double>()),
                         f.at("score").get<double>()});
    res.push_back(std::move(x));
  }
  return res;
}

// ------------------------------------------------------------- statistics
// Wilson's score interval for k successes in n trials (95 %): unlike the
// normal approximation it stays inside [0, 1] and has width at 0 and n.
std::pair<double, double> wilson(int64_t k, int64_t n) {
  if (n == 0) return {NAN, NAN};
  const double z = 1.959963984540054, p = static_cast<double>(k) / n, z2n = z * z / n;
  const double centre = (p + z2n / 2) / (1 + z2n);
  const double half = z * std::sqrt(p * (1 - p) / n + z2n / (4.0 * n)) / (1 + z2n);
  return {k == 0 ? 0.0 : std::max(0.0, centre - half), k == n ? 1.0 : std::min(1.0, centre + half)};
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// Milliseconds of each of `repeat` runs after one untimed warm-up.
std::vector<double> time_runs(const std::function<void()>& f, int repeat) {
  f();
  std::vector<double> ms;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return ms;
}

// Per setting and face size: the per-frame counts.
struct Tally {
  std::vector<int64_t> faces, found, false_dets, false_on_face;
  std::vector<double> side_ratio;  // matched box side / face size

  void add(const std::vector<SceneFace>& gt, const std::vector<Detection>& dets) {
    const synth::MatchResult m = synth::match_detections(gt, dets);
    faces.push_back(static_cast<int64_t>(gt.size()));
    found.push_back(m.matched);
    false_dets.push_back(m.false_detections);
    int64_t on_face = 0;
    for (std::size_t d = 0; d < dets.size(); ++d) {
      const cv::Rect2d& b = dets[d].box;
      if (m.face_of[d] >= 0) {
        side_ratio.push_back(std::sqrt(b.area()) / gt[static_cast<std::size_t>(m.face_of[d])].size);
        continue;
      }
      for (const SceneFace& f : gt)  // a false detection on a face: a duplicate or a box of the wrong size
        if (b.contains(synth::landmark_centroid(f.landmarks))) {
          ++on_face;
          break;
        }
    }
    false_on_face.push_back(on_face);
  }

  json summary(uint64_t seed) const {
    const int64_t n = std::accumulate(faces.begin(), faces.end(), int64_t{0});
    const int64_t k = std::accumulate(found.begin(), found.end(), int64_t{0});
    const int64_t fd = std::accumulate(false_dets.begin(), false_dets.end(), int64_t{0});
    const int64_t fo = std::accumulate(false_on_face.begin(), false_on_face.end(), int64_t{0});
    const auto [lo, hi] = wilson(k, n);
    // Faces of one frame share its background and clutter: the frame
    // bootstrap resamples whole frames (wider when frames differ; no width
    // at all when every face is found).
    eval::BootstrapOptions bo;
    bo.seed = seed;
    eval::Interval frames_ci{NAN, NAN, NAN};
    if (faces.size() >= 2)  // one frame has nothing to resample
      frames_ci = eval::bootstrap(
        static_cast<int64_t>(faces.size()),
        [&](std::span<const int64_t> draw) {
          double a = 0, b = 0;
          for (int64_t i : draw) a += static_cast<double>(found[static_cast<std::size_t>(i)]),
                                 b += static_cast<double>(faces[static_cast<std::size_t>(i)]);
          return b > 0 ? a / b : NAN;
        },
        bo);
    const double frames_n = static_cast<double>(faces.size());
    json j{{"faces", n},
           {"found", k},
           {"recall", n ? static_cast<double>(k) / n : NAN},
           {"recall_wilson95", {lo, hi}},
           {"recall_frame_bootstrap95", faces.size() >= 2 ? json{frames_ci.lo, frames_ci.hi} : json()},
           {"false_detections", fd},
           {"false_per_frame", fd / frames_n},
           {"false_on_a_face", fo},
           {"max_false_in_a_frame", false_dets.empty() ? 0 : *std::max_element(false_dets.begin(), false_dets.end())}};
    if (!side_ratio.empty()) j["matched_box_side_over_face_size_median"] = median(side_ratio);
    return j;
  }
};

void draw_examples(cv::Mat img, const std::vector<SceneFace>& gt, const std::vector<std::vector<Detection>>& dets,
                   const fs::path& file) {
  static const cv::Scalar colours[] = {{0, 0, 255}, {0, 165, 255}, {255, 0, 0}, {255, 0, 255}, {0, 255, 255}};
  for (const SceneFace& f : gt) {
    std::vector<cv::Point> sq;
    for (const auto& p : f.square) sq.emplace_back(cvRound(p.x), cvRound(p.y));
    cv::polylines(img, std::vector<std::vector<cv::Point>>{sq}, true, {0, 255, 0}, 1, cv::LINE_AA);
  }
  for (std::size_t s = 0; s < dets.size(); ++s)
    for (const Detection& d : dets[s]) cv::rectangle(img, cv::Rect(d.box), colours[s % 5], 1, cv::LINE_AA);
  std::vector<uchar> png;
  cv::imencode(".png", img, png);
  write_file_atomic(file, std::string(png.begin(), png.end()));
}

std::string cell(const json& s) {
  const auto ci = s["recall_wilson95"];
  return fmt::format("{:.2f} ({:.2f}–{:.2f}) · {:.2f}", s["recall"].get<double>(), ci[0].get<double>(), ci[1].get<double>(),
                     s["false_per_frame"].get<double>());
}

// The detector settings measured: ssd as face-api runs it, ssd at each scan
// factor asked, and hog.
std::vector<Setting> make_settings(const BenchArgs& a) {
  std::vector<Setting> settings;
  auto add_ssd = [&](const std::string& name, double scan) {
    Setting s;
    s.name = name;
    s.options.kind = deploy::DetectorKind::kSsd;
    s.options.ssd.model_dir = a.weights;
    s.options.ssd.min_score = a.min_score;
    s.options.ssd.scan = scan;
    s.options.ssd.scan_max_pixels = a.scan_max_pixels;
    s.full = std::make_unique<deploy::FaceDetector>(s.options);
    s.ssd = std::make_unique<deploy::SsdFaceDetector>(s.options.ssd);
    settings.push_back(std::move(s));
  };
  add_ssd("ssd", 0);  // face-api's own setting: the JavaScript reference finds the same
  for (double f : a.scans) add_ssd(fmt::format("ssd scan {:g}", f), f);
  Setting hog;
  hog.name = "hog";
  hog.options.kind = deploy::DetectorKind::kHog;
  hog.options.upsample = a.upsample;
  hog.options.max_pixels = a.max_pixels;
  hog.full = std::make_unique<deploy::FaceDetector>(hog.options);
  settings.push_back(std::move(hog));
  return settings;
}

// /proc/loadavg's 1, 5 and 15 minute averages (zeros when unreadable).
std::array<double, 3> load_average() {
  std::array<double, 3> load{0, 0, 0};
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = NAN;
    std::fclose(f);
  }
  return load;
}

// What the results are of: the machine, the scenes, the matching rule and the settings.
json describe_bench(const BenchArgs& a, const std::vector<Setting>& settings, const Reference& ref,
                    const std::array<double, 3>& load) {
  json j{{"kind", "bench.detect"},
         {"cpu", infer::cpu_signature()},
         {"threads", a.threads},
         {"load_average_at_start", {load[0], load[1], load[2]}},
         {"frame", {a.width, a.height}},
         {"frames_per_size", a.frames},
         {"faces_per_frame", a.faces},
         {"seed", a.seed},
         {"reference", ref.note},
         {"face_size", "side of the face's 112x112 aligned-crop square in the frame (synth/scene.h)"},
         {"matching", "a detection matches a face when the face's landmark centroid lies inside the box and the box's "
                      "side (sqrt of its area) is within a factor 2 of the face size; greedy by score, one to one; "
                      "unmatched detections are false detections"},
         {"nuisances", "the generator's web-crawl distribution (pose, expression, light, occlusion, blur, noise, JPEG, "
                       "low resolution, clutter), no deliberately unrecognizable faces"}};
  for (const auto& s : settings) j["settings"].push_back(s.to_json());
  return j;
}

// What every measurement shares: the settings, the JavaScript reference (when
// found), their names in table order and the scratch folder.
struct Bench {
  const BenchArgs& a;
  const std::vector<Setting>& settings;
  const Reference& ref;
  bool js = false;                 // the reference runs
  std::vector<std::string> names;  // the settings', then the reference's
  fs::path tmp;
};

// Per face size, recall and false detections of every setting on the same frames.
json recall_by_size(const Bench& b) {
  const BenchArgs& a = b.a;
  const std::size_t S = b.names.size();
  Progress progress("bench detect", a.no_recall ? 0 : static_cast<int64_t>(a.sizes.size()) * a.frames, "frames");
  int64_t done = 0;
  json by_size = json::array();
  for (int size : a.no_recall ? std::vector<int>{} : a.sizes) {
    std::vector<Tally> tally(S);
    std::vector<std::vector<SceneFace>> truth;
    std::vector<std::string> rgb;
    for (int f = 0; f < a.frames; ++f) {
      synth::SceneOptions so;
      so.width = a.width;
      so.height = a.height;
      so.faces = a.faces;
      so.face_size = size;
      so.threads = a.threads;
      so.seed = synth::derive_seed(a.seed, 0xde7ec7, static_cast<uint64_t>(size) << 20 | static_cast<uint64_t>(f));
      const synth::Scene scene = synth::render_scene(so);
      std::vector<std::vector<Detection>> dets;
      for (std::size_t s = 0; s < b.settings.size(); ++s) {
        dets.push_back(b.settings[s].detect(scene.image));
        tally[s].add(scene.faces, dets.back());
      }
      if (b.js) rgb.push_back(write_rgb(scene.image, b.tmp / fmt::format("frame{}.rgb", f)));
      if (!a.examples.empty() && f == 0)
        draw_examples(scene.image.clone(), scene.faces, dets, fs::path(a.examples) / fmt::format("scene_{}px.png", size));
      truth.push_back(scene.faces);
      progress.update(++done);
    }
    if (b.js) {
      const auto res = run_reference(b.ref, a.min_score, rgb, b.tmp);
      for (std::size_t f = 0; f < res.size(); ++f) tally[S - 1].add(truth[f], res[f].faces);
      for (int f = 0; f < a.frames; ++f) fs::remove(b.tmp / fmt::format("frame{}.rgb", f));
    }
    json row{{"face_size", size}};
    for (std::size_t s = 0; s < S; ++s) row["settings"][b.names[s]] = tally[s].summary(a.seed);
    by_size.push_back(row);
  }
  return by_size;
}

const std::pair<int, int> kTimingFrames[2] = {{640, 480}, {1920, 1080}};

std::string frame_key(std::size_t k) { return fmt::format("{}x{}", kTimingFrames[k].first, kTimingFrames[k].second); }

// The reference times detectAllFaces per photo; the same frame repeated
// gives its warm-up and then the runs.
json time_reference(const Bench& b, const std::vector<cv::Mat>& frames) {
  const int repeat = b.a.repeat;
  std::vector<std::string> args;
  for (std::size_t k = 0; k < 2; ++k) {
    const std::string arg = write_rgb(frames[k], b.tmp / fmt::format("timing{}.rgb", k));
    for (int r = 0; r <= repeat; ++r) args.push_back(arg);
  }
  const auto res = run_reference(b.ref, b.a.min_score, args, b.tmp);
  json t;
  for (std::size_t k = 0; k < 2; ++k) {
    std::vector<double> ms;
    for (int r = 1; r <= repeat; ++r) ms.push_back(res[k * static_cast<std::size_t>(repeat + 1) + static_cast<std::size_t>(r)].ms);
    t[frame_key(k)]["boxes_ms"] = median(ms);
    t[frame_key(k)]["boxes_runs_ms"] = ms;
  }
  return t;
}

// Milliseconds per 640x480 and 1920x1080 frame, per setting (boxes alone and
// with landmarks) and for the reference.
json time_settings(const Bench& b) {
  const BenchArgs& a = b.a;
  std::vector<cv::Mat> frames;
  for (const auto& [w, h] : kTimingFrames) {
    synth::SceneOptions so;
    so.width = w;
    so.height = h;
    so.faces = w < 1000 ? 4 : 12;
    so.face_size = 48;
    so.threads = a.threads;
    so.seed = synth::derive_seed(a.seed, 0x7173e, static_cast<uint64_t>(w));
    frames.push_back(synth::render_scene(so).image);
  }
  spdlog::info("bench detect: timing ({} runs per frame after a warm-up, median reported)", a.repeat);
  json timing;
  for (const auto& s : b.settings) {
    json t;
    for (std::size_t k = 0; k < 2; ++k) {
      const cv::Mat& img = frames[k];
      const auto full = time_runs([&] { (void)s.full->detect(img); }, a.repeat);
      t[frame_key(k)]["with_landmarks_ms"] = median(full);
      t[frame_key(k)]["with_landmarks_runs_ms"] = full;
      if (s.ssd) {
        const auto boxes = time_runs([&] { (void)s.ssd->detect(img); }, a.repeat);
        t[frame_key(k)]["boxes_ms"] = median(boxes);
        t[frame_key(k)]["boxes_runs_ms"] = boxes;
      }
    }
    timing[s.name] = t;
  }
  if (b.js) timing["ssd (JavaScript reference)"] = time_reference(b, frames);
  return timing;
}

// --photos, or the package's six group photos (its demo/ folder also holds
// screenshots of its web page, which are not photos).
std::vector<fs::path> find_photos(const BenchArgs& a, fs::path& photo_dir) {
  photo_dir = a.photos;
  const bool package_demo = photo_dir.empty();
  if (package_demo) {
    const fs::path model = a.weights.empty() ? deploy::default_ssd_model_dir() : fs::path(a.weights);
    photo_dir = model.parent_path() / "demo";
  }
  std::vector<fs::path> photos;
  std::error_code ec;
  if (fs::is_directory(photo_dir, ec))
    for (const auto& e : fs::directory_iterator(photo_dir)) {
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      const bool image = ext == ".jpg" || ext == ".jpeg" || ext == ".png";
      if (e.is_regular_file() && image && (!package_demo || e.path().filename().string().rfind("sample", 0) == 0))
        photos.push_back(e.path());
    }
  std::sort(photos.begin(), photos.end());
  return photos;
}

// Faces each setting and the reference find on the real photos.
json count_on_photos(const Bench& b) {
  fs::path photo_dir;
  const std::vector<fs::path> photos = find_photos(b.a, photo_dir);
  json rows = json::array();
  if (photos.empty()) {
    spdlog::warn("bench detect: no photos in {} (--photos DIR): the real-photo count is skipped", photo_dir.string());
  } else {
    std::vector<std::string> args;
    for (const auto& p : photos) {
      cv::Mat img = deploy::read_image(p);
      if (img.empty()) continue;
      json row{{"photo", p.filename().string()}, {"size", {img.cols, img.rows}}};
      for (const auto& s : b.settings) row["faces"][s.name] = s.detect(img).size();
      if (b.js) args.push_back(write_rgb(img, b.tmp / fmt::format("photo{}.rgb", args.size())));
      rows.push_back(row);
    }
    if (b.js && !args.empty()) {
      const auto res = run_reference(b.ref, b.a.min_score, args, b.tmp);
      for (std::size_t k = 0; k < res.size(); ++k) rows[k]["faces"]["ssd (JavaScript reference)"] = res[k].faces.size();
    }
  }
  return {{"folder", photo_dir.string()}, {"rows", rows}};
}

// A Markdown table's header: `first` then one column per name, aligned by `rule`.
void print_header(const std::string& first, const std::string& first_rule, const std::vector<std::string>& names,
                  const char* rule) {
  std::cout << "| " << first << " |";
  for (const auto& n : names) std::cout << " " << n << " |";
  std::cout << "\n|" << first_rule << "|";
  for (std::size_t s = 0; s < names.size(); ++s) std::cout << rule;
  std::cout << "\n";
}

// The three Markdown tables (recall, speed, real photos) and the notes, on stdout.
void print_report(const BenchArgs& a, const std::vector<std::string>& names, const json& j, double load) {
  const json& by_size = j["recall_by_size"];
  if (!by_size.empty()) {
    std::cout << fmt::format("\n## Detection on synthetic scenes ({}x{}, {} frames x {} faces per size, min score {:g})\n\n"
                             "recall (95 % Wilson interval) · false detections per frame\n\n",
                             a.width, a.height, a.frames, a.faces, a.min_score);
    print_header("face px", "---:", names, "---|");
    for (const json& row : by_size) {
      std::cout << "| " << row["face_size"].get<int>() << " |";
      for (const auto& n : names) std::cout << " " << cell(row["settings"][n]) << " |";
      std::cout << "\n";
    }
  }
  std::cout << fmt::format("\n## Milliseconds per frame ({} threads, median of {}; load average {:.1f} at start)\n\n"
                           "| setting | 640x480 | 1920x1080 | 640x480 with landmarks | 1920x1080 with landmarks |\n"
                           "|---|---:|---:|---:|---:|\n",
                           a.threads, a.repeat, load);
  for (const auto& name : names) {
    const json& t = j["timing"][name];
    auto ms = [&](const char* frame, const char* what) {
      return t[frame].contains(what) ? fmt::format("{:.0f}", t[frame][what].get<double>()) : std::string("–");
    };
    std::cout << fmt::format("| {} | {} | {} | {} | {} |\n", name, ms("640x480", "boxes_ms"), ms("1920x1080", "boxes_ms"),
                             ms("640x480", "with_landmarks_ms"), ms("1920x1080", "with_landmarks_ms"));
  }
  const json& photo_rows = j["photos"]["rows"];
  if (!photo_rows.empty()) {
    std::cout << "\n## Faces found on the real photos\n\n";
    print_header("photo", "---", names, "---:|");
    for (const json& row : photo_rows) {
      std::cout << "| " << row["photo"].get<std::string>() << " |";
      for (const auto& n : names) std::cout << " " << (row["faces"].contains(n) ? row["faces"][n].dump() : "–") << " |";
      std::cout << "\n";
    }
  }
  std::cout << "\nJavaScript reference: " << j["reference"].get<std::string>()
            << "\nIJB-S-style frames: " << j["ijbs"]["skipped"].get<std::string>() << "\n";
}

int run_bench(const BenchArgs& a) {
  require(a.frames >= 1 && a.faces >= 1 && !a.sizes.empty() && a.repeat >= 1 && a.threads >= 1,
          "bench detect: need at least one size, frame, face, repeat and thread");
  at::set_num_threads(a.threads);
  cv::setNumThreads(a.threads);
  const fs::path tmp = fs::temp_directory_path() / fmt::format("qface-bench-detect-{}", ::getpid());
  ensure_dir(tmp);
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{tmp};
  if (!a.examples.empty()) ensure_dir(a.examples);

  const std::vector<Setting> settings = make_settings(a);
  const Reference ref = find_reference(a, tmp);
  Bench b{.a = a, .settings = settings, .ref = ref, .js = !ref.node.empty(), .tmp = tmp};
  for (const auto& s : settings) b.names.push_back(s.name);
  if (b.js) b.names.push_back("ssd (JavaScript reference)");
  spdlog::info("bench detect: settings {}; reference: {}", [&] {
    std::string n;
    for (const auto& s : settings) n += (n.empty() ? "" : ", ") + s.name;
    return n;
  }(), ref.note);
  const std::array<double, 3> load = load_average();
  json j = describe_bench(a, settings, ref, load);
  if (load[0] > a.threads)
    spdlog::warn("bench detect: load average {:.1f} on {} threads: another job shares the CPU, timings are not clean",
                 load[0], a.threads);
  j["recall_by_size"] = recall_by_size(b);
  j["timing"] = time_settings(b);
  j["photos"] = count_on_photos(b);
  // `qface synth` renders the surveillance set's stills and video frames as
  // aligned 112x112 crops (Job::loose_size 0, synth/writer.h): the face
  // is the whole image, already found and aligned, so a detector count on
  // them would measure nothing; surveillance-like faces in frames are the
  // scenes above at 16-48 px.
  j["ijbs"] = {{"skipped", "qface synth writes the IJB-S-style frames as aligned 112x112 crops, not scenes: "
                           "nothing to detect"}};
  print_report(a, b.names, j, load[0]);
  if (!a.out.empty()) eval::write_json(a.out, j);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<BenchArgs>();
  app.add_option("--sizes", a->sizes, "face sizes (px: side of the aligned-crop square)")->capture_default_str()->delimiter(',');
  app.add_option("--frames", a->frames, "frames per face size")->capture_default_str()->check(CLI::Range(1, 100000));
  app.add_option("--faces", a->faces, "faces per frame")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--width", a->width, "frame width")->capture_default_str()->check(CLI::Range(64, 16384));
  app.add_option("--height", a->height, "frame height")->capture_default_str()->check(CLI::Range(64, 16384));
  app.add_option("--seed", a->seed, "scene seed")->capture_default_str();
  app.add_option("--min-score", a->min_score, "ssd: face probability a box needs (also the reference's)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 0.99));
  app.add_option("--scan", a->scans, "ssd scan factors to measure (the photo resized by it, through the network whole)")
      ->capture_default_str()
      ->delimiter(',')
      ->check(CLI::Range(0.25, 4.0));
  app.add_option("--scan-max-pixels", a->scan_max_pixels,
                 "ssd: scans over this many pixels run at the factor that fits (0: each factor as asked; the "
                 "detector's default is 4e6, which a 1920x1080 frame at 1.25 fits)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--hog-upsample", a->upsample, "hog: image doublings")->capture_default_str()->check(CLI::Range(0, 3));
  app.add_option("--hog-max-pixels", a->max_pixels, "hog: larger frames are scaled down to this area first")->capture_default_str();
  app.add_option("--threads", a->threads, "threads (LibTorch, OpenCV, scene rendering)")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--repeat", a->repeat, "timed runs per frame (median reported)")->capture_default_str()->check(CLI::Range(1, 1000));
  app.add_option("--detector-weights", a->weights, "ssd model folder (default: the npm package scripts/setup.sh installs)");
  app.add_option("--reference-dir", a->reference_dir, "folder of detect.mjs and its node_modules (default: tests/deploy/ssd_reference)");
  app.add_flag("--no-js", a->no_js, "skip face-api's JavaScript reference");
  app.add_flag("--no-recall", a->no_recall, "skip the synthetic scenes (timing and real photos only)");
  app.add_option("--photos", a->photos, "folder of real photos to count faces on (default: the npm package's demo/)");
  app.add_option("--examples", a->examples, "write the first frame of each size here as PNG: ground-truth squares green, detections "
                 "of the settings in order red, orange, blue, magenta, yellow (ssd, ssd scans..., hog)");
  app.add_option("--out", a->out, "JSON output");
  return [a] { return run_bench(*a); };
}

const Registrar registrar{{"detect",
                           "Face detection recall and false detections by face size on synthetic scenes (ssd, ssd "
                           "scans, hog, face-api's JavaScript), speed per frame, faces on real photos",
                           setup, "bench"}};

}  // namespace
}  // namespace qface::cli
