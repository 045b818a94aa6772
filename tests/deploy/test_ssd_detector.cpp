// The SSD face detector: the TensorFlow.js weight reader on crafted files,
// the input resize and the box decoding against hand-derived values, the
// tiling windows, and the whole detector against face-api's own JavaScript
// (tests/deploy/ssd_reference, TensorFlow.js's WASM backend in node) on the
// package's six group photos. The reference part is skipped, saying why,
// without node; it fails when the npm folders are missing (scripts/setup.sh,
// which `make test` runs, installs them).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/deploy/align.h"
#include "qface/deploy/ssd_detector.h"
#include "qface/deploy/ssd_mobilenet.h"
#include "qface/io/tfjs_weights.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using nlohmann::json;
using qface::testing::TempDir;
using qface::testing::write_text;
namespace dp = qface::deploy;

namespace {

void write_bytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string error_of(const fs::path& manifest) {
  try {
    qface::io::read_tfjs_weights(manifest);
  } catch (const qface::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TfjsWeights, DequantizesInManifestOrder) {
  TempDir dir;
  // uint8 codes 0 1 2 255 with scale 0.5, min -1 -> -1 -0.5 0 126.5; then a
  // float32 [2] and an int32 scalar stored raw.
  std::vector<uint8_t> bytes = {0, 1, 2, 255};
  const float f[2] = {1.5f, -2.25f};
  const int32_t i = 7;
  bytes.insert(bytes.end(), reinterpret_cast<const uint8_t*>(f), reinterpret_cast<const uint8_t*>(f) + 8);
  bytes.insert(bytes.end(), reinterpret_cast<const uint8_t*>(&i), reinterpret_cast<const uint8_t*>(&i) + 4);
  write_bytes(dir / "w.bin", bytes);
  write_text(dir / "m.json", R"([{"paths": ["w.bin"], "weights": [
    {"name": "q", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1}},
    {"name": "f", "shape": [2], "dtype": "float32"},
    {"name": "i", "shape": [], "dtype": "int32"}]}])");
  const auto w = qface::io::read_tfjs_weights(dir / "m.json");
  ASSERT_EQ(w.size(), 3u);
  EXPECT_TRUE(torch::equal(w.at("q"), torch::tensor({-1.f, -0.5f, 0.f, 126.5f}).view({2, 2})));
  EXPECT_TRUE(torch::equal(w.at("f"), torch::tensor({1.5f, -2.25f})));
  EXPECT_EQ(w.at("i").item<int32_t>(), 7);
}

TEST(TfjsWeights, BadFilesAreClearErrors) {
  TempDir dir;
  write_bytes(dir / "w.bin", {1, 2, 3});
  // A weight needing more bytes than the shards hold names itself and the sizes.
  write_text(dir / "short.json", R"([{"paths": ["w.bin"], "weights": [{"name": "big", "shape": [4], "dtype": "float32"}]}])");
  EXPECT_NE(error_of(dir / "short.json").find("'big' needs bytes 0..16 but the group's shards hold 3 bytes"), std::string::npos)
      << error_of(dir / "short.json");
  // Bytes left over are an error too (a manifest for another file).
  write_text(dir / "long.json", R"([{"paths": ["w.bin"], "weights": [{"name": "b", "shape": [1], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 1, "min": 0}}]}])");
  EXPECT_NE(error_of(dir / "long.json").find("the shards hold 3 bytes, the manifest describes 1"), std::string::npos);
  write_text(dir / "escape.json", R"([{"paths": ["../../etc/passwd"], "weights": []}])");
  EXPECT_NE(error_of(dir / "escape.json").find("leaves the model folder"), std::string::npos);
  write_text(dir / "f16.json", R"([{"paths": ["w.bin"], "weights": [{"name": "h", "shape": [1], "dtype": "float32", "quantization": {"dtype": "float16"}}]}])");
  EXPECT_NE(error_of(dir / "f16.json").find("quantization dtype 'float16' is not supported"), std::string::npos);
  write_text(dir / "neg.json", R"([{"paths": ["w.bin"], "weights": [{"name": "n", "shape": [-1], "dtype": "float32"}]}])");
  EXPECT_NE(error_of(dir / "neg.json").find("bad dimension -1"), std::string::npos);
  write_text(dir / "missing.json", R"([{"paths": ["nope.bin"], "weights": []}])");
  EXPECT_NE(error_of(dir / "missing.json").find("nope.bin"), std::string::npos);
  write_text(dir / "text.json", "not json");
  EXPECT_NE(error_of(dir / "text.json").find("not a TensorFlow.js weights manifest"), std::string::npos);
}

