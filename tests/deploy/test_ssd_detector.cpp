// The SSD face detector: the TensorFlow.js weight reader on crafted files,
// the input resize and the box decoding against hand-derived values, the
// scan's anchor grid and padding offsets, and the whole detector against face-api's own JavaScript
// (tests/deploy/ssd_reference, TensorFlow.js's WASM backend in node) on the
// package's six group photos. The reference part is skipped, saying why,
// without node; it fails when the npm folders are missing (scripts/setup.sh,
// which `make test` runs, installs them).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
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

TEST(SsdDetector, LevelOffsetsFollowTheSamePadding) {
  // 512 and its multiples: every stride-2 convolution sees an even size.
  for (int64_t n : {512, 1024, 2048}) EXPECT_EQ(dp::ssd_level_offsets(n), std::vector<double>(6, 0.0)) << n;
  // 1088 rows: 17 rows enter the stride-64 convolution (pads one before: -64),
  // 9 the stride-128 one (-128 more), 5 the stride-256 one (-256 more).
  EXPECT_EQ(dp::ssd_level_offsets(1088), (std::vector<double>{0, 0, 0, -64, -192, -448}));
  // 1920 columns: only 15 at the stride-128 convolution is odd.
  EXPECT_EQ(dp::ssd_level_offsets(1920), (std::vector<double>{0, 0, 0, 0, -128, -128}));
}

TEST(SsdDetector, ScanFactorAndWholePhotoPass) {
  dp::SsdOptions o;  // scan 1.25, at most 4 MP
  EXPECT_EQ(o.scan, 1.25);
  EXPECT_EQ(dp::scan_factor(1920, 1080, o), 1.25);                          // 3.2 MP
  EXPECT_NEAR(dp::scan_factor(4000, 3000, o), std::sqrt(4.0 / 12), 1e-12);  // a 12-MP photo
  EXPECT_NEAR(dp::scan_factor(7680, 4320, o), std::sqrt(4e6 / (7680.0 * 4320)), 1e-12);
  o.scan = 2;
  EXPECT_NEAR(dp::scan_factor(1920, 1080, o), std::sqrt(4e6 / (1920.0 * 1080)), 1e-12);  // 8.3 MP does not fit
  o.scan_max_pixels = 0;
  EXPECT_EQ(dp::scan_factor(1920, 1080, o), 2.0);  // 0: no limit
  o.scan = 0;
  EXPECT_EQ(dp::scan_factor(1920, 1080, o), 0.0);
  // Which passes run: the whole photo alone without a scan, or when its 512
  // input enlarges the photo more than the scan; the scan, plus the whole
  // photo when a face may outgrow the scan's ~500-px anchors.
  auto passes = [](int w, int h, double f) {
    const dp::SsdPasses p = dp::ssd_passes(w, h, f);
    return std::pair{p.whole, p.scan};
  };
  EXPECT_EQ(passes(1920, 1080, 0), std::pair(true, false));
  EXPECT_EQ(passes(1920, 1080, 1), std::pair(true, true));
  EXPECT_EQ(passes(640, 480, 1), std::pair(false, true));
  EXPECT_EQ(passes(640, 480, 1.5), std::pair(true, true));  // 720 scan pixels tall
  EXPECT_EQ(passes(96, 96, 1), std::pair(true, false));     // the 512 input sees it 5.3x larger
  EXPECT_EQ(passes(400, 300, 1.5), std::pair(false, true)); // 600 x 450 scan pixels
}

namespace {

dp::SsdMobileNetV1 load_network() {
  dp::SsdMobileNetV1 net(qface::io::read_tfjs_weights(dp::default_ssd_model_dir() / "ssd_mobilenetv1_model-weights_manifest.json"));
  net->eval();
  return net;
}

// An RGB photo as the network's input: [1, 3, height, width], the photo at
// (top, left), black (-1) elsewhere, as the detector pads.
torch::Tensor input_of(const cv::Mat& rgb, int64_t height, int64_t width, int64_t top, int64_t left) {
  torch::Tensor x = torch::full({1, 3, height, width}, -1.f);
  const torch::Tensor px = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).permute({2, 0, 1});
  x[0].slice(1, top, top + rgb.rows).slice(2, left, left + rgb.cols).copy_(px.to(torch::kFloat32) / 127.5f - 1.f);
  return x;
}

