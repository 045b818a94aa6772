// The qface serve page in a real browser: Debian's chromium driven by
// playwright-core (tests/web/page_test.mjs; scripts/setup.sh installs the
// package into tests/web/node_modules) against two `qface serve` processes. This test prepares the data:
// synth faces, a gallery built by `qface search build`, random weights saved
// once (the same in every process), calibrations placed so that the
// decisions are known, and checks the script's verdict and screenshots.
// Skipped, saying why, when chromium or node (>= 18, Debian 12 has 18) is missing; fails when
// playwright-core is (scripts/setup.sh, which `make test` runs, installs it).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <random>

#include "qface/backbones/backbone.h"
#include "qface/core/fs.h"
#include "qface/deploy/calibration.h"
#include "qface/deploy/pipeline.h"
#include "qface/io/checkpoint.h"
#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"
#include "qface/synth/render.h"
#include "qface/synth/rng.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using nlohmann::json;
using qface::testing::run_program;
using qface::testing::run_qface;

namespace {


void save_png(const fs::path& p, const cv::Mat& img) {
  fs::create_directories(p.parent_path());
  ASSERT_TRUE(cv::imwrite(p.string(), img)) << p;
}

}  // namespace

TEST(WebPage, EveryViewInChromium) {
  const auto t0 = std::chrono::steady_clock::now();
  const char* env_chromium = std::getenv("QFACE_CHROMIUM");
  const std::string chromium = env_chromium ? env_chromium : "/usr/bin/chromium";
  if (!fs::exists(chromium)) GTEST_SKIP() << "chromium not installed (" << chromium << "; scripts/setup.sh installs it): the page is not tested in a browser";
  const std::string node = qface::testing::node_at_least(18);
  if (node.empty()) GTEST_SKIP() << "node >= 18 not installed (scripts/setup.sh installs nodejs): the page is not tested in a browser";
  const fs::path node_dir = fs::path(QFACE_SOURCE_DIR) / "tests/web";
  ASSERT_TRUE(fs::exists(node_dir / "node_modules/playwright-core/package.json"))
      << "playwright-core is not installed in " << node_dir.string() << "/node_modules: run scripts/setup.sh";

  const fs::path out = fs::path(QFACE_TEST_OUTPUT) / "web";
  fs::remove_all(out);
  const fs::path photos = out / "photos", people = out / "people";

  // Faces: six synth identities, two images each (different nuisances).
  namespace sy = qface::synth;
  const std::vector<std::string> names = {"alice", "bob", "carol", "dave", "erin", "frank"};
  const auto population = sy::sample_population(21, 1, static_cast<int64_t>(names.size()), sy::PopulationOptions{});
  std::map<std::string, fs::path> files;
  std::vector<cv::Mat> images;
  std::vector<std::string> image_names;
  for (std::size_t i = 0; i < names.size(); ++i)
    for (int k = 0; k < 2; ++k) {
      sy::ImageNuisance nu;
      sy::Rng rng(100 + 10 * i + static_cast<uint64_t>(k));
      sy::derive(nu, rng);
      const std::string stem = names[i] + (k ? "_2" : "");
      files[stem] = photos / (stem + ".png");
      images.push_back(sy::render_aligned(population[i], nu).image);
      image_names.push_back(stem);
      save_png(files[stem], images.back());
    }
  // The gallery: alice, bob, dave with one photo each (their own photo gives cosine 1), carol with two.
  for (const std::string stem : {"alice", "bob", "dave", "carol", "carol_2"}) {
    const fs::path folder = people / stem.substr(0, stem.find('_'));
    fs::create_directories(folder);
    fs::copy_file(files[stem], folder / (stem + ".png"));
  }
  fs::copy_file(files["alice"], photos / "alice_copy.png");  // byte-identical: the mated pair
  save_png(photos / "blank_wall.png", cv::Mat(200, 200, CV_8UC3, cv::Scalar(90, 110, 130)));
  qface::write_file_atomic(photos / "notes.txt", "these are not pixels\n");
  {
    std::mt19937 gen(5);
    std::string noise(1536 * 1024, '\0');  // 1.5 MB, 2 MB as base64: over --max-body-mb 1
    for (char& c : noise) c = static_cast<char>(gen());
    qface::write_file_atomic(photos / "oversized.jpg", noise);
  }

  // Random weights (plumbing, not accuracy), saved once so that every process
  // embeds alike; QFACE_WEB_WEIGHTS names a trained mobilefacenet instead (the
  // screenshots in docs/web.md: the demo's MagFace).
  fs::path weights = out / "mobilefacenet-random.pt";
  if (const char* trained = std::getenv("QFACE_WEB_WEIGHTS")) {
    weights = trained;
  } else {
    torch::manual_seed(21);
    qface::io::save_checkpoint(weights, *qface::backbones::make_backbone("mobilefacenet"), "mobilefacenet");
  }
  qface::deploy::PipelineOptions po;
  po.arch = "mobilefacenet";
  po.weights = weights;
  const qface::deploy::Pipeline pipeline(po);
  const auto [e, n] = pipeline.embed_crops(images);
  const torch::Tensor cos = torch::mm(e, e.t());
  double max_other = -1;
  for (int64_t i = 0; i < cos.size(0); ++i)
    for (int64_t j = 0; j < i; ++j) max_other = std::max(max_other, cos[i][j].item<double>());
  const double alice_bob = cos[0][2].item<double>();  // images: alice, alice_2, bob, ...
  // Verification calibration: at FAR 1e-3 and 1e-2 the threshold lies between
  // every pair of different photos and cosine 1; at 1e-1 below alice / bob.
  const double high = (max_other + 1) / 2, low = alice_bob - 0.05;
  ASSERT_LT(max_other, 0.9995) << "the random network does not tell the synth faces apart";
  std::vector<float> impostors(1000, static_cast<float>(low));
  std::fill_n(impostors.begin(), 100, static_cast<float>(high));
  qface::write_file_atomic(out / "verify-calibration.json",
                           qface::deploy::verify_calibration_json(impostors, 0, "flip_fused", "test_web").dump(1));
  // Quality calibration from these photos' norms; the gate at 0.3 flags the lowest ones.
  std::vector<double> norms(n.data_ptr<float>(), n.data_ptr<float>() + n.numel());
  qface::write_file_atomic(out / "quality-calibration.json", qface::deploy::quality_calibration_json(norms, "test_web").dump(1));

  auto built = run_qface({"search", "build", "--gallery", (out / "gallery").string(), "--images", people.string(),
                          "--arch", "mobilefacenet", "--weights", weights.string(), "--out", (out / "build.json").string()});
  ASSERT_EQ(built.exit_code, 0) << built.err;

  std::vector<std::string> quality_photos;
  for (const auto& stem : image_names) quality_photos.push_back(files[stem].string());
  // erin is enrolled from the page: her best photo, above the gate.
  const std::size_t erin = norms[8] >= norms[9] ? 8 : 9;
  const json cfg{{"qface", QFACE_BIN},
                 {"chromium", chromium},
                 {"out", out.string()},
                 {"token", "web-test-token"},
                 {"serve", {"serve", "--arch", "mobilefacenet", "--weights", weights.string(), "--gallery", (out / "gallery").string(),
                            "--calibration", (out / "verify-calibration.json").string(), "--far", "1e-3",
                            "--quality-calibration", (out / "quality-calibration.json").string(), "--min-quality", "0.3",
                            "--ofiq", "--max-body-mb", "1", "--http-threads", "4", "--threads", "1"}},
                 {"files", {{"alice", files["alice"]}, {"alice_copy", photos / "alice_copy.png"}, {"bob", files["bob"]},
                            {"dave", files["dave"]}, {"erin", files[image_names[erin]]}, {"frank", files["frank"]},
                            {"blank", photos / "blank_wall.png"}, {"not_image", photos / "notes.txt"},
                            {"oversized", photos / "oversized.jpg"}}},
                 {"quality_photos", quality_photos}};
  qface::write_file_atomic(out / "config.json", cfg.dump(1));

  // The script imports playwright-core, which an ES module finds from its own folder (beside node_modules).
  const auto browser_start = std::chrono::steady_clock::now();
  const auto r = run_program(node, {(node_dir / "page_test.mjs").string(), (out / "config.json").string()});
  const double prepare_s = std::chrono::duration<double>(browser_start - t0).count();
  const double browser_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - browser_start).count();
  std::cout << r.out << "\n(prepared in " << prepare_s << " s; browser part " << browser_s << " s)\n";
  EXPECT_EQ(r.exit_code, 0) << r.err.substr(0, 4000);
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos);
  for (const char* shot : {"verify", "verify-error", "search", "enroll", "quality", "verify-phone"})
    EXPECT_TRUE(fs::exists(out / "screenshots" / (std::string(shot) + ".png"))) << shot;
}
