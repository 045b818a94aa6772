#include "qface/data/tools.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <opencv2/imgproc.hpp>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/progress.h"
#include "qface/data/image.h"
#include "qface/data/source.h"

namespace qface::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Temporary file + rename, without the fsync per file that would make
// unpacking millions of images crawl; a crash never leaves a partial image
// under its final name.
void write_image_file(const fs::path& path, const std::string& bytes) {
  static std::atomic<unsigned> counter{0};
  const fs::path tmp = path.parent_path() / fmt::format(".{}.tmp.{}.{}", path.filename().string(), ::getpid(), counter++);
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      fail("{}: cannot write", path.string());
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail("{}: cannot rename temporary file into place: {}", path.string(), ec.message());
  }
}

}  // namespace

fs::path rec_path_for_prefix(const fs::path& prefix) {
  if (prefix.extension() == ".rec") return prefix;
  return fs::path(prefix.string() + ".rec");
}

PackReport pack_folder(const fs::path& dir, const fs::path& prefix, bool skip_bad) {
  ImageFolder folder = list_image_folder(dir);
  require(!folder.images.empty(), "{}: no images (jpg, jpeg, png, bmp, webp) in its identity folders", dir.string());
  const fs::path rec = rec_path_for_prefix(prefix);
  FaceRecordWriter writer(rec);
  PackReport report;
  report.identities = static_cast<int64_t>(folder.identities.size());
  Progress progress("pack " + rec.string(), static_cast<int64_t>(folder.images.size()), "images");
  for (std::size_t i = 0; i < folder.images.size(); ++i) {
    const auto& [path, label] = folder.images[i];
    try {
      const std::string bytes = read_file(path);
      decode_bgr(bytes, path.string());
      writer.add_image(bytes, label);
      ++report.images;
    } catch (const Error& e) {
      if (!skip_bad) throw;
      spdlog::warn("{} (skipped)", e.what());
      ++report.skipped;
    }
    progress.update(static_cast<int64_t>(i + 1));
  }
  require(report.images > 0, "{}: no image could be packed", dir.string());
  writer.finish(report.identities);
  return report;
}

UnpackReport unpack_records(const fs::path& rec, const fs::path& out, const ReadOptions& options) {
  FaceRecordSet set(rec, options);
  ensure_dir(out);
  UnpackReport report;
  std::map<int64_t, bool> made;
  Progress progress("unpack " + rec.string(), static_cast<int64_t>(set.num_images()), "images");
  for (std::size_t i = 0; i < set.num_images(); ++i) {
    FaceRecordSet::Image im;
    try {
      im = set.read_image(i);
    } catch (const Error& e) {
      if (!options.skip_bad) throw;
      spdlog::warn("{} (skipped)", e.what());
      ++report.skipped;
      continue;
    }
    const fs::path sub = out / std::to_string(im.label);
    if (!made.count(im.label)) {
      ensure_dir(sub);
      made[im.label] = true;
    }
    write_image_file(sub / (std::to_string(im.key) + format_extension(sniff_format(im.encoded))), im.encoded);
    ++report.images;
    progress.update(static_cast<int64_t>(i + 1));
  }
  report.identities = static_cast<int64_t>(made.size());
  report.skipped += static_cast<int64_t>(set.skipped());
  return report;
}

