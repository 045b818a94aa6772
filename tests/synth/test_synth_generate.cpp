// qface synth end to end on the tiny preset: formats readable by the data
// readers, layouts as the evaluation expects, determinism across thread counts,
// and a handcrafted baseline that is far from perfect and falls with quality.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/bin_set.h"
#include "qface/data/recordio.h"
#include "qface/synth/baseline.h"
#include "qface/synth/generate.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using qface::testing::TempDir;
using namespace qface::synth;

namespace {

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::map<std::string, std::string> tree(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = qface::read_file(e.path());
  return files;
}

SynthOptions tiny(int threads) {
  SynthOptions o = preset_options("tiny");
  o.seed = 42;
  o.threads = threads;
  return o;
}

}  // namespace

TEST(SynthGenerate, ByteIdenticalWhateverTheThreadCount) {
  TempDir a, b;
  generate(a.path(), tiny(1));
  generate(b.path(), tiny(3));
  const auto ta = tree(a.path()), tb = tree(b.path());
  ASSERT_EQ(ta.size(), tb.size());
  for (const auto& [name, bytes] : ta) {
    ASSERT_TRUE(tb.count(name)) << name;
    EXPECT_TRUE(bytes == tb.at(name)) << name << " differs";
  }
  // A different seed gives different data.
  TempDir c;
  SynthOptions o = tiny(2);
  o.seed = 43;
  generate(c.path(), o);
  EXPECT_NE(qface::read_file(a / "train.rec"), qface::read_file(c / "train.rec"));
}

