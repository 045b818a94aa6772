// Issue 35's additions to `qface synth`, on the tiny preset: identity-free
// training images (share, marks, nothing else moves), the cross-quality set
// val_cross (bands per side, labels), the held-out tail probe (labels, files,
// meta.json), and that none of them changes another file's bytes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <map>
#include <set>

#include "qface/core/fs.h"
#include "qface/data/bin_set.h"
#include "qface/data/recordio.h"
#include "qface/synth/generate.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using nlohmann::json;
using qface::testing::TempDir;
using namespace qface::synth;

namespace {

std::map<std::string, std::string> tree(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) files[fs::relative(e.path(), root).string()] = qface::read_file(e.path());
  return files;
}

SynthOptions tiny() {
  SynthOptions o = preset_options("tiny");
  o.seed = 7;
  o.threads = 2;
  return o;
}

json manifest_of(const TempDir& dir) { return json::parse(qface::read_file(dir / "manifest.json")); }

cv::Mat decode(const std::string& bytes) {
  return cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data())),
                      cv::IMREAD_COLOR);
}

// Encoded training images in record order.
std::vector<std::string> train_images(const TempDir& dir) {
  qface::data::FaceRecordSet rec(dir / "train.rec");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < rec.num_images(); ++i) out.push_back(rec.read_image(i).encoded);
  return out;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST(SynthTail, NewSetsAndIdentityFreeImagesLeaveTheOtherFilesAsTheyWere) {
  // A: no cross set and no identity-free images (the qface-synth-2 file set);
  // C: the default (val_cross added); B: identity-free images and the tail probe too.
  TempDir a, b, c;
  SynthOptions o = tiny();
  EXPECT_EQ(o.identity_free, 0.0);  // every preset: none
  EXPECT_EQ(options_json(o)["tail_probe"], 0);
  o.val_cross_pairs = 0;
  const SynthSummary sa = generate(a.path(), o);
  EXPECT_EQ(sa.val_cross_pairs, 0);
  const SynthSummary sc = generate(c.path(), tiny());
  EXPECT_EQ(sc.val_cross_pairs, tiny().val_pairs);
  SynthOptions ob = tiny();
  ob.identity_free = 0.3;
  const SynthSummary sb = generate(b.path(), ob);
  EXPECT_EQ(sa.identity_free_images + sc.identity_free_images + sa.tail_probe_images + sc.tail_probe_images, 0);
  EXPECT_GT(sb.identity_free_images, 0);
  EXPECT_EQ(sb.train_images, sa.train_images);  // replaced, not added
  const auto ta = tree(a.path()), tb = tree(b.path()), tc = tree(c.path());
  EXPECT_FALSE(ta.count("val_cross.bin") || ta.count("tail_probe/meta.json") || tc.count("tail_probe/meta.json"));
  for (const auto& [name, bytes] : ta) {
    if (name == "manifest.json") continue;
    ASSERT_TRUE(tc.count(name)) << name;
    EXPECT_TRUE(tc.at(name) == bytes) << name << " changed with val_cross written";
    if (name == "train.rec" || name == "train.idx") continue;  // record sizes move the offsets
    ASSERT_TRUE(tb.count(name)) << name;
    EXPECT_TRUE(tb.at(name) == bytes) << name << " changed with identity-free images";
  }
  for (const auto& [name, bytes] : tc)
    if (!ta.count(name)) EXPECT_TRUE(name == "val_cross.bin" || name == "val_cross.json") << name;
  for (const auto& [name, bytes] : tb)
    if (!tc.count(name)) EXPECT_TRUE(starts_with(name, "tail_probe/")) << name;
  EXPECT_TRUE(tb.at("val_cross.bin") == tc.at("val_cross.bin"));

  // train.rec: the same records in the same order; only the identity-free ones differ.
  const auto ra = train_images(a), rb = train_images(b);
  const json records = manifest_of(b)["train"]["records"];
  ASSERT_EQ(ra.size(), rb.size());
  ASSERT_EQ(records.size(), rb.size());
  const json records_a = manifest_of(a)["train"]["records"];
  int64_t changed = 0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    const bool free = records[i]["identity_free"].get<bool>();
    EXPECT_EQ(records[i]["label"], records_a[i]["label"]);
    EXPECT_EQ(ra[i] == rb[i], !free) << "record " << i;
    if (!free) EXPECT_EQ(records[i]["nuisance"], records_a[i]["nuisance"]) << i;
    changed += free;
    EXPECT_FALSE(records_a[i]["identity_free"].get<bool>());
  }
  EXPECT_EQ(changed, sb.identity_free_images);
}