json dataset_info(const fs::path& rec, const ReadOptions& options, int64_t sample) {
  FaceRecordSet set(rec, options);
  const int64_t n = static_cast<int64_t>(set.num_images());
  json info;
  info["file"] = rec.string();
  info["indexed"] = set.file().indexed();
  info["records"] = set.file().size();
  info["has_header"] = set.has_header();
  info["images"] = n;
  // Per-identity counts: from the identity records when there is a header,
  // else from the labels of every image.
  std::vector<int64_t> counts;
  int64_t bad = 0;
  auto note_bad = [&](const Error& e) {
    if (!options.skip_bad) throw e;
    spdlog::warn("{} (skipped)", e.what());
    ++bad;
  };
  if (set.has_header()) {
    for (int64_t c = 0; c < set.num_classes(); ++c) {
      auto [first, end] = set.identity_range(c);
      counts.push_back(static_cast<int64_t>(end - first));
    }
  }
  // Census: every image, or `sample` evenly spaced ones.
  const int64_t step = sample > 0 && sample < n ? n / sample : 1;
  std::map<std::string, int64_t> formats, sizes, channels;
  std::map<int64_t, int64_t> label_counts;
  Progress progress("info " + rec.string(), n, "records");
  int64_t examined = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool census = i % step == 0 && (sample <= 0 || examined < sample);
    if (!census && set.has_header()) continue;
    try {
      auto im = set.read_image(static_cast<std::size_t>(i));
      if (!set.has_header()) ++label_counts[im.label];
      if (census) {
        ++examined;
        const ImageInfo ii = probe_image(im.encoded, fmt::format("{}: record {}", rec.string(), im.key));
        ++formats[format_name(ii.format)];
        ++sizes[fmt::format("{}x{}", ii.width, ii.height)];
        ++channels[std::to_string(ii.channels)];
      }
    } catch (const Error& e) {
      note_bad(e);
    }
    progress.update(i + 1);
  }
  if (!set.has_header()) {
    const int64_t classes = label_counts.empty() ? 0 : label_counts.rbegin()->first + 1;
    counts.assign(static_cast<std::size_t>(classes), 0);
    for (auto [l, c] : label_counts) counts[static_cast<std::size_t>(l)] = c;
  }
  info["identities"] = counts.size();
  info["images_examined"] = examined;
  info["bad_records"] = bad + static_cast<int64_t>(set.skipped());
  json per;
  if (!counts.empty()) {
    std::vector<int64_t> sorted = counts;
    std::sort(sorted.begin(), sorted.end());
    double sum = 0;
    for (int64_t c : sorted) sum += static_cast<double>(c);
    per["min"] = sorted.front();
    per["max"] = sorted.back();
    per["mean"] = sum / static_cast<double>(sorted.size());
    per["median"] = sorted[sorted.size() / 2];
    const std::vector<std::pair<int64_t, std::string>> edges = {
        {1, "0"}, {2, "1"}, {5, "2-4"}, {10, "5-9"}, {20, "10-19"}, {50, "20-49"}, {100, "50-99"},
        {200, "100-199"}, {500, "200-499"}, {INT64_MAX, "500+"}};
    json hist = json::array();
    for (std::size_t b = 0; b < edges.size(); ++b) {
      const int64_t lo = b == 0 ? 0 : edges[b - 1].first, hi = edges[b].first;
      const int64_t k = std::count_if(sorted.begin(), sorted.end(), [&](int64_t c) { return c >= lo && c < hi; });
      hist.push_back({{"images", edges[b].second}, {"identities", k}});
    }
    per["histogram"] = hist;
  }
  info["images_per_identity"] = per;
  info["formats"] = formats;
  info["sizes"] = sizes;
  info["channels"] = channels;
  return info;
}

std::string format_info(const json& j) {
  std::string s;
  s += fmt::format("file        {}{}\n", j["file"].get<std::string>(), j["indexed"].get<bool>() ? "" : " (no .idx: scanned)");
  s += fmt::format("images      {}\n", j["images"].get<int64_t>());
  s += fmt::format("identities  {}{}\n", j["identities"].get<int64_t>(),
                   j["has_header"].get<bool>() ? "" : " (no header record: counted from labels)");
  if (j["images_per_identity"].contains("mean")) {
    const json& p = j["images_per_identity"];
    s += fmt::format("per identity  min {}  median {}  mean {:.1f}  max {}\n", p["min"].get<int64_t>(),
                     p["median"].get<int64_t>(), p["mean"].get<double>(), p["max"].get<int64_t>());
    for (const auto& h : p["histogram"])
      if (h["identities"].get<int64_t>() > 0)
        s += fmt::format("  {:>8} images: {} identities\n", h["images"].get<std::string>(), h["identities"].get<int64_t>());
  }
  s += fmt::format("census of {} images\n", j["images_examined"].get<int64_t>());
  for (const char* key : {"formats", "sizes", "channels"})
    for (const auto& [k, v] : j[key].items()) s += fmt::format("  {:<9}{:>12}: {}\n", key, k, v.get<int64_t>());
  s += fmt::format("bad records {}\n", j["bad_records"].get<int64_t>());
  return s;
}