TEST(SsdDetector, WindowInputIsTensorFlowsLegacyBilinear) {
  // A 200 x 100 photo with R = x, G = y, B = 7: its window is the 200-pixel
  // square (the reference pads at the bottom), and destination i reads source
  // i * 200 / 512 = 0.390625 i with no half-pixel offset.
  cv::Mat rgb(100, 200, CV_8UC3);
  for (int y = 0; y < 100; ++y)
    for (int x = 0; x < 200; ++x) rgb.at<cv::Vec3b>(y, x) = {static_cast<uint8_t>(x), static_cast<uint8_t>(y), 7};
  std::vector<float> in(3 * 512 * 512);
  dp::window_input(rgb, {0, 0, 200}, in.data());
  auto at = [&](int c, int i, int j) { return (in[static_cast<std::size_t>(c) * 512 * 512 + static_cast<std::size_t>(i) * 512 + j] + 1.f) * 127.5f; };
  EXPECT_NEAR(at(0, 0, 3), 3 * 0.390625, 1e-4);    // between columns 1 and 2: linear in x
  EXPECT_NEAR(at(0, 5, 511), 199, 1e-4);           // 511 * 0.390625 = 199.6: the last column clamps to itself
  EXPECT_NEAR(at(1, 100, 0), 100 * 0.390625, 1e-4);
  EXPECT_NEAR(at(2, 10, 10), 7, 1e-4);
  // Row 254 reads 99.21875: between the last photo row (G = 99) and the black padding.
  EXPECT_NEAR(at(1, 254, 0), 99 * (1 - 0.21875), 1e-3);
  EXPECT_NEAR(at(0, 300, 40), 0, 1e-6);            // inside the padding
}

TEST(SsdDetector, DecodeIsTheSsdBoxCoder) {
  const auto anchor = torch::tensor({0.2f, 0.4f, 0.6f, 0.5f}).view({1, 4});  // centre (0.4, 0.45), size 0.4 x 0.1
  EXPECT_TRUE(torch::allclose(dp::decode_ssd_boxes(torch::zeros({1, 4}), anchor), anchor));
  // ty = 10 moves the centre by one anchor height; th = 5 ln 2 doubles the height.
  const auto e = torch::tensor({10.f, -5.f, 5 * std::log(2.f), 0.f}).view({1, 4});
  const auto want = torch::tensor({0.8f - 0.4f, 0.4f - 0.05f, 0.8f + 0.4f, 0.5f - 0.05f}).view({1, 4});
  EXPECT_TRUE(torch::allclose(dp::decode_ssd_boxes(e, anchor), want, 1e-5, 1e-6)) << dp::decode_ssd_boxes(e, anchor);
}

TEST(SsdDetector, TilesCoverTheFrameWithOverlap) {
  // 1920 x 1080, tiles of 768 overlapping by 160 (step 608): columns at 0, 608
  // and 1152 (the last flush with the right edge), rows at 0 and 312.
  const auto w = dp::detection_windows(1920, 1080, 768, 160);
  ASSERT_EQ(w.size(), 7u);
  EXPECT_EQ(w[0].side, 1920);  // the whole-photo pass first
  const std::vector<std::pair<int, int>> want = {{0, 0}, {608, 0}, {1152, 0}, {0, 312}, {608, 312}, {1152, 312}};
  for (std::size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(w[k + 1].x, want[k].first);
    EXPECT_EQ(w[k + 1].y, want[k].second);
    EXPECT_EQ(w[k + 1].side, 768);
  }
  EXPECT_TRUE(w[1].edge_left && w[1].edge_top && !w[1].edge_right && !w[1].edge_bottom);
  EXPECT_TRUE(!w[5].edge_left && !w[5].edge_top && !w[5].edge_right && w[5].edge_bottom);
  EXPECT_TRUE(w[6].edge_right && w[6].edge_bottom);
  EXPECT_EQ(dp::detection_windows(640, 480, 768, 160).size(), 1u);  // small photos: the reference pass only
}

