// Gallery: exact neighbours against brute force, template fusion, removal,
// persistence (atomic generations) for every index kind; calibrations.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/deploy/calibration.h"
#include "qface/deploy/gallery.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using namespace qface::deploy;
using qface::testing::TempDir;

namespace {

torch::Tensor unit(int64_t n, int64_t d, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor x = torch::randn({n, d});
  return (x / x.norm(2, 1, true)).contiguous();
}

std::string name(int64_t i) { return "id" + std::to_string(i); }

Gallery filled(const fs::path& dir, const std::string& type, const torch::Tensor& e) {
  IndexOptions o;
  o.type = type;
  o.nlist = 8;
  Gallery g = Gallery::create(dir, e.size(1), o, false);
  for (int64_t i = 0; i < e.size(0); ++i) g.add(name(i), e.slice(0, i, i + 1), torch::ones({1}));
  g.save();
  return g;
}

}  // namespace

TEST(DeployGallery, ExactNeighboursMatchBruteForce) {
  TempDir dir;
  const torch::Tensor e = unit(300, 64, 1), q = unit(25, 64, 2);
  const torch::Tensor s = torch::mm(q, e.t());
  const auto [best, idx] = s.topk(5, 1);
  for (const std::string type : {"flat", "ivf"}) {
    Gallery g = filled(dir / type, type, e);
    if (type == "ivf") g.set_search_options(8, 1);  // every list: exact
    const auto hits = g.query(q, 5);
    ASSERT_EQ(hits.size(), 25u);
    for (int64_t i = 0; i < 25; ++i) {
      ASSERT_EQ(hits[i].size(), 5u) << type;
      for (int64_t j = 0; j < 5; ++j) {
        EXPECT_EQ(hits[i][j].name, name(idx[i][j].item<int64_t>())) << type << " query " << i << " rank " << j;
        EXPECT_NEAR(hits[i][j].score, best[i][j].item<float>(), 1e-5);
      }
    }
  }
  // HNSW: every enrolled vector finds itself.
  Gallery h = filled(dir / "hnsw", "hnsw", e);
  const auto self = h.query(e, 1);
  for (int64_t i = 0; i < e.size(0); ++i) EXPECT_EQ(self[i][0].name, name(i));
  // k larger than the gallery: only real identities come back.
  TempDir small;
  EXPECT_EQ(filled(small.path(), "flat", e.slice(0, 0, 3)).query(q.slice(0, 0, 1), 10)[0].size(), 3u);
}

TEST(DeployGallery, TemplatesFuseNormWeightedAndSurviveReopening) {
  TempDir dir;
  const torch::Tensor e = unit(3, 32, 3);
  for (const std::string type : {"flat", "ivf", "hnsw"}) {
    IndexOptions o;
    o.type = type;
    o.nlist = 1;
    Gallery g = Gallery::create(dir / type, 32, o, false);
    g.add("x", e.slice(0, 0, 1), torch::full({1}, 2.0f));
    g.add("y", e.slice(0, 2, 3), torch::ones({1}));
    g.save();
    g.add("x", e.slice(0, 1, 2), torch::ones({1}));  // a second image, half the quality
    g.save();
    EXPECT_EQ(g.images("x"), 2);
    torch::Tensor t = 2 * e[0] + e[1];
    t = (t / t.norm()).reshape({1, -1});
    Gallery r = Gallery::open(dir / type);
    const auto hit = r.query(t, 1)[0];
    ASSERT_EQ(hit.size(), 1u);
    EXPECT_EQ(hit[0].name, "x") << type;
    EXPECT_NEAR(hit[0].score, 1.0, 1e-5) << type;
    // Atomic generations: gallery.json names the last one; older files are gone.
    const auto meta = nlohmann::json::parse(qface::read_file(dir / type / "gallery.json"));
    EXPECT_EQ(meta["generation"], 2);
    EXPECT_TRUE(fs::exists(dir / type / "index-2.faiss"));
    EXPECT_FALSE(fs::exists(dir / type / "index-1.faiss"));
    // Removal, persisted.
    EXPECT_TRUE(r.remove("x"));
    EXPECT_FALSE(r.remove("x"));
    r.save();
    Gallery r2 = Gallery::open(dir / type);
    EXPECT_EQ(r2.size(), 1);
    EXPECT_EQ(r2.query(t, 5)[0].size(), 1u);
    EXPECT_EQ(r2.query(t, 5)[0][0].name, "y") << type;
  }
}

