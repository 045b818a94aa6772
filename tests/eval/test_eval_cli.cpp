// `qface eval ...` and `qface report` end to end on data the test writes,
// including bad input and the headless-Chromium check that the report draws.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <fstream>
#include <random>

#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/eval/features.h"
#include "qface/io/pickle.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using nlohmann::json;
using qface::testing::run_qface;
using qface::testing::TempDir;
using qface::testing::write_text;

namespace {

void write_features(const fs::path& dir, const torch::Tensor& e, const torch::Tensor& n,
                    const std::vector<std::string>& files) {
  fs::create_directories(dir);
  qface::write_npy(dir / "embeddings.npy", e);
  qface::write_npy(dir / "norms.npy", n);
  std::string t;
  for (const auto& f : files) t += f + "\n";
  write_text(dir / "files.txt", t);
}

json read_json(const fs::path& p) { return json::parse(qface::read_file(p)); }

// A verification .bin with `pairs` pairs of small random PNGs.
void write_bin(const fs::path& p, const std::vector<uint8_t>& issame, uint64_t seed) {
  cv::RNG rng(seed);
  std::vector<qface::io::PyRef> bins, same;
  for (size_t i = 0; i < 2 * issame.size(); ++i) {
    cv::Mat img(112, 112, CV_8UC3);
    rng.fill(img, cv::RNG::UNIFORM, 0, 255);
    cv::GaussianBlur(img, img, cv::Size(0, 0), 1 + static_cast<double>(i % 5));
    std::vector<uchar> buf;
    cv::imencode(".png", img, buf);
    bins.push_back(qface::io::PyValue::bytes(std::string(buf.begin(), buf.end())));
  }
  for (auto v : issame) same.push_back(qface::io::PyValue::boolean(v));
  auto root = qface::io::PyValue::tuple({qface::io::PyValue::list(bins), qface::io::PyValue::list(same)});
  qface::write_file_atomic(p, qface::io::pickle_protocol2(root));
}

// Features for a .bin: genuine pairs share a direction (plus noise), impostors random.
void bin_features(const std::vector<uint8_t>& issame, torch::Tensor& e, torch::Tensor& n) {
  torch::manual_seed(4);
  e = torch::randn({static_cast<int64_t>(2 * issame.size()), 32});
  for (size_t i = 0; i < issame.size(); ++i)
    if (issame[i]) e[2 * i + 1] = e[2 * i] + 0.1 * torch::randn({32});
  e = qface::eval::l2_normalize(e);
  n = torch::rand({static_cast<int64_t>(2 * issame.size())}) * 20 + 5;
}

}  // namespace

