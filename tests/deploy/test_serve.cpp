// qface serve in-process on 127.0.0.1 (any free port): every endpoint, the
// malformed requests (bad JSON, bad base64, not an image, missing fields,
// no face, body over the limit, unknown path) and parallel clients.
#include <dlib/base64.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <sstream>
#include <thread>

#include "qface/core/fs.h"
#include "qface/deploy/service.h"
#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"
#include "qface/synth/render.h"
#include "qface/synth/rng.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using namespace qface::deploy;
using nlohmann::json;

namespace {

std::string png(const cv::Mat& img) {
  std::vector<uchar> buf;
  cv::imencode(".png", img, buf);
  return {buf.begin(), buf.end()};
}

std::string b64(const std::string& bytes) {
  std::istringstream in(bytes);
  std::ostringstream out;
  dlib::base64 b;
  b.set_line_ending(dlib::base64::LF);
  b.encode(in, out);
  return out.str();
}

std::vector<cv::Mat> synth_faces(int n) {
  namespace sy = qface::synth;
  std::vector<cv::Mat> out;
  for (const auto& id : sy::sample_population(8, 1, n, sy::PopulationOptions{})) {
    sy::ImageNuisance nu;
    sy::Rng rng(2);
    sy::derive(nu, rng);
    out.push_back(sy::render_aligned(id, nu).image);
  }
  return out;
}

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    PipelineOptions po;
    po.arch = "mobilefacenet";  // random weights: the service plumbing, not accuracy
    po.random_weights = true;
    pipeline = std::make_shared<const Pipeline>(po);
    faces = synth_faces(3);
    Gallery g = Gallery::create(dir / "gallery", pipeline->dim(), {}, false);
    for (std::size_t i = 0; i < faces.size(); ++i) {
      auto [e, n] = pipeline->embed_crops({faces[i]});
      g.add("person" + std::to_string(i), e, n);
    }
    g.save();
    std::vector<float> imp;
    for (int i = 0; i < 1000; ++i) imp.push_back(-0.5f + i / 1000.f);  // impostors in [-0.5, 0.5)
    qface::write_file_atomic(dir / "cal.json", verify_calibration_json(imp, 1, "flip_fused", "test").dump());
    ServiceOptions so;
    so.port = 0;
    so.max_body_bytes = 1 << 20;
    so.gallery = dir / "gallery";
    so.calibration = dir / "cal.json";
    so.far = 1e-2;
    so.min_quality = 0;
    service = std::make_unique<Service>(pipeline, so);
    port = service->bind();
    server = std::thread([this] { service->run(); });
  }
  void TearDown() override {
    service->stop();
    server.join();
  }
  httplib::Result post(const std::string& path, const std::string& body, const std::string& type = "application/json") {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60);
    return c.Post(path.c_str(), body, type.c_str());
  }
  static json body(const httplib::Result& r) { return json::parse(r->body); }

  qface::testing::TempDir dir;
  std::shared_ptr<const Pipeline> pipeline;
  std::vector<cv::Mat> faces;
  std::unique_ptr<Service> service;
  std::thread server;
  int port = 0;
};

}  // namespace

TEST_F(ServeTest, EndpointsAnswer) {
  httplib::Client c("127.0.0.1", port);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(body(h)["gallery_size"], 3);

  auto e = post("/embed", json{{"image", b64(png(faces[0]))}}.dump());
  ASSERT_TRUE(e);
  ASSERT_EQ(e->status, 200) << e->body;
  const json ej = body(e);
  EXPECT_EQ(ej["embedding"].size(), 512u);
  EXPECT_GT(ej["norm"].get<double>(), 0);
  auto raw = post("/embed", png(faces[0]), "image/png");  // the raw image as the body
  ASSERT_EQ(raw->status, 200) << raw->body;
  EXPECT_NEAR(body(raw)["norm"].get<double>(), ej["norm"].get<double>(), 1e-4);

  auto q = post("/quality", json{{"image", b64(png(faces[1]))}}.dump());
  ASSERT_EQ(q->status, 200) << q->body;
  EXPECT_EQ(body(q)["recapture"], false);

  auto v = post("/verify", json{{"a", b64(png(faces[2]))}, {"b", b64(png(faces[2]))}}.dump());
  ASSERT_EQ(v->status, 200) << v->body;
  EXPECT_NEAR(body(v)["cosine"].get<double>(), 1.0, 1e-4);
  EXPECT_EQ(body(v)["match"], true);
  EXPECT_NEAR(body(v)["threshold"].get<double>(), 0.489, 1e-6);  // 10 of 1000 impostors above

  auto s = post("/search", json{{"image", b64(png(faces[1]))}, {"k", 2}}.dump());
  ASSERT_EQ(s->status, 200) << s->body;
  EXPECT_EQ(body(s)["hits"].size(), 2u);
  EXPECT_EQ(body(s)["hits"][0]["name"], "person1");
  EXPECT_NEAR(body(s)["hits"][0]["score"].get<double>(), 1.0, 1e-4);
  auto se = post("/search", json{{"embedding", ej["embedding"]}}.dump());
  ASSERT_EQ(se->status, 200) << se->body;
  EXPECT_EQ(body(se)["hits"][0]["name"], "person0");
}