TEST(DeployGallery, RemovalKeepsTheOthersFindable) {
  TempDir dir;
  const torch::Tensor e = unit(50, 16, 4);
  for (const std::string type : {"flat", "ivf", "hnsw"}) {
    Gallery g = filled(dir / type, type, e);
    g.set_search_options(8, 64);
    for (int64_t i = 0; i < 50; i += 3) ASSERT_TRUE(g.remove(name(i)));
    g.save();
    Gallery r = Gallery::open(dir / type);
    r.set_search_options(8, 64);
    const auto hits = r.query(e, 1);
    for (int64_t i = 0; i < 50; ++i) {
      if (i % 3 == 0) EXPECT_NE(hits[i][0].name, name(i)) << type;
      else EXPECT_EQ(hits[i][0].name, name(i)) << type;
    }
  }
}

TEST(DeployGallery, IvfRetrainsWhenTheGalleryDoublesAndKeepsSavedSearchOptions) {
  TempDir dir;
  const torch::Tensor e = unit(240, 16, 6);
  IndexOptions o;
  o.type = "ivf";
  o.nprobe = 3;
  Gallery g = Gallery::create(dir.path(), 16, o, false);
  for (int64_t i = 0; i < 40; ++i) g.add(name(i), e.slice(0, i, i + 1), torch::ones({1}));
  g.save();
  auto trained = [&] { return nlohmann::json::parse(qface::read_file(dir / "gallery.json"))["ivf_trained_on"]; };
  EXPECT_EQ(trained(), 40);
  Gallery r = Gallery::open(dir.path());
  for (int64_t i = 40; i < 79; ++i) r.add(name(i), e.slice(0, i, i + 1), torch::ones({1}));
  r.save();  // 79 < 2 x 40: the quantizer stays
  EXPECT_EQ(trained(), 40);
  for (int64_t i = 79; i < 240; ++i) r.add(name(i), e.slice(0, i, i + 1), torch::ones({1}));
  r.save();  // doubled: retrained on every template
  EXPECT_EQ(trained(), 240);
  Gallery back = Gallery::open(dir.path());
  back.set_search_options(0, 0);  // 0: keep the saved values
  EXPECT_EQ(back.options().nprobe, 3);
  back.set_search_options(1000, 0);  // every list: exact
  const auto hits = back.query(e, 1);
  for (int64_t i = 0; i < 240; ++i) EXPECT_EQ(hits[i][0].name, name(i));
  EXPECT_THROW(back.set_search_options(-1, 0), qface::Error);
}

TEST(DeployGallery, BrokenGalleriesAreClearErrors) {
  TempDir dir;
  EXPECT_THROW(Gallery::open(dir.path()), qface::Error);
  filled(dir.path(), "flat", unit(4, 8, 5));
  EXPECT_THROW(Gallery::create(dir.path(), 8, {}, false), qface::Error);
  qface::write_file_atomic(dir / "index-1.faiss", "not an index");
  try {
    Gallery::open(dir.path());
    FAIL();
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("index-1.faiss"), std::string::npos) << e.what();
  }
  IndexOptions bad;
  bad.type = "lsh";
  EXPECT_THROW(Gallery::create(dir / "x", 8, bad, false), qface::Error);
  Gallery g = Gallery::create(dir / "y", 8, {}, false);
  EXPECT_THROW(g.add("a", unit(1, 9, 1), torch::ones({1})), qface::Error);
}