cv::Mat preview_grid(const Loader& loader, int64_t n, int64_t epoch) {
  require(n > 0, "preview: need at least one image, got {}", n);
  std::vector<int64_t> order = loader.epoch_order(epoch);
  n = std::min<int64_t>(n, static_cast<int64_t>(order.size()));
  const int size = loader.options().image_size, gap = 2;
  const int cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int rows = static_cast<int>((n + cols - 1) / cols);
  cv::Mat grid = cv::Mat::zeros(rows * (size + gap) + gap, cols * (size + gap) + gap, CV_8UC3);
  for (int64_t k = 0; k < n; ++k) {
    cv::Mat img = loader.load_image(static_cast<std::size_t>(order[static_cast<std::size_t>(k)]), epoch);
    const int r = static_cast<int>(k / cols), c = static_cast<int>(k % cols);
    img.copyTo(grid(cv::Rect(gap + c * (size + gap), gap + r * (size + gap), size, size)));
  }
  return grid;
}

cv::Mat draw_test_face(int64_t identity, int64_t sample, int size) {
  Rng id_rng(mix_seed({static_cast<uint64_t>(identity), 0x1D}));
  Rng s_rng(mix_seed({static_cast<uint64_t>(identity), static_cast<uint64_t>(sample), 0x5A}));
  const double k = size / 112.0;
  auto u = [](Rng& r, double lo, double hi) { return uniform(r, lo, hi); };
  const cv::Scalar bg(u(id_rng, 0, 255), u(id_rng, 0, 255), u(id_rng, 0, 255));
  const cv::Scalar skin(u(id_rng, 60, 200), u(id_rng, 90, 210), u(id_rng, 120, 240));
  const double face_w = u(id_rng, 30, 42), face_h = u(id_rng, 42, 54), eye_dx = u(id_rng, 14, 22);
  const double jx = u(s_rng, -3, 3), jy = u(s_rng, -3, 3), light = u(s_rng, 0.7, 1.2);
  cv::Mat img(size, size, CV_8UC3, bg);
  auto pt = [&](double x, double y) { return cv::Point(static_cast<int>((x + jx) * k), static_cast<int>((y + jy) * k)); };
  auto sz = [&](double a, double b) { return cv::Size(static_cast<int>(a * k), static_cast<int>(b * k)); };
  cv::ellipse(img, pt(56, 60), sz(face_w, face_h), 0, 0, 360, skin * light, cv::FILLED, cv::LINE_AA);
  const cv::Scalar dark(u(id_rng, 10, 80), u(id_rng, 10, 80), u(id_rng, 10, 80));
  for (int side : {-1, 1}) {
    cv::circle(img, pt(48 + side * eye_dx / 2 + 8 * (side > 0), 52), static_cast<int>(4 * k), dark, cv::FILLED, cv::LINE_AA);
    cv::line(img, pt(48 + side * eye_dx / 2 + 8 * (side > 0) - 6, 44), pt(48 + side * eye_dx / 2 + 8 * (side > 0) + 6, 43),
             dark, static_cast<int>(std::max(1.0, 2 * k)), cv::LINE_AA);
  }
  cv::line(img, pt(56, 58), pt(54, 72), dark * 1.5, static_cast<int>(std::max(1.0, 2 * k)), cv::LINE_AA);
  cv::ellipse(img, pt(56, 88), sz(u(id_rng, 8, 14), u(s_rng, 2, 6)), 0, 0, 180, dark, static_cast<int>(std::max(1.0, 2 * k)), cv::LINE_AA);
  // Sensor-like noise from the sample's own generator (deterministic).
  for (int y = 0; y < img.rows; ++y) {
    uchar* row = img.ptr<uchar>(y);
    for (int x = 0; x < img.cols * 3; ++x)
      row[x] = cv::saturate_cast<uchar>(row[x] + static_cast<int>(uniform_int(s_rng, 13)) - 6);
  }
  return img;
}

void write_test_rec(const fs::path& rec, int64_t images, int64_t identities, int size) {
  require(images > 0 && identities > 0, "test set: need images and identities, got {} and {}", images, identities);
  FaceRecordWriter writer(rec);
  for (int64_t i = 0; i < images; ++i) {
    const int64_t label = i * identities / images;  // contiguous, non-decreasing
    writer.add_image(encode_image(draw_test_face(label, i, size), ".jpg", rec.string(), 90), label);
  }
  writer.finish(identities);
}

}  // namespace qface::data