TEST_F(ServeTest, MalformedRequestsGetClear4xx) {
  struct Case {
    std::string path, body, type;
    int status;
    std::string says;
  };
  const std::string blank = png(cv::Mat(240, 240, CV_8UC3, cv::Scalar(80, 120, 160)));
  const std::vector<Case> cases = {
      {"/embed", "{\"image\": ", "application/json", 400, "bad JSON"},
      {"/embed", "[1, 2]", "application/json", 400, "JSON object"},
      {"/embed", "{}", "application/json", 400, "missing field 'image'"},
      {"/embed", "{\"image\": 42}", "application/json", 400, "base64 string"},
      {"/embed", json{{"image", b64("definitely not an image")}}.dump(), "application/json", 400, "not a decodable image"},
      {"/embed", "{\"image\": \"@@@@\"}", "application/json", 400, "base64"},
      {"/embed", "GIF89a garbage", "image/gif", 400, "not a decodable image"},
      {"/embed", json{{"image", b64(blank)}}.dump(), "application/json", 422, "no face"},
      {"/verify", json{{"a", b64(png(faces[0]))}}.dump(), "application/json", 400, "missing field 'b'"},
      {"/verify", json{{"a", b64(png(faces[0]))}, {"b", b64(png(faces[0]))}, {"far", 1e-6}}.dump(), "application/json",
       400, "no threshold for FAR"},
      {"/search", json{{"embedding", {1, 2, 3}}}.dump(), "application/json", 400, "512 numbers"},
      {"/search", json{{"image", b64(png(faces[0]))}, {"k", 0}}.dump(), "application/json", 400, "'k'"},
      {"/search", json{{"image", b64(png(faces[0]))}, {"k", "five"}}.dump(), "application/json", 400, "wrong type"},
      {"/nowhere", "{}", "application/json", 404, "no such endpoint"},
      {"/embed", std::string(2 << 20, 'x'), "application/octet-stream", 413, "too large"},
  };
  for (const Case& c : cases) {
    auto r = post(c.path, c.body, c.type);
    ASSERT_TRUE(r) << c.path << " " << c.says;
    EXPECT_EQ(r->status, c.status) << c.says << ": " << r->body;
    const json j = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << c.says << ": " << r->body;
    EXPECT_NE(j["error"].get<std::string>().find(c.says), std::string::npos) << j["error"];
  }
  // Still serving after all that.
  httplib::Client cl("127.0.0.1", port);
  EXPECT_EQ(cl.Get("/health")->status, 200);
}

TEST_F(ServeTest, ParallelClientsGetConsistentAnswers) {
  const std::string verify = json{{"a", b64(png(faces[0]))}, {"b", b64(png(faces[1]))}}.dump();
  auto first = post("/verify", verify);
  ASSERT_EQ(first->status, 200);
  const double cosine = body(first)["cosine"].get<double>();
  std::vector<std::string> search;
  for (const auto& f : faces) search.push_back(json{{"image", b64(png(f))}, {"k", 1}}.dump());
  std::atomic<int> ok{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t)
    clients.emplace_back([&, t] {
      for (int i = 0; i < 4; ++i) {
        if ((t + i) % 2) {
          auto r = post("/verify", verify);
          (r && r->status == 200 && std::abs(body(r)["cosine"].get<double>() - cosine) < 1e-4 ? ok : wrong)++;
        } else {
          const int k = (t + i) % 3;
          auto r = post("/search", search[static_cast<std::size_t>(k)]);
          (r && r->status == 200 && body(r)["hits"][0]["name"] == "person" + std::to_string(k) ? ok : wrong)++;
        }
      }
    });
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok, 24);
  EXPECT_EQ(wrong, 0);
}