TEST(SynthTail, IdentityFreeImagesAtTheAskedShareAndMarked) {
  TempDir dir;
  SynthOptions o = tiny();
  o.ids = 16;
  o.per_id = 16;
  o.identity_free = 0.25;
  const SynthSummary sum = generate(dir.path(), o);
  const json m = manifest_of(dir);
  EXPECT_EQ(m["version"], kSynthVersion);
  EXPECT_EQ(m["options"]["identity_free"], 0.25);
  const json& records = m["train"]["records"];
  const auto images = train_images(dir);
  ASSERT_EQ(records.size(), images.size());
  const double n = static_cast<double>(records.size());
  int64_t free = 0;
  std::set<int64_t> fresh;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const json& r = records[i];
    const int64_t label = r["label"];
    EXPECT_GE(label, 0);
    EXPECT_LT(label, o.ids);
    if (!r["identity_free"].get<bool>()) {
      EXPECT_GE(r["identity"].get<int64_t>(), 0);
      continue;
    }
    ++free;
    EXPECT_EQ(r["identity"], -1);                 // no training identity
    EXPECT_FALSE(r["noisy_label"].get<bool>());
    EXPECT_TRUE(r["nuisance"]["unrecognizable"].get<bool>());
    EXPECT_LT(r["quality"].get<double>(), 0.15);  // the unrecognizable recipe's ceiling (~0.14)
    fresh.insert(r["free_identity"].get<int64_t>());
    EXPECT_EQ(decode(images[i]).size(), cv::Size(112, 112));
  }
  // Binomial(n, 0.25): within 4 standard deviations.
  EXPECT_NEAR(static_cast<double>(free), 0.25 * n, 4 * std::sqrt(n * 0.25 * 0.75)) << n;
  EXPECT_EQ(free, sum.identity_free_images);
  EXPECT_EQ(m["train"]["identity_free"]["images"], free);
  EXPECT_EQ(static_cast<int64_t>(fresh.size()), free);  // a fresh identity per image
}

TEST(SynthTail, CrossQualityPairsLowProbeHighReference) {
  TempDir dir;
  SynthOptions o = tiny();
  o.val_pairs = 40;
  const SynthSummary sum = generate(dir.path(), o);
  EXPECT_EQ(sum.val_cross_pairs, 40);
  const auto bin = qface::data::read_bin_set(dir / "val_cross.bin");
  const json side = json::parse(qface::read_file(dir / "val_cross.json"));
  const json low = json::parse(qface::read_file(dir / "val_low.json"));
  std::set<std::string> keys, low_keys;
  for (const auto& [k, v] : side.items()) keys.insert(k);
  for (const auto& [k, v] : low.items()) low_keys.insert(k);
  EXPECT_EQ(keys, low_keys);  // the sidecar format of the other strata
  EXPECT_EQ(side["file"], "val_cross.bin");
  ASSERT_EQ(bin.pairs(), 40u);
  ASSERT_EQ(side["quality"].size(), 40u);
  const json images = manifest_of(dir)["val_cross"]["images"];
  ASSERT_EQ(images.size(), 80u);
  std::size_t same = 0, lookalike = 0;
  const json val_ids = manifest_of(dir)["identities"]["val"];
  for (std::size_t p = 0; p < bin.pairs(); ++p) {
    const double q0 = side["quality"][p][0], q1 = side["quality"][p][1];
    EXPECT_GE(q0, o.low_lo - 1e-4) << p;
    EXPECT_LE(q0, o.low_hi + 1e-4) << p;
    EXPECT_GE(q1, o.high_lo - 1e-4) << p;
    const int64_t i0 = side["identity"][p][0], i1 = side["identity"][p][1];
    EXPECT_EQ(bin.issame[p], side["issame"][p].get<bool>());
    EXPECT_EQ(bin.issame[p], i0 == i1) << p;
    EXPECT_GE(std::min(i0, i1), 0);
    EXPECT_LT(std::max(i0, i1), o.val_ids);
    same += bin.issame[p];
    lookalike += !bin.issame[p] && val_ids[i0]["family"] == val_ids[i1]["family"];
    EXPECT_EQ(images[2 * p]["quality"], side["quality"][p][0]);
    EXPECT_EQ(images[2 * p + 1]["identity"], i1);
    EXPECT_EQ(decode(bin.images[2 * p]).size(), cv::Size(112, 112));
  }
  EXPECT_EQ(2 * same, bin.pairs());
  EXPECT_GT(lookalike, 0u);
}