double box_iou(const torch::Tensor& a, const torch::Tensor& b) {  // ymin, xmin, ymax, xmax
  const double h = std::max(0.0, std::min(a[2].item<double>(), b[2].item<double>()) - std::max(a[0].item<double>(), b[0].item<double>()));
  const double w = std::max(0.0, std::min(a[3].item<double>(), b[3].item<double>()) - std::max(a[1].item<double>(), b[1].item<double>()));
  auto area = [](const torch::Tensor& t) { return (t[2] - t[0]).item<double>() * (t[3] - t[1]).item<double>(); };
  return h * w / (area(a) + area(b) - h * w);
}

}  // namespace

TEST(SsdDetector, GridAnchorsAreTheFilesAnchorsAt512) {
  auto net = load_network();
  EXPECT_TRUE(torch::allclose(net->grid_anchors(512, 512) / 512, net->anchors(), 0, 1e-6));
  // 1088 x 1920: levels of 68x120x3, 34x60x6, 17x30x6, 9x15x6, 5x8x6, 3x4x6 cells.
  const torch::Tensor a = net->grid_anchors(1088, 1920);
  ASSERT_EQ(a.size(0), 24480 + 12240 + 3060 + 810 + 240 + 72);
  // The first anchor of level 0 sits on the first 16-pixel cell; the first
  // of level 3 (stride 128) 64 pixels above its 512-layout place (64, 64).
  EXPECT_NEAR((a[0][0] + a[0][2]).item<double>() / 2, 8, 1e-4);
  EXPECT_NEAR((a[0][1] + a[0][3]).item<double>() / 2, 8, 1e-4);
  const int64_t l3 = 24480 + 12240 + 3060;
  EXPECT_NEAR((a[l3][0] + a[l3][2]).item<double>() / 2, 0, 1e-4);
  EXPECT_NEAR((a[l3][1] + a[l3][3]).item<double>() / 2, 64, 1e-4);
  torch::NoGradGuard no_grad;
  const auto levels = net->levels(torch::zeros({1, 3, 1088, 1920}));
  const int64_t rows[6] = {68, 34, 17, 9, 5, 3}, cols[6] = {120, 60, 30, 15, 8, 4};
  for (int l = 0; l < 6; ++l) {
    EXPECT_EQ(levels[l].rows, rows[l]);
    EXPECT_EQ(levels[l].cols, cols[l]);
  }
}

// A face the network sees in a 512 input is found at the same place, with
// about the same score, when the same pixels sit anywhere in a 1088 x 1920
// input: the larger grid's anchors (with the padding offsets of its odd
// deep levels) stand where the 512 layout's stood.
TEST(SsdDetector, ScanFindsAFaceWhereverItSits) {
  auto net = load_network();
  torch::NoGradGuard no_grad;
  // The largest face of the package's first photo, cropped with a margin and
  // enlarged so it fills ~70 % of a 512 square (a deep level's face).
  dp::SsdOptions o;
  o.scan = 0;
  const cv::Mat photo = dp::read_image(dp::default_ssd_model_dir().parent_path() / "demo/sample1.jpg");
  ASSERT_FALSE(photo.empty());
  const auto faces = dp::SsdFaceDetector(o).detect(photo);
  ASSERT_FALSE(faces.empty());
  const cv::Rect2d f = faces[0].box;
  const double side = 1.4 * std::max(f.width, f.height);
  cv::Rect r(static_cast<int>(f.x + f.width / 2 - side / 2), static_cast<int>(f.y + f.height / 2 - side / 2), static_cast<int>(side),
             static_cast<int>(side));
  r &= cv::Rect(0, 0, photo.cols, photo.rows);
  cv::Mat crop, rgb;
  cv::resize(photo(r), crop, cv::Size(512, 512), 0, 0, cv::INTER_LINEAR);
  cv::cvtColor(crop, rgb, cv::COLOR_BGR2RGB);
  const dp::SsdRaw ref = net->forward(input_of(rgb, 512, 512, 0, 0));
  const int64_t best = ref.scores[0].argmax().item<int64_t>();
  const torch::Tensor want = ref.boxes[0][best] * 512;
  ASSERT_GT(ref.scores[0][best].item<double>(), 0.9);
  ASSERT_GT((want[2] - want[0]).item<double>(), 250);  // a face for the deep levels
  const torch::Tensor anchors = net->grid_anchors(1088, 1920);
  const std::vector<double> row_offsets = dp::ssd_level_offsets(1088);
  const int64_t level_start[7] = {0, 24480, 36720, 39780, 40590, 40830, 40902};
  int corrected = 0;
  for (const auto& [top, left] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {576, 1408}, {300, 777}}) {
    std::vector<torch::Tensor> enc, scores;
    for (auto& l : net->levels(input_of(rgb, 1088, 1920, top, left))) {
      enc.push_back(l.encodings[0]);
      scores.push_back(l.scores[0]);
    }
    const torch::Tensor s = torch::cat(scores), e = torch::cat(enc)[s.argmax()];
    const int64_t k = s.argmax().item<int64_t>();
    const torch::Tensor shift = torch::tensor({top, left, top, left}, torch::kFloat32);
    const torch::Tensor got = dp::decode_ssd_boxes(e, anchors[k]) - shift;
    // The surroundings differ (black canvas, not the 512 input's edge), and
    // the deep levels' cells see them: the box moves by a few pixels.
    EXPECT_GT(box_iou(got, want), 0.85) << "at " << top << ", " << left << ": " << got << " vs " << want;
    EXPECT_NEAR(s[k].item<double>(), ref.scores[0][best].item<double>(), 0.15) << "at " << top << ", " << left;
    // Where the face's level has a row offset, the anchors laid without it
    // would put the box that many pixels off.
    const int level = static_cast<int>(std::upper_bound(level_start, level_start + 7, k) - level_start) - 1;
    if (row_offsets[static_cast<std::size_t>(level)] != 0) {
      const double off = row_offsets[static_cast<std::size_t>(level)];
      const torch::Tensor naive = dp::decode_ssd_boxes(e, anchors[k] - torch::tensor({off, 0.0, off, 0.0}, torch::kFloat32)) - shift;
      EXPECT_GT(box_iou(got, want), box_iou(naive, want) + 0.1) << "level " << level;
      ++corrected;
    }
  }
  EXPECT_GE(corrected, 1);  // the face was found on a level with an offset at least once
}