TEST(SynthGenerate, OutputsInTheFieldsFormats) {
  TempDir dir;
  SynthOptions o = tiny(2);
  o.label_noise = 0.1;
  const SynthSummary sum = generate(dir.path(), o);
  const auto manifest = nlohmann::json::parse(qface::read_file(dir / "manifest.json"));
  EXPECT_EQ(manifest["version"], kSynthVersion);

  // train.rec: header, contiguous identities, every record in the manifest.
  qface::data::FaceRecordSet rec(dir / "train.rec");
  ASSERT_TRUE(rec.has_header());
  EXPECT_EQ(rec.num_classes(), o.ids);
  EXPECT_EQ(static_cast<int64_t>(rec.num_images()), sum.train_images);
  const auto& records = manifest["train"]["records"];
  ASSERT_EQ(records.size(), rec.num_images());
  int noisy = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const uint64_t key = rec.image_key(i);
    EXPECT_EQ(r["key"].get<uint64_t>(), key);
    const auto payload = qface::data::unpack_payload(rec.file().read_payload(key), "train.rec");
    EXPECT_EQ(static_cast<int64_t>(payload.label()), r["label"].get<int64_t>());
    noisy += r["noisy_label"].get<bool>();
    EXPECT_EQ(r["noisy_label"].get<bool>(), r["label"] != r["identity"]);
    const double q = r["quality"];
    EXPECT_GE(q, 0.0);
    EXPECT_LE(q, 1.0);
    EXPECT_EQ(r["landmarks"].size(), 5u);
    if (i == 0) {
      const cv::Mat img = cv::imdecode(cv::Mat(1, static_cast<int>(payload.image.size()), CV_8U,
                                               const_cast<char*>(payload.image.data())), cv::IMREAD_COLOR);
      EXPECT_EQ(img.size(), cv::Size(112, 112));
    }
  }
  EXPECT_GT(noisy, 0);
  // Images per identity vary.
  std::set<int64_t> sizes;
  for (int64_t c = 0; c < rec.num_classes(); ++c) {
    auto [first, end] = rec.identity_range(c);
    sizes.insert(static_cast<int64_t>(end - first));
  }
  EXPECT_GT(sizes.size(), 2u);

  // Verification sets: balanced, qualities in their strata.
  for (const std::string name : {"val_high", "val_mixed", "val_low"}) {
    const auto bin = qface::data::read_bin_set(dir / (name + ".bin"));
    const auto side = nlohmann::json::parse(qface::read_file(dir / (name + ".json")));
    ASSERT_EQ(bin.pairs(), side["quality"].size());
    ASSERT_EQ(bin.pairs() % 2, 0u);
    std::size_t same = 0;
    for (std::size_t p = 0; p < bin.pairs(); ++p) {
      same += bin.issame[p];
      EXPECT_EQ(bin.issame[p], side["issame"][p].get<bool>());
      EXPECT_EQ(bin.issame[p], side["identity"][p][0] == side["identity"][p][1]);
      const double q0 = side["quality"][p][0], q1 = side["quality"][p][1];
      const double hi = std::max(q0, q1), lo = std::min(q0, q1);
      if (name == "val_high") {
        EXPECT_GE(lo, o.high_lo - 1e-4);
      }
      if (name == "val_low") {
        EXPECT_LE(hi, o.low_hi + 1e-4);
      }
      if (name == "val_mixed") {
        EXPECT_GE(hi, o.high_lo - 1e-4);
        EXPECT_LE(lo, o.low_hi + 1e-4);
      }
    }
    EXPECT_EQ(2 * same, bin.pairs());
  }

  // IJB layout.
  const fs::path meta = dir / "ijb" / "meta";
  const auto tid_mid = lines_of(meta / "synth_face_tid_mid.txt");
  ASSERT_EQ(static_cast<int64_t>(tid_mid.size()), sum.ijb_images);
  std::map<int64_t, std::set<int64_t>> media_of_template;
  std::set<std::string> images;
  for (const auto& l : tid_mid) {
    std::istringstream ss(l);
    std::string img;
    int64_t t = 0, m = 0;
    ASSERT_TRUE(ss >> img >> t >> m) << l;
    EXPECT_TRUE(fs::exists(dir / "ijb" / "images" / img)) << img;
    media_of_template[t].insert(m);
    images.insert(img);
  }
  EXPECT_EQ(static_cast<int64_t>(media_of_template.size()), 3 * o.ijb_subjects);
  std::size_t multi_media = 0;
  for (const auto& [t, ms] : media_of_template) multi_media += ms.size() > 1;
  EXPECT_GT(multi_media, 0u);
  const auto pts = lines_of(meta / "synth_name_5pts_score.txt");
  ASSERT_EQ(pts.size(), tid_mid.size());
  for (const auto& l : pts) {
    std::istringstream ss(l);
    std::string img;
    ss >> img;
    EXPECT_TRUE(images.count(img));
    std::vector<double> v;
    for (double x; ss >> x;) v.push_back(x);
    ASSERT_EQ(v.size(), 11u) << l;
    EXPECT_GT(v[10], 0.0);
    EXPECT_LE(v[10], 1.0);
    const cv::Mat img_m = cv::imread((dir / "ijb" / "images" / img).string());
    for (int k = 0; k < 10; ++k) {
      EXPECT_GE(v[static_cast<std::size_t>(k)], 0.0);
      EXPECT_LT(v[static_cast<std::size_t>(k)], img_m.cols);
    }
  }
  int genuine = 0, impostor = 0;
  for (const auto& l : lines_of(meta / "synth_template_pair_label.txt")) {
    std::istringstream ss(l);
    int64_t t1, t2;
    int label;
    ASSERT_TRUE(ss >> t1 >> t2 >> label);
    EXPECT_TRUE(media_of_template.count(t1) && media_of_template.count(t2));
    (label ? genuine : impostor) += 1;
    EXPECT_EQ(label == 1, (t1 - 1) / 3 == (t2 - 1) / 3);
  }
  EXPECT_EQ(genuine, 3 * o.ijb_subjects);
  EXPECT_GT(impostor, genuine);
  std::set<int64_t> g1, g2;
  for (const char* csv : {"synth_1N_gallery_G1.csv", "synth_1N_gallery_G2.csv", "synth_1N_probe_mixed.csv"}) {
    const auto rows = lines_of(meta / csv);
    ASSERT_GT(rows.size(), 1u);
    EXPECT_EQ(rows[0], "TEMPLATE_ID,SUBJECT_ID,FILENAME");
    for (std::size_t i = 1; i < rows.size(); ++i) {
      const auto c1 = rows[i].find(','), c2 = rows[i].find(',', c1 + 1);
      const int64_t subject = std::stoll(rows[i].substr(c1 + 1, c2 - c1 - 1));
      EXPECT_TRUE(images.count(rows[i].substr(c2 + 1)));
      if (std::string(csv).find("G1") != std::string::npos) g1.insert(subject);
      if (std::string(csv).find("G2") != std::string::npos) g2.insert(subject);
    }
  }
  for (int64_t s : g1) EXPECT_FALSE(g2.count(s));
  EXPECT_EQ(static_cast<int64_t>(g1.size() + g2.size()), o.ijb_subjects);

  // TinyFace layout: label = prefix before the first '_'; distractors disjoint.
  std::map<std::string, std::set<std::string>> labels;
  int64_t tf = 0;
  for (const char* folder : {"probe", "gallery", "distractor"})
    for (const auto& e : fs::directory_iterator(dir / "tinyface" / folder)) {
      const std::string name = e.path().filename().string();
      EXPECT_EQ(e.path().extension(), ".jpg");
      labels[folder].insert(name.substr(0, name.find('_')));
      ++tf;
      EXPECT_TRUE(manifest["tinyface"]["files"].contains(std::string("tinyface/") + folder + "/" + name));
    }
  EXPECT_EQ(tf, sum.tinyface_images);
  EXPECT_EQ(labels["probe"], labels["gallery"]);
  for (const auto& l : labels["distractor"]) EXPECT_FALSE(labels["probe"].count(l)) << l;
}