TEST(DeployGallery, ThumbnailsKeepTheBestAndFollowTheirIdentity) {
  TempDir dir;
  const torch::Tensor e = unit(8, 16, 7);
  using jpegs = std::vector<std::string>;  // stand-in bytes: the gallery stores them, never decodes them
  for (const std::string type : {"flat", "hnsw"}) {
    IndexOptions o;
    o.type = type;
    Gallery g = Gallery::create(dir / type, 16, o, false);
    g.add("x", e.slice(0, 0, 2), torch::tensor({1.f, 3.f}), jpegs({"x1", "x3"}));
    g.add("y", e.slice(0, 2, 3), torch::tensor({2.f}), jpegs({"y2"}));
    g.add("z", e.slice(0, 3, 4), torch::tensor({1.f}));  // from features: no thumbnail
    g.add("x", e.slice(0, 4, 7), torch::tensor({2.f, 5.f, 0.5f}), jpegs({"x2", "x5", "x0.5"}));
    auto tags = [](const Gallery& gal, const std::string& n) {
      std::vector<std::string> out;
      for (const Thumbnail& t : gal.thumbnails(n)) out.push_back(t.jpeg);
      return out;
    };
    EXPECT_EQ(tags(g, "x"), jpegs({"x5", "x3", "x2"}));  // the kMaxThumbnails of highest norm, best first
    EXPECT_EQ(g.thumbnails("x")[0].norm, 5.f);
    g.save();
    g.save();  // generation 2: the first generation's thumbnails file is gone
    EXPECT_FALSE(fs::exists(dir / type / "thumbnails-1.cbor"));
    EXPECT_TRUE(fs::exists(dir / type / "thumbnails-2.cbor"));
    Gallery r = Gallery::open(dir / type);
    EXPECT_EQ(tags(r, "x"), jpegs({"x5", "x3", "x2"}));
    EXPECT_EQ(tags(r, "y"), jpegs({"y2"}));
    EXPECT_TRUE(r.thumbnails("z").empty());
    EXPECT_TRUE(r.thumbnails("nobody").empty());
    // Removing "x" moves the last identity into its slot: the thumbnails move with it.
    ASSERT_TRUE(r.remove("x"));
    r.save();
    Gallery back = Gallery::open(dir / type);
    EXPECT_EQ(tags(back, "y"), jpegs({"y2"}));
    EXPECT_TRUE(back.thumbnails("z").empty());
    EXPECT_THROW(back.add("w", e.slice(0, 0, 2), torch::ones({2}), jpegs({"only one"})), qface::Error);
  }
}