// A 512 x 512 photo's scan is the reference's whole-photo pass: the same
// input, the same anchors, so the same faces.
TEST(SsdDetector, ScanOfA512PhotoIsTheWholePhotoPass) {
  cv::Mat photo = dp::read_image(dp::default_ssd_model_dir().parent_path() / "demo/sample2.jpg");
  ASSERT_FALSE(photo.empty());
  cv::resize(photo, photo, cv::Size(512, 512), 0, 0, cv::INTER_AREA);
  dp::SsdOptions o;
  o.scan = 0;
  const auto whole = dp::SsdFaceDetector(o).detect(photo);
  o.scan = 1;
  ASSERT_FALSE(dp::ssd_passes(512, 512, 1).whole);
  const auto scanned = dp::SsdFaceDetector(o).detect(photo);
  ASSERT_GE(whole.size(), 2u);
  ASSERT_EQ(scanned.size(), whole.size());
  for (std::size_t k = 0; k < whole.size(); ++k) {
    EXPECT_NEAR(scanned[k].score, whole[k].score, 1e-5);
    EXPECT_NEAR(scanned[k].box.x, whole[k].box.x, 1e-3);
    EXPECT_NEAR(scanned[k].box.y, whole[k].box.y, 1e-3);
    EXPECT_NEAR(scanned[k].box.width, whole[k].box.width, 1e-3);
    EXPECT_NEAR(scanned[k].box.height, whole[k].box.height, 1e-3);
  }
}

// face-api's network scores this plain wall 0.72 (its whole-photo pass); a
// box without image structure is dropped whatever the score.
TEST(SsdDetector, APlainWallIsNoFace) {
  const cv::Mat wall(240, 240, CV_8UC3, cv::Scalar(80, 120, 160));
  for (double scan : {0.0, 1.25, 2.0}) {
    dp::SsdOptions o;
    o.scan = scan;
    EXPECT_TRUE(dp::SsdFaceDetector(o).detect(wall).empty()) << "scan " << scan;
  }
  // Structure is enough: the same wall with noise of std ~3 is kept when the network fires.
  cv::Mat noisy = wall.clone();
  cv::randn(noisy, cv::Scalar(80, 120, 160), cv::Scalar(3, 3, 3));
  dp::SsdOptions o;
  o.scan = 0;
  o.min_score = 0.05;
  EXPECT_FALSE(dp::SsdFaceDetector(o).detect(noisy).empty());
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
  o.scan = 0;  // face-api's own setting: one whole-photo pass
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