TEST(SynthGenerate, HandcraftedBaselineIsFarFromPerfectAndFallsWithQuality) {
  TempDir dir;
  SynthOptions o = tiny(2);
  o.val_ids = 60;
  o.val_pairs = 150;
  generate(dir.path(), o);
  const auto rows = run_baseline(dir.path(), 2);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].set, "val_high");
  EXPECT_EQ(rows[2].set, "val_low");
  EXPECT_GT(rows[0].mean_min_quality, rows[1].mean_min_quality);
  for (const auto& r : rows) {
    EXPECT_LT(r.pixels.mean, 0.95) << r.set;
    EXPECT_LT(r.lbp.mean, 0.95) << r.set;
  }
  EXPECT_GT(rows[0].pixels.mean, rows[2].pixels.mean + 0.03);
  EXPECT_GT(rows[0].lbp.mean, rows[2].lbp.mean + 0.03);
  const std::string md = baseline_markdown(rows);
  EXPECT_NE(md.find("| val_mixed |"), std::string::npos);
}

TEST(SynthBaseline, FoldAccuracyOnHandMadeScores) {
  // Perfectly separable scores: 100 %.
  std::vector<double> s;
  std::vector<uint8_t> same;
  for (int i = 0; i < 40; ++i) {
    same.push_back(i % 2 == 0);
    s.push_back(i % 2 == 0 ? 0.9 + i * 1e-3 : 0.1 + i * 1e-3);
  }
  EXPECT_DOUBLE_EQ(verification_accuracy(s, same).mean, 1.0);
  // Scores that say nothing (all equal): the best a threshold can do is the majority, 50 %.
  std::vector<double> flat(40, 0.5);
  EXPECT_DOUBLE_EQ(verification_accuracy(flat, same).mean, 0.5);
  // Inverted scores cannot be rescued by a ">= threshold" rule.
  std::vector<double> inv;
  for (double v : s) inv.push_back(-v);
  EXPECT_LE(verification_accuracy(inv, same).mean, 0.5);
}

TEST(SynthCli, WritesDatasetPreviewAndRejectsBadInput) {
  TempDir dir;
  auto r = qface::testing::run_qface({"synth", "--preset", "tiny", "--out", (dir / "ds").string(), "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "ds" / "manifest.json"));
  EXPECT_TRUE(fs::exists(dir / "ds" / "train.idx"));
  r = qface::testing::run_qface({"synth", "--preview", "3", "--out", (dir / "grid.png").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const cv::Mat grid = cv::imread((dir / "grid.png").string());
  EXPECT_EQ(grid.size(), cv::Size(7 * 112, 3 * 112));
  r = qface::testing::run_qface({"synth", "--baseline", (dir / "ds").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| val_low |"), std::string::npos);
  r = qface::testing::run_qface({"synth", "--preset", "huge", "--out", (dir / "x").string()});
  EXPECT_NE(r.exit_code, 0);
  r = qface::testing::run_qface({"synth", "--baseline", (dir / "grid_dir_missing").string()});
  EXPECT_NE(r.exit_code, 0);
  fs::create_directories(dir / "empty");
  r = qface::testing::run_qface({"synth", "--baseline", (dir / "empty").string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("val_high.bin"), std::string::npos) << r.err;
}