TEST(DeployGallery, GalleriesWithoutThumbnailsLoadAndBrokenOnesAreNamed) {
  TempDir dir;
  filled(dir.path(), "flat", unit(4, 8, 8));  // as every gallery written before thumbnails existed
  auto meta = nlohmann::json::parse(qface::read_file(dir / "gallery.json"));
  EXPECT_FALSE(meta.contains("thumbnails"));
  EXPECT_TRUE(Gallery::open(dir.path()).thumbnails(name(0)).empty());
  // With thumbnails: a missing or corrupt file is an error naming it.
  Gallery g = Gallery::open(dir.path());
  g.add(name(0), unit(1, 8, 9), torch::ones({1}), {"jpeg"});
  g.save();
  meta = nlohmann::json::parse(qface::read_file(dir / "gallery.json"));
  const std::string file = meta["thumbnails"];
  EXPECT_EQ(file, "thumbnails-2.cbor");
  qface::write_file_atomic(dir / file, "not cbor");
  try {
    Gallery::open(dir.path());
    FAIL();
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
  // A million nested CBOR arrays (nlohmann's reader alone recurses until the stack overflows).
  qface::write_file_atomic(dir / file, std::string(1'000'000, '\x81') + '\x01');
  try {
    Gallery::open(dir.path());
    FAIL();
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nested deeper than 16"), std::string::npos) << e.what();
  }
  fs::remove(dir / file);
  EXPECT_THROW(Gallery::open(dir.path()), qface::Error);
}

TEST(DeployCalibration, VerifyThresholdsFromImpostors) {
  std::vector<float> imp;
  for (int i = 0; i < 1000; ++i) imp.push_back(static_cast<float>(i) / 1000.f);
  TempDir dir;
  qface::write_file_atomic(dir / "c.json", verify_calibration_json(imp, 10, "flip_fused", "test").dump());
  const VerifyCalibration c = read_verify_calibration(dir / "c.json");
  EXPECT_EQ(c.impostors, 1000);
  EXPECT_NEAR(c.threshold_for(1e-2), 0.989, 1e-6);  // 10 of 1000 impostors above it
  EXPECT_NEAR(c.threshold_for(1e-3), 0.998, 1e-6);
  EXPECT_THROW(c.threshold_for(1e-4), qface::Error);  // 1000 impostors cannot resolve it
  qface::write_file_atomic(dir / "q.json", "{\"kind\": \"eval.verify\"}");
  EXPECT_THROW(read_verify_calibration(dir / "q.json"), qface::Error);
}

// Which FAR a command decides at (issue #39 item 3: serve started on a
// default FAR its calibration did not resolve).
TEST(DeployCalibration, DecisionFarIsResolvedOrRefused) {
  VerifyCalibration c;
  c.source = "cal.json";
  c.thresholds = {{1e-1, 0.2}, {1e-2, 0.3}};  // 100..999 impostors: 1e-3 not resolved
  EXPECT_DOUBLE_EQ(c.default_far(), 1e-2);
  EXPECT_DOUBLE_EQ(decision_far(&c, std::nullopt, "--far"), 1e-2);
  EXPECT_DOUBLE_EQ(decision_far(&c, 1e-1, "--far"), 1e-1);
  try {
    decision_far(&c, 1e-3, "serve --far");
    FAIL() << "a FAR the calibration does not list was accepted";
  } catch (const qface::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("serve --far 0.001"), std::string::npos) << what;
    EXPECT_NE(what.find("calibrated: 0.1, 0.01"), std::string::npos) << what;
  }
  c.thresholds = {{1e-1, 0.2}, {1e-2, 0.3}, {1e-3, 0.4}, {1e-4, 0.5}};
  EXPECT_DOUBLE_EQ(c.default_far(), 1e-3);  // the default when resolved
  c.thresholds = {{1e-4, 0.5}, {1e-5, 0.6}};  // hand-written: only stricter ones
  EXPECT_DOUBLE_EQ(c.default_far(), 1e-4);
  EXPECT_DOUBLE_EQ(decision_far(nullptr, std::nullopt, "--far"), 1e-3);  // no calibration: nothing to check
  c.thresholds.clear();
  EXPECT_THROW(c.default_far(), qface::Error);
}

TEST(DeployCalibration, QualityMapsNormsThroughTheirDistribution) {
  std::vector<double> norms;
  for (int i = 0; i <= 100; ++i) norms.push_back(10 + i);  // 10 .. 110
  TempDir dir;
  qface::write_file_atomic(dir / "q.json", quality_calibration_json(norms, "test").dump());
  const QualityCalibration q = read_quality_calibration(dir / "q.json");
  EXPECT_NEAR(q.map(60), 0.5, 1e-9);
  EXPECT_NEAR(q.map(35.5), 0.255, 1e-9);
  EXPECT_EQ(q.map(0), 0);
  EXPECT_EQ(q.map(1e3), 1);
}

TEST(DeployCalibration, OfiqUnifiedScoreOfAMagnitude) {
  // 100 / (1 + exp((23 - x) / 2.6)): 50 at x = 23; 75 where exp(-(x-23)/2.6) = 1/3.
  EXPECT_DOUBLE_EQ(qface::deploy::ofiq_unified_score(23.0), 50.0);
  EXPECT_NEAR(qface::deploy::ofiq_unified_score(23.0 + 2.6 * std::log(3.0)), 75.0, 1e-9);
  EXPECT_NEAR(qface::deploy::ofiq_unified_score(10.0), 100.0 / (1.0 + std::exp(5.0)), 1e-12);
  EXPECT_LT(qface::deploy::ofiq_unified_score(0.0), 0.02);
  EXPECT_GT(qface::deploy::ofiq_unified_score(60.0), 99.9);
}
