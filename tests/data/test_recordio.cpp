// RecordIO: byte layout per docs/method.md, Data formats, round trips with and
// without the index, continuation records, label arrays.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/recordio.h"
#include "tests/support/testing.h"

using namespace qface::data;
using qface::testing::TempDir;

namespace {

template <class T>
T word(const std::string& s, std::size_t off) {
  T v;
  std::memcpy(&v, s.data() + off, sizeof(T));
  return v;
}

std::string random_bytes(std::mt19937& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

}  // namespace

TEST(RecordIO, ByteLayoutMatchesSpec) {
  TempDir dir;
  FaceRecordWriter w(dir / "t.rec");
  EXPECT_EQ(w.add_image("abc", 0), 1u);
  EXPECT_EQ(w.add_image("12345678", 1), 2u);
  w.finish();
  const std::string rec = qface::read_file(dir / "t.rec");
  // Record 0: header, flag 2, labels [3, 5] (images 1..2, identities 3..4).
  EXPECT_EQ(word<uint32_t>(rec, 0), 0xced7230au);
  EXPECT_EQ(word<uint32_t>(rec, 4), 32u);  // 24-byte IRHeader + 2 floats, cflag 0
  EXPECT_EQ(word<uint32_t>(rec, 8), 2u);
  EXPECT_EQ(word<float>(rec, 32), 3.0f);
  EXPECT_EQ(word<float>(rec, 36), 5.0f);
  // Record 1 at 40: flag 0, label 0, id 1, "abc" + one padding byte.
  EXPECT_EQ(word<uint32_t>(rec, 40), 0xced7230au);
  EXPECT_EQ(word<uint32_t>(rec, 44), 27u);
  EXPECT_EQ(word<uint32_t>(rec, 48), 0u);
  EXPECT_EQ(word<float>(rec, 52), 0.0f);
  EXPECT_EQ(word<uint64_t>(rec, 56), 1u);
  EXPECT_EQ(word<uint64_t>(rec, 64), 0u);
  EXPECT_EQ(rec.substr(72, 4), std::string("abc\0", 4));
  // Record 2 at 76: label 1, 8 image bytes, no padding.
  EXPECT_EQ(word<uint32_t>(rec, 80), 32u);
  EXPECT_EQ(word<float>(rec, 88), 1.0f);
  EXPECT_EQ(rec.substr(108, 8), "12345678");
  // Identity records 3 (at 116) and 4 (at 156): ranges [1,2) and [2,3).
  EXPECT_EQ(word<uint32_t>(rec, 116 + 8), 2u);
  EXPECT_EQ(word<float>(rec, 116 + 32), 1.0f);
  EXPECT_EQ(word<float>(rec, 116 + 36), 2.0f);
  EXPECT_EQ(word<float>(rec, 156 + 32), 2.0f);
  EXPECT_EQ(word<float>(rec, 156 + 36), 3.0f);
  EXPECT_EQ(rec.size(), 196u);
  EXPECT_EQ(qface::read_file(dir / "t.idx"), "0\t0\n1\t40\n2\t76\n3\t116\n4\t156\n");
}

TEST(RecordIO, FaceSetRoundTripWithAndWithoutIndex) {
  TempDir dir;
  std::mt19937 rng(5);
  // Identities 0..4 with counts 3, 0, 5, 1, 7 (identity 1 has no image).
  const int counts[] = {3, 0, 5, 1, 7};
  std::vector<std::pair<int64_t, std::string>> images;
  for (int c = 0; c < 5; ++c)
    for (int k = 0; k < counts[c]; ++k) images.emplace_back(c, random_bytes(rng, 1 + rng() % 300));
  {
    FaceRecordWriter w(dir / "f.rec");
    for (auto& [label, bytes] : images) w.add_image(bytes, label);
    w.finish(6);  // one more identity than labels seen
  }
  for (bool use_index : {true, false}) {
    SCOPED_TRACE(use_index);
    ReadOptions opt;
    opt.use_index = use_index;
    FaceRecordSet set(dir / "f.rec", opt);
    EXPECT_EQ(set.file().indexed(), use_index);
    EXPECT_TRUE(set.has_header());
    ASSERT_EQ(set.num_images(), images.size());
    EXPECT_EQ(set.num_classes(), 6);
    EXPECT_EQ(set.identity_range(0), std::make_pair(uint64_t{1}, uint64_t{4}));
    EXPECT_EQ(set.identity_range(1).first, set.identity_range(1).second);
    EXPECT_EQ(set.identity_range(2), std::make_pair(uint64_t{4}, uint64_t{9}));
    EXPECT_EQ(set.identity_range(5).first, set.identity_range(5).second);
    for (std::size_t i = 0; i < images.size(); ++i) {
      auto im = set.read_image(i);
      EXPECT_EQ(im.key, i + 1);
      EXPECT_EQ(im.label, images[i].first);
      EXPECT_EQ(im.encoded, images[i].second);
    }
  }
}

TEST(RecordIO, PayloadsHoldingTheMagicAreSplitAndRejoined) {
  TempDir dir;
  const uint32_t m = kRecordMagic;
  std::string magic(reinterpret_cast<const char*>(&m), 4);
  // Aligned magic words at payload offsets 0, 8 and 12, and an unaligned one.
  std::string p1 = magic + "abcd" + magic + magic + "xy";
  std::string p2 = "a" + magic + "bcd";
  {
    RecordWriter w(dir / "c.rec");
    w.write(7, p1);
    w.write(9, p2);
    w.commit();
  }
  const std::string rec = qface::read_file(dir / "c.rec");
  // p1 becomes parts of lengths 0 (cflag 1), 4 (cflag 2), 0 (cflag 2), 2 (cflag 3).
  EXPECT_EQ(word<uint32_t>(rec, 4), (1u << 29) | 0u);
  EXPECT_EQ(word<uint32_t>(rec, 12), (2u << 29) | 4u);
  EXPECT_EQ(word<uint32_t>(rec, 24), (2u << 29) | 0u);
  EXPECT_EQ(word<uint32_t>(rec, 32), (3u << 29) | 2u);
  EXPECT_EQ(word<uint32_t>(rec, 44), 8u);  // p2: one whole record (unaligned magic)
  for (bool use_index : {true, false}) {
    ReadOptions opt;
    opt.use_index = use_index;
    RecordFile f(dir / "c.rec", opt);
    ASSERT_EQ(f.size(), 2u);
    const uint64_t k1 = use_index ? 7 : 0, k2 = use_index ? 9 : 1;
    EXPECT_EQ(f.read_payload(k1), p1);
    EXPECT_EQ(f.read_payload(k2), p2);
  }
}

TEST(RecordIO, LabelArraysAndPlainFilesWithoutHeader) {
  IRHeader h;
  h.id = 42;
  std::string p = pack_payload(h, {3.5f, 7.0f, 1.0f}, "img");
  Record r = unpack_payload(p, "x");
  EXPECT_EQ(r.header.flag, 3u);
  EXPECT_EQ(r.labels, (std::vector<float>{3.5f, 7.0f, 1.0f}));
  EXPECT_EQ(r.label(), 3.5f);
  EXPECT_EQ(r.header.id, 42u);
  EXPECT_EQ(r.image, "img");

  TempDir dir;
  {
    RecordWriter w(dir / "p.rec");
    for (int k = 0; k < 4; ++k) {
      IRHeader ih;
      ih.label = static_cast<float>(k % 2);
      w.write(k, pack_payload(ih, {}, "img" + std::to_string(k)));
    }
    w.commit();
  }
  FaceRecordSet set(dir / "p.rec");
  EXPECT_FALSE(set.has_header());
  EXPECT_EQ(set.num_images(), 4u);
  EXPECT_EQ(set.num_classes(), -1);
  EXPECT_EQ(set.read_image(0).encoded, "img0");
  EXPECT_EQ(set.read_image(3).label, 1);
}

TEST(RecordIO, UncommittedWriterLeavesNothing) {
  TempDir dir;
  {
    FaceRecordWriter w(dir / "u.rec");
    w.add_image("abc", 0);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  FaceRecordWriter w(dir / "v.rec");
  w.add_image("abc", 2);
  EXPECT_THROW(w.add_image("abc", 1), qface::Error);
  EXPECT_THROW(w.add_image("abc", -1), qface::Error);
}
