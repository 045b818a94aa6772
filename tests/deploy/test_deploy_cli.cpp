// The deployment commands end to end: `qface eval` writes the calibrations
// that `qface verify` and `qface quality` read; `qface search` builds, adds,
// removes and queries a gallery from photos; `qface bench search` at a tiny size.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <opencv2/imgcodecs.hpp>

#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/eval/features.h"
#include "qface/backbones/backbone.h"
#include "qface/io/checkpoint.h"
#include "qface/io/pickle.h"
#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"
#include "qface/synth/render.h"
#include "qface/synth/rng.h"
#include "qface/deploy/calibration.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using nlohmann::json;
using qface::testing::run_qface;
using qface::testing::TempDir;

namespace {

json read_json(const fs::path& p) { return json::parse(qface::read_file(p)); }

std::vector<cv::Mat> synth_faces(int n) {
  namespace sy = qface::synth;
  std::vector<cv::Mat> out;
  for (const auto& id : sy::sample_population(9, 1, n, sy::PopulationOptions{})) {
    sy::ImageNuisance nu;
    sy::Rng rng(4);
    sy::derive(nu, rng);
    out.push_back(sy::render_aligned(id, nu).image);
  }
  return out;
}

void save(const fs::path& p, const cv::Mat& img) {
  fs::create_directories(p.parent_path());
  ASSERT_TRUE(cv::imwrite(p.string(), img));
}

// A .bin of `issame.size()` pairs (image content unused: features are given).
void write_bin(const fs::path& p, const std::vector<uint8_t>& issame) {
  std::vector<qface::io::PyRef> bins, same;
  std::vector<uchar> buf;
  cv::imencode(".png", cv::Mat(112, 112, CV_8UC3, cv::Scalar::all(128)), buf);
  for (size_t i = 0; i < 2 * issame.size(); ++i)
    bins.push_back(qface::io::PyValue::bytes(std::string(buf.begin(), buf.end())));
  for (auto v : issame) same.push_back(qface::io::PyValue::boolean(v));
  qface::write_file_atomic(p, qface::io::pickle_protocol2(qface::io::PyValue::tuple(
                                  {qface::io::PyValue::list(bins), qface::io::PyValue::list(same)})));
}

// Random mobilefacenet weights, saved once so that every process embeds alike (plumbing, not accuracy).
const std::vector<std::string>& model() {
  static const std::vector<std::string> m = [] {
    const fs::path p = fs::path(QFACE_TEST_TMP) / ("deploy_mobilefacenet." + std::to_string(::getpid()) + ".pt");
    fs::create_directories(p.parent_path());
    torch::manual_seed(11);
    auto net = qface::backbones::make_backbone("mobilefacenet");
    qface::io::save_checkpoint(p, *net, "mobilefacenet");
    static const struct Remove {
      fs::path path;
      ~Remove() { std::error_code ec; fs::remove(path, ec); }
    } remove_at_exit{p};
    return std::vector<std::string>{"--arch", "mobilefacenet", "--weights", p.string()};
  }();
  return m;
}

std::vector<std::string> args(std::vector<std::string> a, bool with_model = true) {
  if (with_model) a.insert(a.end(), model().begin(), model().end());
  return a;
}

}  // namespace