TEST(SsdDetector, HugePhotosAreScaledBeforeTiling) {
  dp::SsdOptions o;
  EXPECT_EQ(dp::tile_scale(8000, 6000, o), 1.0);  // no tiles: the reference pass reads any photo at 512
  o.tile = 512;
  EXPECT_EQ(dp::tile_scale(1920, 1080, o), 1.0);
  // 48 MP down to 4 MP: sqrt(4 / 48), 2309 x 1732; 7 x 5 tiles instead of 23 x 17.
  const double s = dp::tile_scale(8000, 6000, o);
  EXPECT_NEAR(s, std::sqrt(4.0 / 48.0), 1e-12);
  const auto w = dp::detection_windows(static_cast<int>(8000 * s), static_cast<int>(6000 * s), 512, 160);
  EXPECT_LE(w.size(), 1u + 7 * 5);
  o.tile_max_pixels = 0;
  EXPECT_EQ(dp::tile_scale(8000, 6000, o), 1.0);  // 0: never
}

TEST(SsdDetector, MissingModelSaysWhatToInstall) {
  TempDir dir;
  dp::SsdOptions o;
  o.model_dir = dir.path();
  try {
    dp::SsdFaceDetector d(o);
    FAIL() << "no error";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("@vladmandic/face-api"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--detector hog"), std::string::npos) << e.what();
  }
}

// qface's detector and face-api's JavaScript on the same pixels: every face
// both find overlaps at IoU >= 0.95 with scores within 0.02, and a face only
// one of them finds scores at most 0.6.
TEST(SsdDetector, EqualsFaceApisJavaScriptOnItsSixPhotos) {
  const std::string node = qface::testing::node_at_least(18);
  if (node.empty()) GTEST_SKIP() << "node >= 18 not installed (scripts/setup.sh installs nodejs): the detector is not compared with its reference";
  const fs::path ref = fs::path(QFACE_SOURCE_DIR) / "tests/deploy/ssd_reference";
  const fs::path package = ref / "node_modules/@vladmandic/face-api";
  ASSERT_TRUE(fs::exists(package / "package.json")) << "the reference is not installed in " << ref.string() << ": run scripts/setup.sh";
  TempDir dir;
  std::vector<std::string> args = {(ref / "detect.mjs").string(), "wasm", "0.4"};
  std::vector<cv::Mat> photos;
  for (int k = 1; k <= 6; ++k) {
    cv::Mat bgr = dp::read_image(package / fmt::format("demo/sample{}.jpg", k));
    ASSERT_FALSE(bgr.empty());
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    const fs::path raw = dir / fmt::format("s{}.rgb", k);
    write_bytes(raw, std::vector<uint8_t>(rgb.data, rgb.data + rgb.total() * 3));
    args.push_back(fmt::format("{}:{}:{}", raw.string(), rgb.cols, rgb.rows));
    photos.push_back(bgr);
  }
  const auto run = qface::testing::run_program(node, args);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json js = json::parse(run.out);
  ASSERT_EQ(js.size(), 6u);
  dp::SsdOptions o;
  o.model_dir = package / "model";
  o.min_score = 0.4;
  const dp::SsdFaceDetector detector(o);
  int matched = 0;
  double worst_iou = 1, worst_score = 0;
  for (std::size_t k = 0; k < 6; ++k) {
    const auto ours = detector.detect(photos[k]);
    std::vector<bool> used(ours.size(), false);
    for (const json& f : js[k]["faces"]) {
      const cv::Rect2d theirs(f["x"].get<double>(), f["y"].get<double>(), f["w"].get<double>(), f["h"].get<double>());
      const double score = f["score"].get<double>();
      double best = 0;
      std::size_t at = 0;
      for (std::size_t q = 0; q < ours.size(); ++q) {
        const double inter = (ours[q].box & theirs).area();
        const double iou = inter / (ours[q].box.area() + theirs.area() - inter);
        if (!used[q] && iou > best) best = iou, at = q;
      }
      if (best < 0.5) {
        EXPECT_LE(score, 0.6) << "photo " << k + 1 << ": face-api's face at " << theirs << " (score " << score << ") not found";
        continue;
      }
      used[at] = true;
      ++matched;
      worst_iou = std::min(worst_iou, best);
      worst_score = std::max(worst_score, std::abs(ours[at].score - score));
      EXPECT_GE(best, 0.95) << "photo " << k + 1 << ": " << theirs << " vs " << ours[at].box;
      EXPECT_NEAR(ours[at].score, score, 0.02) << "photo " << k + 1 << " at " << theirs;
    }
    for (std::size_t q = 0; q < ours.size(); ++q) {
      if (!used[q]) EXPECT_LE(ours[q].score, 0.6) << "photo " << k + 1 << ": only qface finds " << ours[q].box;
    }
  }
  std::printf("%d faces matched; smallest IoU %.4f, largest score difference %.5f\n", matched, worst_iou, worst_score);
  EXPECT_GE(matched, 20);  // the photos hold dozens of faces; a handful would say the comparison ran on nothing
}
