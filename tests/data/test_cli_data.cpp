// qface data pack/unpack/info/preview/make-test and qface bench loader, end to end.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "qface/core/fs.h"
#include "qface/data/recordio.h"
#include "qface/data/tools.h"
#include "tests/support/testing.h"

using qface::testing::run_qface;
using qface::testing::TempDir;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::string encode(const std::string& ext, const cv::Mat& m) {
  std::vector<uchar> buf;
  cv::imencode(ext, m, buf);
  return std::string(buf.begin(), buf.end());
}

void expect_one_line_error(const qface::testing::RunResult& r, const std::vector<std::string>& mentions) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  for (const auto& m : mentions) EXPECT_NE(r.err.find(m), std::string::npos) << "missing '" << m << "' in: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}
}  // namespace

TEST(CliData, PackInfoUnpackRoundTrip) {
  TempDir dir;
  // Identities named out of order: labels follow the sorted names (alice 0, bob 1, carol 2).
  const std::vector<std::pair<std::string, int>> ids = {{"bob", 3}, {"alice", 2}, {"carol", 1}};
  std::map<std::string, std::vector<std::string>> originals;  // identity -> bytes in file-name order
  for (const auto& [name, count] : ids) {
    fs::create_directories(dir / "faces" / name);
    for (int k = 0; k < count; ++k) {
      const std::string ext = k % 2 ? ".png" : ".jpg";
      const std::string bytes = encode(ext, qface::data::draw_test_face(name[0], k, 48));
      qface::write_file_atomic(dir / "faces" / name / ("img" + std::to_string(k) + ext), bytes);
      originals[name].push_back(bytes);
    }
  }
  qface::write_file_atomic(dir / "faces" / "bob" / "notes.txt", "not an image");
  auto p = run_qface({"data", "pack", "--from", (dir / "faces").string(), "--out", (dir / "out" / "train").string()});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.err.find("packed 6 images of 3 identities"), std::string::npos) << p.err;
  ASSERT_TRUE(fs::exists(dir / "out" / "train.rec"));
  ASSERT_TRUE(fs::exists(dir / "out" / "train.idx"));

  auto i = run_qface({"data", "info", (dir / "out" / "train.rec").string(), "--json", "--sample", "0"});
  ASSERT_EQ(i.exit_code, 0) << i.err;
  json j = json::parse(i.out);
  EXPECT_EQ(j["images"], 6);
  EXPECT_EQ(j["identities"], 3);
  EXPECT_EQ(j["images_per_identity"]["min"], 1);
  EXPECT_EQ(j["images_per_identity"]["max"], 3);
  EXPECT_EQ(j["formats"]["jpeg"], 4);  // k = 0 of each identity and bob k = 2
  EXPECT_EQ(j["formats"]["png"], 2);   // alice and bob k = 1
  EXPECT_EQ(j["sizes"]["48x48"], 6);
  EXPECT_EQ(j["bad_records"], 0);
  auto text = run_qface({"data", "info", (dir / "out" / "train.rec").string()});
  EXPECT_NE(text.out.find("identities  3"), std::string::npos) << text.out;

  auto u = run_qface({"data", "unpack", "--rec", (dir / "out" / "train.rec").string(), "--out", (dir / "un").string()});
  ASSERT_EQ(u.exit_code, 0) << u.err;
  // alice = label 0 = keys 1, 2; bob = label 1 = keys 3..5; carol = label 2 = key 6.
  EXPECT_EQ(qface::read_file(dir / "un" / "0" / "1.jpg"), originals["alice"][0]);
  EXPECT_EQ(qface::read_file(dir / "un" / "0" / "2.png"), originals["alice"][1]);
  EXPECT_EQ(qface::read_file(dir / "un" / "1" / "5.jpg"), originals["bob"][2]);
  EXPECT_EQ(qface::read_file(dir / "un" / "2" / "6.jpg"), originals["carol"][0]);
  // Unpacked folders pack again into the same records.
  auto p2 = run_qface({"data", "pack", "--from", (dir / "un").string(), "--out", (dir / "again.rec").string()});
  ASSERT_EQ(p2.exit_code, 0) << p2.err;
  EXPECT_EQ(qface::read_file(dir / "again.rec"), qface::read_file(dir / "out" / "train.rec"));
}