TEST(EvalCli, VerifyOnBinWithFlipFusion) {
  TempDir tmp;
  std::vector<uint8_t> same;
  for (int i = 0; i < 60; ++i) same.push_back(i % 2);
  write_bin(tmp / "lfw.bin", same, 1);
  torch::Tensor e, n;
  bin_features(same, e, n);
  std::vector<std::string> files;
  for (int i = 0; i < 120; ++i) files.push_back("lfw/" + std::to_string(i) + ".jpg");
  write_features(tmp / "feat", e, n, files);
  write_features(tmp / "feat_flip", e, n, files);
  auto r = run_qface({"eval", "verify", "--bin", (tmp / "lfw.bin").string(), "--features", (tmp / "feat").string(),
                      "--features-flip", (tmp / "feat_flip").string(), "--out", (tmp / "out/verify.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = read_json(tmp / "out/verify.json");
  EXPECT_EQ(j["kind"], "eval.verify");
  const json& m = j["sets"][0]["modes"];
  EXPECT_DOUBLE_EQ(m["plain"]["accuracy_mean"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(m["flip_fused"]["accuracy_mean"].get<double>(), 1.0);
  EXPECT_EQ(m["plain"]["fold_threshold"].size(), 10u);

  // Features that `qface embed` flip-fused (features.json) are reported as that mode, take no
  // --features-flip, and cannot calibrate quality (the deployment scores the plain norm).
  write_features(tmp / "fused", e, n, files);
  write_text(tmp / "fused" / "features.json", R"({"kind": "features", "mode": "flip_fused"})");
  r = run_qface({"eval", "verify", "--bin", (tmp / "lfw.bin").string(), "--features", (tmp / "fused").string(), "--out",
                 (tmp / "out/fused.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json fm = read_json(tmp / "out/fused.json")["sets"][0]["modes"];
  EXPECT_TRUE(fm.contains("flip_fused") && !fm.contains("plain")) << fm.dump();
  r = run_qface({"eval", "verify", "--bin", (tmp / "lfw.bin").string(), "--features", (tmp / "fused").string(),
                 "--features-flip", (tmp / "feat_flip").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("already flip-fused"), std::string::npos) << r.err;
  r = run_qface({"eval", "quality", "--features", (tmp / "fused").string(), "--bin", (tmp / "lfw.bin").string(),
                 "--calibration-out", (tmp / "qcal.json").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("calibrate quality on plain ones"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "qcal.json"));
  write_text(tmp / "fused" / "features.json", R"({"mode": "mirrored"})");
  r = run_qface({"eval", "verify", "--bin", (tmp / "lfw.bin").string(), "--features", (tmp / "fused").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("mode 'mirrored'"), std::string::npos) << r.err;

  // Features / images count mismatch: one clear line, no output written.
  write_features(tmp / "short", e.slice(0, 0, 100), n.slice(0, 0, 100),
                 std::vector<std::string>(files.begin(), files.begin() + 100));
  r = run_qface({"eval", "verify", "--bin", (tmp / "lfw.bin").string(), "--features", (tmp / "short").string(), "--out",
                 (tmp / "bad.json").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("100 feature rows but"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("120 images"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp / "bad.json"));
}

// A .bin whose issame list is a NumPy bool array (as pickle.dump of a NumPy
// array writes it, protocol 4), which `eval verify` reads like a list.
TEST(EvalCli, VerifyReadsNumpyIssameArrays) {
  const std::string& py = qface::testing::python_with_torch();
  if (py.empty()) GTEST_SKIP() << "no /usr/bin/python3 with torch and numpy";
  TempDir tmp;
  std::vector<uint8_t> same;
  for (int i = 0; i < 20; ++i) same.push_back(i % 3 == 0);
  std::string flags;
  for (uint8_t v : same) flags += v ? "1" : "0";
  write_text(tmp / "w.py", "import pickle, sys, numpy as np\n"
                           "issame = np.array([c == '1' for c in sys.argv[2]], dtype=bool)\n"
                           "bins = [bytes([k % 256]) * 50 for k in range(2 * len(issame))]\n"
                           "pickle.dump((bins, issame), open(sys.argv[1], 'wb'), protocol=4)\n");
  auto w = qface::testing::run_program(py, {(tmp / "w.py").string(), (tmp / "np.bin").string(), flags});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  torch::Tensor e, n;
  bin_features(same, e, n);
  write_features(tmp / "feat", e, n, std::vector<std::string>(40, "x.jpg"));
  auto r = run_qface({"eval", "verify", "--bin", (tmp / "np.bin").string(), "--features", (tmp / "feat").string(),
                      "--folds", "5", "--out", (tmp / "v.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json m = read_json(tmp / "v.json")["sets"][0]["modes"]["plain"];
  EXPECT_EQ(m["pairs"].get<int>(), 20);
  EXPECT_EQ(m["genuine"].get<int>(), 7);  // i % 3 == 0 for i < 20
  EXPECT_DOUBLE_EQ(m["accuracy_mean"].get<double>(), 1.0);
}

TEST(EvalCli, FeaturesFilesCountMismatchIsAClearError) {
  TempDir tmp;
  write_features(tmp / "f", qface::eval::l2_normalize(torch::randn({5, 8})), torch::ones({5}), {"a_1.jpg", "a_2.jpg", "b_1.jpg"});
  auto r = run_qface({"eval", "cluster", "--features", (tmp / "f").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("files.txt: 3 lines but"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("has 5 rows"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(EvalCli, IjbOneToOneAndOneToN) {
  TempDir tmp;
  // 4 subjects x 2 templates (ids 100 + 10 s + k), 2 images per template in 2 media.
  torch::manual_seed(7);
  torch::Tensor centres = qface::eval::l2_normalize(torch::randn({4, 16}));
  std::vector<torch::Tensor> rows;
  std::vector<std::string> files;
  std::string tid_mid, pts;
  int img = 0;
  for (int s = 0; s < 4; ++s)
    for (int k = 0; k < 2; ++k)
      for (int m = 0; m < 2; ++m) {
        const std::string name = std::to_string(img++) + ".jpg";
        rows.push_back(centres[s] + 0.05 * torch::randn({16}));
        files.push_back("/data/ijb/images/" + name);
        tid_mid += fmt::format("{} {} {}\n", name, 100 + 10 * s + k, 1000 + 10 * s + 2 * k + m);
        pts += name + " 1 2 3 4 5 6 7 8 9 10 0.99\n";
      }
  write_features(tmp / "feat", qface::eval::l2_normalize(torch::stack(rows)), torch::ones({img}), files);
  const fs::path meta = tmp / "ijb/meta";
  write_text(meta / "ijbc_face_tid_mid.txt", tid_mid);
  write_text(meta / "ijbc_name_5pts_score.txt", pts);
  std::string pairs;
  for (int s = 0; s < 4; ++s) pairs += fmt::format("{} {} 1\n", 100 + 10 * s, 101 + 10 * s);
  for (int s = 0; s < 4; ++s)
    for (int t = s + 1; t < 4; ++t) pairs += fmt::format("{} {} 0\n", 100 + 10 * s, 101 + 10 * t);
  write_text(meta / "ijbc_template_pair_label.txt", pairs);
  // G1: subjects 0, 1 (template k=0); G2: subjects 2, 3; probes: every k=1 template.
  write_text(meta / "ijbc_1N_gallery_G1.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n100,0,0.jpg\n110,1,4.jpg\n");
  write_text(meta / "ijbc_1N_gallery_G2.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME\n120,2,8.jpg\n130,3,12.jpg\n");
  write_text(meta / "ijbc_1N_probe_mixed.csv",
             "TEMPLATE_ID,SUBJECT_ID,FILENAME\n101,0,2.jpg\n111,1,6.jpg\n121,2,10.jpg\n131,3,14.jpg\n");
  auto r = run_qface({"eval", "ijb", "--meta", (tmp / "ijb").string(), "--features", (tmp / "feat").string(), "--out",
                      (tmp / "ijb.json").string(), "--detector-score"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = read_json(tmp / "ijb.json");
  EXPECT_EQ(j["templates"], 8);
  EXPECT_EQ(j["verification"]["genuine"], 4);
  EXPECT_EQ(j["verification"]["impostor"], 6);
  // Well separated: at FAR 1e-1 (nearest achievable FPR 1/6) every genuine pair is accepted.
  EXPECT_DOUBLE_EQ(j["verification"]["tar_at_far"][5]["tar"].get<double>(), 1.0);
  const json& g = j["identification"]["galleries"];
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0]["mated_probes"], 2);
  EXPECT_EQ(g[0]["nonmated_probes"], 2);
  EXPECT_DOUBLE_EQ(j["identification"]["mean"]["cmc"]["top1"].get<double>(), 1.0);
  // Two non-mated probes per gallery cannot resolve FPIR 1 % or 10 %: null, not a number.
  EXPECT_TRUE(j["identification"]["mean"]["tpir_at_fpir"][1]["tpir"].is_null());
  EXPECT_TRUE(g[0]["tpir_at_fpir"][0]["threshold"].is_null());

  // A pair naming a missing template: file and line in one message.
  write_text(meta / "ijbc_template_pair_label.txt", pairs + "100 999 0\n");
  r = run_qface({"eval", "ijb", "--meta", (tmp / "ijb").string(), "--features", (tmp / "feat").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ijbc_template_pair_label.txt:11: template 999 is not in ijbc_face_tid_mid.txt"),
            std::string::npos)
      << r.err;
  // An image of the meta missing from files.txt.
  write_text(meta / "ijbc_template_pair_label.txt", pairs);
  write_text(meta / "ijbc_face_tid_mid.txt", tid_mid + "missing.jpg 100 1000\n");
  r = run_qface({"eval", "ijb", "--meta", (tmp / "ijb").string(), "--features", (tmp / "feat").string()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("image 'missing.jpg' (entry 17) has no row"), std::string::npos) << r.err;
}

TEST(EvalCli, RankClusterQualityAndReport) {
  TempDir tmp;
  // TinyFace layout: 5 identities, 2 gallery + 2 probe images each, 10 distractors.
  torch::manual_seed(9);
  torch::Tensor centres = qface::eval::l2_normalize(torch::randn({15, 24}));
  std::vector<torch::Tensor> rows;
  std::vector<std::string> files;
  for (int id = 0; id < 5; ++id)
    for (const char* split : {"gallery", "probe"})
      for (int k = 0; k < 2; ++k) {
        rows.push_back(centres[id] + 0.03 * torch::randn({24}));
        files.push_back(fmt::format("tinyface/{}/{:03d}_{}.jpg", split, id, k));
      }
  for (int d = 0; d < 10; ++d) {
    rows.push_back(centres[5 + d]);
    files.push_back(fmt::format("tinyface/distractor/{:03d}_0.jpg", 900 + d));
  }
  const int64_t n = static_cast<int64_t>(rows.size());
  write_features(tmp / "tf", qface::eval::l2_normalize(torch::stack(rows)), torch::rand({n}) * 10 + 10, files);
  const fs::path run = tmp / "runs/model_a";
  auto r = run_qface({"eval", "rank", "--features", (tmp / "tf").string(), "--out", (run / "rank.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_DOUBLE_EQ(read_json(run / "rank.json")["result"]["rank"]["1"].get<double>(), 1.0);

  r = run_qface({"eval", "cluster", "--features", (tmp / "tf").string(), "--threshold", "0.8", "--k", "5",
                 "--quality-ordered", "--out", (run / "cluster.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json c = read_json(run / "cluster.json");
  ASSERT_EQ(c["results"].size(), 2u);
  EXPECT_DOUBLE_EQ(c["results"][0]["metrics"]["bcubed"]["f"].get<double>(), 1.0);  // 5 + 10 singleton labels
  EXPECT_NEAR(c["results"][0]["metrics"]["nmi"].get<double>(), 1.0, 1e-9);

  // Quality on a .bin: norm, ground truth (.npy) and BRISQUE.
  std::vector<uint8_t> same;
  for (int i = 0; i < 40; ++i) same.push_back(i % 2);
  write_bin(tmp / "val_mixed.bin", same, 2);
  torch::Tensor e, nn;
  bin_features(same, e, nn);
  std::vector<std::string> bf;
  for (int i = 0; i < 80; ++i) bf.push_back(std::to_string(i));
  write_features(tmp / "vf", e, nn, bf);
  qface::write_npy(tmp / "gt.npy", nn.to(torch::kFloat64) * 0.01 + 0.001 * torch::rand({80}, torch::kFloat64));
  r = run_qface({"eval", "quality", "--features", (tmp / "vf").string(), "--bin", (tmp / "val_mixed.bin").string(),
                 "--gt", (tmp / "gt.npy").string(), "--score", "norm,gt,brisque", "--out", (run / "quality.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json q = read_json(run / "quality.json");
  EXPECT_GT(q["scores"]["norm"]["spearman_vs_gt"].get<double>(), 0.9);
  EXPECT_DOUBLE_EQ(q["scores"]["gt"]["spearman_vs_gt"].get<double>(), 1.0);
  EXPECT_TRUE(q["scores"]["brisque"]["edc"]["pauc"].is_number());
  EXPECT_EQ(q["scatter"]["x"].size(), 80u);
  EXPECT_GE(q["scores"]["norm"]["erc"]["fnmr"].size(), 10u);  // until one class runs out
  EXPECT_LE(q["scores"]["norm"]["erc"]["fnmr"].size(), 20u);

  // Training log and a second run for the comparison.
  std::string log;
  for (int s = 0; s <= 100; s += 10)
    log += fmt::format(R"({{"step": {}, "loss": {}, "acc": {}, "lr": {}, "norm_mean": {}, "norm_std": 2.0, "batch_mean": {}, "batch_std": 3.0, "img_s": 50}})",
                       s, 10.0 / (1 + s), s / 100.0, 0.1 * (s < 50 ? 1 : 0.1), 10 + s * 0.1, 20 - s * 0.05) +
           "\n";
  write_text(run / "metrics.jsonl", log);
  r = run_qface({"eval", "verify", "--bin", (tmp / "val_mixed.bin").string(), "--features", (tmp / "vf").string(),
                 "--name", "model_b", "--out", (tmp / "runs/model_b/verify.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const fs::path html = tmp / "report.html";
  r = run_qface({"report", "--runs", run.string(), (tmp / "runs/model_b").string(), "--out", html.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string page = qface::read_file(html);
  // ROC (verify), ERC + EDC + scatter (quality), 6 training plots.
  const size_t figures = [&] {
    size_t c = 0, pos = 0;
    while ((pos = page.find("<figure class=\"plot\">", pos)) != std::string::npos) ++c, ++pos;
    return c;
  }();
  EXPECT_EQ(figures, 10u);
  EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org"));  // no external resources but the SVG namespace
  EXPECT_NE(page.find("Rank-k accuracy"), std::string::npos);
  EXPECT_NE(page.find("Clustering quality"), std::string::npos);

  // Headless Chromium: every plot draws (skip when the browser is absent).
  const std::string chromium = fs::exists("/usr/bin/chromium") ? "/usr/bin/chromium" : "";
  if (chromium.empty()) GTEST_SKIP() << "chromium not installed";
  auto b = qface::testing::run_program(
      chromium, {"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--user-data-dir=" + (tmp / "chromium-profile").string(), "--virtual-time-budget=5000", "--dump-dom",
                 "file://" + html.string()});
  ASSERT_EQ(b.exit_code, 0) << b.err.substr(0, 2000);
  EXPECT_NE(b.out.find(fmt::format("data-plots-total=\"{}\"", figures)), std::string::npos) << b.out.substr(0, 300);
  EXPECT_NE(b.out.find(fmt::format("data-plots-drawn=\"{}\"", figures)), std::string::npos) << b.out.substr(0, 300);
  EXPECT_EQ(b.out.find("data-drawn=\"0\""), std::string::npos);
}

TEST(EvalCli, VerifyEmbedsBinWithArch) {
  // The --arch path runs issue 4's embedding API on the decoded .bin images
  // (random weights: a pipeline check; the numbers themselves mean nothing).
  TempDir tmp;
  std::vector<uint8_t> same;
  for (int i = 0; i < 20; ++i) same.push_back(i % 2);
  write_bin(tmp / "tiny.bin", same, 3);
  auto r = run_qface({"eval", "verify", "--bin", (tmp / "tiny.bin").string(), "--arch", "mobilefacenet", "--random-weights",
                      "--batch", "16", "--out", (tmp / "v.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Without weights (and without --random-weights) the command refuses to run.
  r = run_qface({"eval", "verify", "--bin", (tmp / "tiny.bin").string(), "--arch", "mobilefacenet"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--weights"), std::string::npos) << r.err;
  r = run_qface({"eval", "verify", "--bin", (tmp / "tiny.bin").string(), "--arch", "mobilefacenet", "--random-weights",
                 "--batch", "16", "--out", (tmp / "v.json").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = read_json(tmp / "v.json");
  const json& m = j["sets"][0]["modes"];
  ASSERT_TRUE(m.contains("plain") && m.contains("flip_fused"));
  EXPECT_EQ(m["plain"]["pairs"], 20);
  const double acc = m["flip_fused"]["accuracy_mean"].get<double>();
  EXPECT_GE(acc, 0.0);
  EXPECT_LE(acc, 1.0);
  r = run_qface({"eval", "verify", "--bin", (tmp / "tiny.bin").string(), "--arch", "no_such_net"});
  EXPECT_NE(r.exit_code, 0);  // refused while parsing (CLI11's usage error), as every command's --arch
  EXPECT_NE(r.err.find("--arch"), std::string::npos) << r.err;
}