TEST(DeployCli, EvalCalibrationsDriveVerifyAndQuality) {
  TempDir tmp;
  // Calibrations from `qface eval` on features of a .bin (200 pairs, 100 impostors).
  std::vector<uint8_t> same;
  for (int i = 0; i < 200; ++i) same.push_back(i % 2);
  write_bin(tmp / "val.bin", same);
  torch::manual_seed(4);
  torch::Tensor e = torch::randn({400, 32});
  for (int i = 1; i < 200; i += 2) e[2 * i + 1] = e[2 * i] + 0.1 * torch::randn({32});
  e = qface::eval::l2_normalize(e);
  fs::create_directories(tmp / "feat");
  qface::write_npy(tmp / "feat" / "embeddings.npy", e);
  qface::write_npy(tmp / "feat" / "norms.npy", torch::rand({400}) * 20 + 5);
  std::string files;
  for (int i = 0; i < 400; ++i) files += "img" + std::to_string(i) + ".png\n";
  qface::write_file_atomic(tmp / "feat" / "files.txt", files);
  auto r = run_qface({"eval", "verify", "--bin", (tmp / "val.bin").string(), "--features", (tmp / "feat").string(),
                      "--out", (tmp / "v.json").string(), "--calibration-out", (tmp / "cal.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json cal = read_json(tmp / "cal.json");
  EXPECT_EQ(cal["kind"], "calibration.verify");
  EXPECT_EQ(cal["mode"], "plain");
  EXPECT_EQ(cal["impostors"], 100);
  EXPECT_EQ(cal["thresholds"].size(), 2u);  // 1e-1 and 1e-2: 100 impostors resolve no smaller FAR
  r = run_qface({"eval", "quality", "--features", (tmp / "feat").string(), "--bin", (tmp / "val.bin").string(), "--out",
                 (tmp / "q.json").string(), "--calibration-out", (tmp / "qcal.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_json(tmp / "qcal.json")["quantiles"].size(), 101u);

  const auto faces = synth_faces(2);
  save(tmp / "img" / "a.png", faces[0]);
  save(tmp / "img" / "a_again.png", faces[0]);
  save(tmp / "img" / "b.png", faces[1]);
  save(tmp / "img" / "wall.png", cv::Mat(240, 240, CV_8UC3, cv::Scalar(70, 90, 110)));  // no face
  const std::string a = (tmp / "img" / "a.png").string(), b = (tmp / "img" / "b.png").string();
  r = run_qface(args({"verify", a, (tmp / "img" / "a_again.png").string(), "--calibration", (tmp / "cal.json").string(),
                      "--far", "0.01", "--quality-calibration", (tmp / "qcal.json").string(), "--out",
                      (tmp / "r.json").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json v = read_json(tmp / "r.json");
  EXPECT_NEAR(v["cosine"].get<double>(), 1.0, 1e-4);
  EXPECT_EQ(v["match"], true);
  EXPECT_EQ(v["flip_fused"], false);  // follows the calibration's mode
  for (const char* side : {"a", "b"}) {
    EXPECT_GT(v[side]["norm"].get<double>(), 0);
    EXPECT_GE(v[side]["quality"].get<double>(), 0);
    EXPECT_LE(v[side]["quality"].get<double>(), 1);
  }
  EXPECT_NE(r.out.find("MATCH"), std::string::npos) << r.out;
  r = run_qface(args({"verify", a, b}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("cosine similarity"), std::string::npos);
  r = run_qface(args({"verify", a, b, "--calibration", (tmp / "cal.json").string(), "--far", "1e-5"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no threshold for FAR 1e-05"), std::string::npos) << r.err;
  r = run_qface(args({"verify", a, (tmp / "img" / "wall.png").string()}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("wall.png: no face found"), std::string::npos) << r.err;

  r = run_qface(args({"quality", "--images", (tmp / "img").string(), "--min-quality", "0.5", "--quality-calibration",
                      (tmp / "qcal.json").string(), "--out", (tmp / "quality.json").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json q = read_json(tmp / "quality.json");
  EXPECT_EQ(q["images"].size(), 3u);
  EXPECT_EQ(q["no_face"].size(), 1u);
  int low = 0;
  for (const auto& row : q["images"]) {
    EXPECT_EQ(row["recapture"].get<bool>(), row["quality"].get<double>() < 0.5);
    low += row["recapture"].get<bool>();
  }
  EXPECT_EQ(q["recapture"].size(), static_cast<std::size_t>(low + 1));  // + the faceless one
}

TEST(DeployCli, SearchBuildAddRemoveQuery) {
  TempDir tmp;
  const auto faces = synth_faces(5);
  for (int i = 0; i < 4; ++i) {
    save(tmp / "enrol" / ("person" + std::to_string(i)) / "0.png", faces[i]);
    save(tmp / "probes" / ("person" + std::to_string(i) + "_probe.png"), faces[i]);
  }
  save(tmp / "enrol" / "person3" / "wall.png", cv::Mat(200, 200, CV_8UC3, cv::Scalar(60, 60, 60)));
  save(tmp / "late" / "late_0.png", faces[4]);
  const std::string g = (tmp / "gallery").string();
  auto r = run_qface(args({"search", "build", "--gallery", g, "--images", (tmp / "enrol").string(), "--out",
                           (tmp / "build.json").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json b = read_json(tmp / "build.json");
  EXPECT_EQ(b["gallery_size"], 4);
  EXPECT_EQ(b["no_face"].size(), 1u);
  r = run_qface(args({"search", "add", "--gallery", g, "--images", (tmp / "late").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_qface(args({"search", "remove", "--gallery", g, "--name", "person2"}, false));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_qface(args({"search", "query", "--gallery", g, "--images", (tmp / "probes").string(), "--k", "2", "--out",
                      (tmp / "q.json").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json q = read_json(tmp / "q.json");
  ASSERT_EQ(q["results"].size(), 4u);
  for (const auto& row : q["results"]) {
    const std::string who = fs::path(row["image"].get<std::string>()).stem().string().substr(0, 7);
    if (who == "person2") {
      EXPECT_NE(row["hits"][0]["name"], "person2");
    } else {
      EXPECT_EQ(row["hits"][0]["name"], who);
      EXPECT_NEAR(row["hits"][0]["score"].get<double>(), 1.0, 1e-4);
    }
  }
  EXPECT_TRUE(read_json(fs::path(g) / "gallery.json").dump().find("\"late\"") != std::string::npos);
  // A match decision per probe with a calibration (issue #39 item 7): 100
  // impostors resolve FAR 1e-2 at most, the default then, said on stderr.
  std::vector<float> imp;
  for (int i = 0; i < 100; ++i) imp.push_back(0.999f * static_cast<float>(i) / 100.f);
  qface::write_file_atomic(tmp / "cal.json",
                           qface::deploy::verify_calibration_json(imp, 1, "flip_fused", "test").dump());
  r = run_qface(args({"search", "query", "--gallery", g, "--images", (tmp / "probes").string(), "--k", "1",
                      "--calibration", (tmp / "cal.json").string(), "--out", (tmp / "qc.json").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("deciding at FAR 0.01"), std::string::npos) << r.err;
  const json qc = read_json(tmp / "qc.json");
  EXPECT_DOUBLE_EQ(qc["far"].get<double>(), 0.01);
  EXPECT_NEAR(qc["threshold"].get<double>(), 0.999 * 0.98, 1e-6);  // one impostor of 100 (0.999 * 0.99) above it
  for (const auto& row : qc["results"]) {
    const std::string who = fs::path(row["image"].get<std::string>()).stem().string().substr(0, 7);
    const double top = row["hits"][0]["score"].get<double>();
    EXPECT_EQ(row["match"], top > qc["threshold"].get<double>() ? row["hits"][0]["name"] : json(nullptr)) << row;
    if (who != "person2") EXPECT_EQ(row["match"], who) << row;  // its own crop: cosine 1
  }
  // Enrolment gated by quality: nothing passes an absurd bar.
  r = run_qface(args({"search", "build", "--gallery", (tmp / "g2").string(), "--images", (tmp / "enrol").string(),
                      "--min-quality", "1e9"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("below --min-quality"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "g2" / "gallery.json"));
}

// Issue #39 item 5: a photo with two people (one of dlib's examples) is
// counted and its largest face named wherever one face is used; enrolment
// refuses it unless --largest; `align --all` crops of one photo are never
// filed under one identity.
TEST(DeployCli, GroupPhotosAreCountedAndNeverEnrolledAsOnePerson) {
  const fs::path two = "/usr/share/doc/libdlib19.1/examples/faces/2008_002506.jpg";
  if (!fs::exists(two)) GTEST_SKIP() << two << " not installed (libdlib19.1 docs)";
  TempDir tmp;
  // align --all names the crops <stem>_face<k>, largest first; their number
  // is the detector's count, which every other command must report.
  auto r = run_qface(args({"align", "--all", "--images", two.string(), "--out", (tmp / "crops").string()}, false));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  int faces = 0;
  while (fs::exists(tmp / "crops" / fmt::format("2008_002506_face{}.png", faces))) ++faces;
  ASSERT_GE(faces, 2);  // two people
  r = run_qface(args({"verify", two.string(), two.string(), "--out", (tmp / "v.json").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(fmt::format("has {} faces; comparing the largest", faces)), std::string::npos) << r.err;
  const json v = read_json(tmp / "v.json");
  EXPECT_EQ(v["a"]["faces"], faces);
  ASSERT_EQ(v["a"]["box"].size(), 4u);
  EXPECT_GT(v["a"]["box"][2].get<int>(), 0);
  fs::create_directories(tmp / "photos");
  fs::copy_file(two, tmp / "photos" / "eileen_1.jpg");
  const std::string g = (tmp / "g").string();
  r = run_qface(args({"search", "build", "--gallery", g, "--images", (tmp / "photos").string()}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(fmt::format("eileen_1.jpg ({} faces)", faces)), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--largest"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(fs::path(g) / "gallery.json"));
  r = run_qface(args({"search", "build", "--gallery", g, "--images", (tmp / "photos").string(), "--largest", "--out",
                      (tmp / "b.json").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json b = read_json(tmp / "b.json");
  EXPECT_EQ(b["images_enrolled"], 1);
  ASSERT_EQ(b["several_faces"].size(), 1u);
  EXPECT_EQ(b["several_faces"][0]["faces"], faces);
  // Enrolling align --all's crops by name would file every face under "2008": refused, naming two crops.
  r = run_qface(args({"search", "build", "--gallery", (tmp / "g2").string(), "--images", (tmp / "crops").string()}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("are two faces of one photo ('2008_002506'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'2008'"), std::string::npos) << r.err;
  // Item 4: a negative scale-down bound is refused, not taken.
  r = run_qface(args({"align", "--images", two.string(), "--out", (tmp / "x").string(), "--detect-max-pixels", "-5"},
                     false));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--detect-max-pixels"), std::string::npos) << r.err;
}

TEST(DeployCli, BenchSearchTiny) {
  TempDir tmp;
  auto r = run_qface({"bench", "search", "--n", "3000", "--dim", "32", "--queries", "100", "--nprobe", "64",
                      "--ef-search", "64", "--json", (tmp / "b.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json b = read_json(tmp / "b.json");
  ASSERT_EQ(b["results"].size(), 3u);
  EXPECT_EQ(b["results"][0]["index"], "flat");
  EXPECT_EQ(b["results"][0]["recall_at_1"], 1.0);
  for (const auto& row : b["results"]) {
    EXPECT_GT(row["queries_per_s"].get<double>(), 0);
    EXPECT_GE(row["recall_at_1"].get<double>(), 0.8) << row.dump();
  }
}