TEST(CliData, PackRejectsOrSkipsUndecodableImages) {
  TempDir dir;
  fs::create_directories(dir / "faces" / "a");
  qface::write_file_atomic(dir / "faces" / "a" / "good.jpg", encode(".jpg", qface::data::draw_test_face(1, 1, 32)));
  qface::write_file_atomic(dir / "faces" / "a" / "torn.jpg", "\xff\xd8\xff\xe0 torn");
  const std::string out = (dir / "t").string();
  auto r = run_qface({"data", "pack", "--from", (dir / "faces").string(), "--out", out});
  expect_one_line_error(r, {"torn.jpg", "cannot decode"});
  EXPECT_FALSE(fs::exists(dir / "t.rec"));
  EXPECT_FALSE(fs::exists(dir / "t.idx"));
  r = run_qface({"data", "pack", "--from", (dir / "faces").string(), "--out", out, "--skip-bad"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("1 bad images skipped"), std::string::npos) << r.err;
  qface::data::FaceRecordSet set(dir / "t.rec");
  EXPECT_EQ(set.num_images(), 1u);
}

TEST(CliData, BrokenRecordsGiveOneLineErrorsOrAreCounted) {
  TempDir dir;
  const fs::path rec = dir / "b.rec";
  qface::data::write_test_rec(rec, 12, 3, 32);
  std::string bytes = qface::read_file(rec);
  const uint64_t off = qface::data::RecordFile(rec).offset(5);
  const uint32_t bad = 0x01020304;
  std::memcpy(bytes.data() + off, &bad, 4);
  qface::write_file_atomic(rec, bytes);
  expect_one_line_error(run_qface({"data", "info", rec.string()}), {"b.rec", "record 5", "wrong magic"});
  auto ok = run_qface({"data", "info", rec.string(), "--skip-bad", "--json"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(json::parse(ok.out)["bad_records"], 1);
  expect_one_line_error(run_qface({"data", "unpack", "--rec", rec.string(), "--out", (dir / "u").string()}),
                        {"b.rec", "record 5"});
  auto u = run_qface({"data", "unpack", "--rec", rec.string(), "--out", (dir / "u2").string(), "--skip-bad"});
  ASSERT_EQ(u.exit_code, 0) << u.err;
  EXPECT_NE(u.err.find("unpacked 11 images"), std::string::npos) << u.err;
  // No index: the sequential scan meets the bad record while opening.
  expect_one_line_error(run_qface({"data", "info", rec.string(), "--no-index"}), {"b.rec", "record 5", "wrong magic"});
  expect_one_line_error(run_qface({"data", "preview", "--rec", rec.string(), "--n", "12", "--out",
                                   (dir / "p.png").string(), "--no-augment"}),
                        {"b.rec", "record 5"});
  EXPECT_FALSE(fs::exists(dir / "p.png"));
}

TEST(CliData, PreviewAndBenchLoader) {
  TempDir dir;
  auto m = run_qface({"data", "make-test", "--out", (dir / "s").string(), "--images", "64", "--identities", "8"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  auto p = run_qface({"data", "preview", "--rec", (dir / "s.rec").string(), "--n", "9", "--out",
                      (dir / "grid.png").string()});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  cv::Mat grid = cv::imread((dir / "grid.png").string());
  EXPECT_EQ(grid.cols, 3 * 114 + 2);
  EXPECT_EQ(grid.rows, 3 * 114 + 2);
  auto b = run_qface({"bench", "loader", "--rec", (dir / "s.rec").string(), "--images", "64", "--batch", "16",
                      "--threads", "1,2", "--out", (dir / "b.json").string()});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_NE(b.out.find("decode+augment img/s"), std::string::npos) << b.out;
  json j = json::parse(qface::read_file(dir / "b.json"));
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1]["threads"], 2);
  EXPECT_GT(j[0]["decode_img_s"].get<double>(), 0);
  EXPECT_GT(j[0]["decode_augment_img_s"].get<double>(), 0);
}
