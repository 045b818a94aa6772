// `qface serve` request decoding (request.h) without a server: base64, JSON
// bodies, and images whose header declares more pixels than allowed.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "qface/core/fs.h"
#include "qface/data/image.h"
#include "qface/deploy/align.h"
#include "qface/deploy/request.h"
#include "tests/support/testing.h"

namespace qd = qface::deploy;
using nlohmann::json;

namespace {
std::string png(int w, int h) {
  std::vector<uchar> buf;
  cv::imencode(".png", cv::Mat(h, w, CV_8UC3, cv::Scalar(10, 20, 30)), buf);
  return std::string(buf.begin(), buf.end());
}
int status_of(const std::function<void()>& f, std::string* msg = nullptr) {
  try {
    f();
  } catch (const qd::HttpError& e) {
    if (msg) *msg = e.what();
    return e.status;
  }
  return 200;
}
}  // namespace

TEST(Request, ImagesDecodeFromRawBodiesAndBase64) {
  const std::string p = png(8, 6);
  cv::Mat a = qd::request_image(nullptr, p, "image", 1000);
  EXPECT_EQ(a.cols, 8);
  EXPECT_EQ(a.rows, 6);
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string b64;
  for (std::size_t i = 0; i < p.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(p[i]) << 16;
    if (i + 1 < p.size()) v |= static_cast<uint8_t>(p[i + 1]) << 8;
    if (i + 2 < p.size()) v |= static_cast<uint8_t>(p[i + 2]);
    b64 += kAlphabet[(v >> 18) & 63];
    b64 += kAlphabet[(v >> 12) & 63];
    b64 += i + 1 < p.size() ? kAlphabet[(v >> 6) & 63] : '=';
    b64 += i + 2 < p.size() ? kAlphabet[v & 63] : '=';
  }
  const json body = qd::parse_json_body(json{{"image", b64}}.dump());
  EXPECT_EQ(qd::request_image(&body, {}, "image", 1000).cols, 8);
  std::string msg;
  EXPECT_EQ(status_of([&] { qd::parse_json_body("[1, 2]"); }, &msg), 400);
  EXPECT_NE(msg.find("JSON object"), std::string::npos);
  EXPECT_EQ(status_of([&] { qd::parse_json_body("{\"image\": "); }, &msg), 400);
  EXPECT_NE(msg.find("bad JSON at byte"), std::string::npos);
  const json bad = json{{"image", "ab!c"}};
  EXPECT_EQ(status_of([&] { qd::request_image(&bad, {}, "image", 1000); }, &msg), 400);
  EXPECT_NE(msg.find("invalid base64 character at offset 2"), std::string::npos);
  const json number = json{{"image", 3}};
  EXPECT_EQ(status_of([&] { qd::request_image(&number, {}, "image", 1000); }), 400);
}

TEST(Request, PixelLimitIsCheckedBeforeDecoding) {
  // A 30-byte PNG header declaring 100000 x 100000 pixels (30 GB as BGR): refused
  // from the header, before OpenCV would allocate it.
  std::string bomb = png(8, 6);
  auto be32 = [&](std::size_t o, uint32_t v) {
    for (int i = 0; i < 4; ++i) bomb[o + i] = static_cast<char>(v >> (24 - 8 * i));
  };
  be32(16, 100000);
  be32(20, 100000);
  std::string msg;
  EXPECT_EQ(status_of([&] { qd::request_image(nullptr, bomb, "image", 40'000'000); }, &msg), 400);
  EXPECT_NE(msg.find("100000x100000 image exceeds the 40000000 pixel limit"), std::string::npos) << msg;
  // Over the limit by a little, and dimensions whose product overflows int.
  EXPECT_EQ(status_of([&] { qd::request_image(nullptr, png(8, 6), "image", 47); }, &msg), 400);
  EXPECT_NE(msg.find("8x6 image exceeds the 47 pixel limit"), std::string::npos) << msg;
  be32(16, 0x7fffffff);
  be32(20, 0x7fffffff);
  EXPECT_EQ(status_of([&] { qd::request_image(nullptr, bomb, "image", 40'000'000); }), 400);
  // Unknown formats and cut headers.
  EXPECT_EQ(status_of([&] { qd::request_image(nullptr, "GIF89a....", "image", 1000); }, &msg), 400);
  EXPECT_NE(msg.find("not a decodable image"), std::string::npos);
  EXPECT_EQ(status_of([&] { qd::request_image(nullptr, png(8, 6).substr(0, 20), "image", 1000); }, &msg), 400);
  EXPECT_NE(msg.find("cannot read the png header"), std::string::npos) << msg;
}

TEST(Request, ImageFilesGoThroughTheSameHeaderCheck) {
  // The CLI's read_image (align, verify, search, quality) refuses the same
  // crafted header instead of letting cv::imread allocate it.
  qface::testing::TempDir tmp;
  std::string bomb = png(8, 6);
  for (int o : {16, 20})
    for (int i = 0; i < 4; ++i) bomb[o + i] = static_cast<char>(100000u >> (24 - 8 * i));
  qface::write_file_atomic(tmp / "bomb.png", bomb);
  qface::write_file_atomic(tmp / "ok.png", png(8, 6));
  qface::write_file_atomic(tmp / "cut.png", png(8, 6).substr(0, 40));
  EXPECT_TRUE(qd::read_image(tmp / "bomb.png").empty());
  EXPECT_TRUE(qd::read_image(tmp / "cut.png").empty());
  EXPECT_TRUE(qd::read_image(tmp / "missing.png").empty());
  const cv::Mat ok = qd::read_image(tmp / "ok.png");
  EXPECT_EQ(ok.cols, 8);
  EXPECT_EQ(ok.rows, 6);
  EXPECT_EQ(ok.at<cv::Vec3b>(0, 0), cv::Vec3b(10, 20, 30));
}

TEST(Request, TruncatedJpegIsRefusedNotEmbeddedHalfGrey) {
  // libjpeg decodes the first half of a JPEG with a warning and fills the
  // rest with grey; training data keeps that leniency (data::decode_bgr), a
  // photo that a decision is taken on does not (found by the serve load test).
  cv::Mat img(64, 48, CV_8UC3);
  cv::randu(img, 0, 255);
  std::vector<uchar> buf;
  cv::imencode(".jpg", img, buf);
  const std::string jpeg(buf.begin(), buf.end()), half = jpeg.substr(0, jpeg.size() / 2);
  const cv::Mat lenient = qface::data::decode_bgr(half, "half.jpg");
  EXPECT_EQ(lenient.cols, 48);
  EXPECT_EQ(lenient.rows, 64);
  std::string msg;
  EXPECT_EQ(status_of([&] { qd::request_image(nullptr, half, "image", 1'000'000); }, &msg), 400);
  EXPECT_NE(msg.find("damaged JPEG"), std::string::npos) << msg;
  EXPECT_EQ(status_of([&] { qd::request_image(nullptr, jpeg, "image", 1'000'000); }), 200);
}

TEST(Request, NumbersTooLargeForJsonAre400NotInternalErrors) {
  // nlohmann throws out_of_range (not parse_error) for 1e888...: it was a 500 (found by fuzz_serve_request).
  std::string msg;
  EXPECT_EQ(status_of([&] { qd::parse_json_body(R"({"far": 8888E8888888})"); }, &msg), 400);
  EXPECT_NE(msg.find("bad JSON"), std::string::npos) << msg;
  EXPECT_NE(msg.find("number overflow"), std::string::npos) << msg;
}