TEST(SynthTail, TailProbeLabelsFilesAndMeta) {
  TempDir dir;
  SynthOptions o = tiny();
  o.identity_free = 0.2;
  o.tail_probe = 10;  // more than the 8 classes: every class, then again
  const SynthSummary sum = generate(dir.path(), o);
  EXPECT_EQ(sum.tail_probe_images, 30);
  const json meta = json::parse(qface::read_file(dir / "tail_probe" / "meta.json"));
  EXPECT_DOUBLE_EQ(meta["chance_rank1"].get<double>(), 1.0 / static_cast<double>(o.ids));
  EXPECT_EQ(meta["classes"], o.ids);
  const json& files = meta["files"];
  ASSERT_EQ(files.size(), 30u);
  const json manifest_files = manifest_of(dir)["tail_probe"]["files"];
  EXPECT_EQ(manifest_files.size(), 30u);
  std::set<std::string> train;
  for (auto& t : train_images(dir)) train.insert(std::move(t));
  std::map<std::string, std::set<int64_t>> labels;
  for (const json& f : files) {
    const std::string file = f["file"], kind = f["kind"];
    const int64_t label = f["label"];
    EXPECT_GE(label, 0);
    EXPECT_LT(label, o.ids);
    EXPECT_TRUE(starts_with(file, "tail_probe/" + kind + "/" + std::to_string(label) + "_")) << file;
    const std::string bytes = qface::read_file(dir / file);
    EXPECT_EQ(decode(bytes).size(), cv::Size(112, 112)) << file;
    EXPECT_FALSE(train.count(bytes)) << file << " is a training image";
    EXPECT_EQ(f["identity"], kind == "free" ? -1 : label);
    if (kind != "ordinary") EXPECT_LT(f["quality"].get<double>(), 0.15) << file;
    ASSERT_TRUE(manifest_files.contains(file)) << file;
    EXPECT_EQ(manifest_files[file]["label"], label);
    EXPECT_EQ(manifest_files[file]["quality"], f["quality"]);
    labels[kind].insert(label);
  }
  ASSERT_EQ(labels.size(), 3u);
  EXPECT_EQ(static_cast<int64_t>(labels["free"].size()), o.ids);  // every class
  EXPECT_EQ(labels["free"], labels["ordinary"]);
  EXPECT_EQ(labels["free"], labels["unrecognizable"]);
}

TEST(SynthTail, CliIdentityFreeOption) {
  TempDir dir;
  auto r = qface::testing::run_qface({"synth", "--preset", "tiny", "--out", (dir / "ds").string(), "--identity-free",
                                      "0.2", "--tail-probe", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tail_probe 12 images"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir / "ds" / "tail_probe" / "meta.json"));
  EXPECT_TRUE(fs::exists(dir / "ds" / "val_cross.json"));
  r = qface::testing::run_qface({"synth", "--preset", "tiny", "--out", (dir / "x").string(), "--identity-free", "1.5"});
  EXPECT_NE(r.exit_code, 0);
}
