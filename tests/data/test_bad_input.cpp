// A corpus of deliberately broken files, written here, through every reader:
// each gives one clear error naming the file and the record (or idx line),
// and skip_bad counts instead of stopping where that is possible.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/recordio.h"
#include "tests/support/testing.h"

using namespace qface::data;
using qface::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// A good face set: 6 images of 3 identities; returns the .rec bytes.
std::string write_good(const fs::path& rec) {
  FaceRecordWriter w(rec);
  for (int i = 0; i < 6; ++i) w.add_image("image-bytes-" + std::to_string(i), i / 2);
  w.finish();
  return qface::read_file(rec);
}

uint64_t offset_of(const fs::path& rec, uint64_t key) {
  RecordFile f(rec);
  return f.offset(key);
}

void put32(std::string& s, uint64_t off, uint32_t v) { std::memcpy(s.data() + off, &v, 4); }

// Expects an Error whose message holds every one of `mentions`.
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& mentions) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected " << mentions.front();
  } catch (const qface::Error& e) {
    const std::string msg = e.what();
    for (const auto& m : mentions) EXPECT_NE(msg.find(m), std::string::npos) << "missing '" << m << "' in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

ReadOptions no_index() {
  ReadOptions o;
  o.use_index = false;
  return o;
}
ReadOptions skipping(bool use_index = true) {
  ReadOptions o;
  o.use_index = use_index;
  o.skip_bad = true;
  return o;
}

}  // namespace

TEST(BadInput, WrongMagic) {
  TempDir dir;
  const fs::path rec = dir / "magic.rec";
  std::string bytes = write_good(rec);
  const uint64_t off = offset_of(rec, 3);
  put32(bytes, off, 0xdeadbeef);
  qface::write_file_atomic(rec, bytes);
  // Through the index: the bad record fails when read, naming it.
  FaceRecordSet set(rec);
  EXPECT_EQ(set.read_image(1).label, 0);
  expect_error([&] { set.read_image(2); }, {"magic.rec", "record 3", "wrong magic 0xdeadbeef", std::to_string(off)});
  // Without the index: the scan stops at it, or resynchronizes with skip_bad.
  expect_error([&] { FaceRecordSet s(rec, no_index()); }, {"magic.rec", "record 3", "wrong magic"});
  RecordFile f(rec, skipping(false));
  EXPECT_EQ(f.skipped(), 1u);
  EXPECT_EQ(f.size(), 9u);  // 10 records less the broken one
}

TEST(BadInput, LengthPastEndOfFile) {
  TempDir dir;
  const fs::path rec = dir / "len.rec";
  std::string bytes = write_good(rec);
  const uint64_t off = offset_of(rec, 2);
  put32(bytes, off + 4, 1000000);  // payload length 1e6 in a ~400-byte file
  qface::write_file_atomic(rec, bytes);
  FaceRecordSet set(rec);
  expect_error([&] { set.read_image(1); }, {"len.rec", "record 2", "length 1000000 runs past the end"});
  expect_error([&] { RecordFile f(rec, no_index()); }, {"len.rec", "record 2", "runs past the end"});
  // A file cut in the middle of a record.
  const fs::path cut = dir / "cut.rec";
  qface::write_file_atomic(cut, write_good(rec).substr(0, offset_of(rec, 9) + 12));
  expect_error([&] { RecordFile f(cut, no_index()); }, {"cut.rec", "record 9", "runs past the end"});
}

TEST(BadInput, TruncatedOrInconsistentIndex) {
  TempDir dir;
  const fs::path rec = dir / "idx.rec", idx = dir / "idx.idx";
  write_good(rec);
  const std::string good_idx = qface::read_file(idx);
  struct Case {
    std::string idx_text;
    std::vector<std::string> mentions;
  };
  const std::string first_lines = good_idx.substr(0, good_idx.find("\n3\t") + 1);  // keys 0..2
  std::vector<Case> cases = {
      {first_lines + "3\t", {"idx.idx", "line 4", "expected 'key<TAB>offset'"}},  // truncated mid-line
      {first_lines + "3", {"idx.idx", "line 4"}},
      {first_lines + "3\t99999999\n", {"idx.idx", "line 4", "past the end"}},
      {first_lines + "3\t42\n", {"idx.idx", "line 4", "not 4-byte aligned"}},
      {first_lines + "2\t0\n", {"idx.idx", "line 4", "duplicate key 2"}},
      {first_lines + "x\ty\n", {"idx.idx", "line 4"}},
  };
  for (const auto& c : cases) {
    qface::write_file_atomic(idx, c.idx_text);
    expect_error([&] { RecordFile f(rec); }, c.mentions);
  }
  // An offset that is aligned and inside the file but not at a record.
  const std::string rest = good_idx.substr(good_idx.find("\n4\t") + 1);
  qface::write_file_atomic(idx, first_lines + "3\t48\n" + rest);
  FaceRecordSet inconsistent(rec);
  EXPECT_EQ(inconsistent.read_image(0).label, 0);
  expect_error([&] { inconsistent.read_image(2); }, {"idx.rec", "record 3", "byte offset 48", "wrong magic"});
  // An image missing from the index: an error, or left out with skip_bad.
  qface::write_file_atomic(idx, first_lines + rest);
  expect_error([&] { FaceRecordSet s(rec); }, {"idx.rec", "record 3", "missing from the index"});
  FaceRecordSet without3(rec, skipping());
  EXPECT_EQ(without3.num_images(), 5u);
  EXPECT_EQ(without3.skipped(), 1u);
  EXPECT_EQ(without3.read_image(2).key, 4u);
  // A header naming images the truncated index lacks.
  qface::write_file_atomic(idx, first_lines);
  expect_error([&] { FaceRecordSet s(rec); }, {"idx.rec", "record 3", "missing from the index"});
  // skip_bad: bad idx lines are counted and left out, not fatal.
  qface::write_file_atomic(idx, first_lines + "x\ty\n3\t99999999\n");
  RecordFile f(rec, skipping());
  EXPECT_EQ(f.skipped(), 2u);
  EXPECT_EQ(f.size(), 3u);
}

TEST(BadInput, LabelOutsideTheIdentityRange) {
  TempDir dir;
  const fs::path rec = dir / "label.rec";
  {
    // Header: images 1..3, identities 4..5 (two identities); image 2 has label 7.
    RecordWriter w(rec);
    w.write(0, pack_payload({}, {4.0f, 6.0f}, {}));
    const float labels[] = {0, 7, 1};
    for (int k = 1; k <= 3; ++k) {
      IRHeader h;
      h.label = labels[k - 1];
      w.write(k, pack_payload(h, {}, "img"));
    }
    w.write(4, pack_payload({}, {1.0f, 3.0f}, {}));
    w.write(5, pack_payload({}, {3.0f, 4.0f}, {}));
    w.commit();
  }
  FaceRecordSet set(rec);
  EXPECT_EQ(set.num_classes(), 2);
  EXPECT_EQ(set.read_image(0).label, 0);
  expect_error([&] { set.read_image(1); }, {"label.rec", "record 2", "label 7 is outside the identity range [0, 2)"});
  // Image 3 (label 1) is in identity 1's range [3, 4); fine.
  EXPECT_EQ(set.read_image(2).label, 1);
}

TEST(BadInput, MalformedHeadersAndPayloads) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::vector<std::string>& payloads) {
    RecordWriter w(dir / name);
    for (std::size_t k = 0; k < payloads.size(); ++k) w.write(k, payloads[k]);
    w.commit();
    return dir / name;
  };
  IRHeader h;
  h.label = 0.5f;  // not an integer label
  auto frac = write("frac.rec", {pack_payload(h, {}, "img")});
  expect_error([&] { FaceRecordSet(frac).read_image(0); }, {"frac.rec", "record 0", "label 0.5"});
  auto shortp = write("short.rec", {"abc"});
  expect_error([&] { FaceRecordSet(shortp).read_image(0); }, {"short.rec", "record 0", "shorter than the 24-byte IRHeader"});
  std::string too_many = pack_payload({}, {}, "");
  put32(too_many, 0, 1000);  // flag 1000: asks for 1000 label floats
  auto flag = write("flag.rec", {too_many + "x"});
  expect_error([&] { FaceRecordSet(flag).read_image(0); }, {"flag.rec", "record 0", "flag 1000"});
  auto badhead = write("head.rec", {pack_payload({}, {5.0f, 2.0f}, {})});
  expect_error([&] { FaceRecordSet s(badhead); }, {"head.rec", "record 0", "header label"});
  auto noid = write("noid.rec", {pack_payload({}, {2.0f, 3.0f}, {}), pack_payload({}, {}, "img")});
  expect_error([&] { FaceRecordSet s(noid); }, {"noid.rec", "record 2", "identity record 0"});
  auto badid = write("badid.rec", {pack_payload({}, {2.0f, 3.0f}, {}), pack_payload({}, {}, "img"),
                                   pack_payload({}, {1.0f, 9.0f}, {})});
  expect_error([&] { FaceRecordSet s(badid); }, {"badid.rec", "record 2", "no valid [first, end) image range"});
  expect_error([&] { RecordFile f(dir / "missing.rec"); }, {"missing.rec", "cannot open"});
  expect_error([&] { RecordFile f(dir.path()); }, {"is a directory"});
}

// ---------------------------------------------------------------------------
// Reported crashes (issue #16) and what fuzz/fuzz_recordio.cpp found.

TEST(BadInput, IndexOffsetsNearTwoToThe64AreRejected) {
  // `off + 8 > size` wrapped for offsets within 8 of 2^64, so the offset
  // passed the check and the read went far outside the mapping (SIGSEGV in
  // `qface data info`).
  TempDir dir;
  const fs::path rec = dir / "wrap.rec", idx = dir / "wrap.idx";
  write_good(rec);
  const std::string good_idx = qface::read_file(idx);
  const std::string first_lines = good_idx.substr(0, good_idx.find("\n3\t") + 1);
  for (const char* off : {"18446744073709551612", "18446744073709551608", "18446744073709551615"}) {
    qface::write_file_atomic(idx, first_lines + "3\t" + off + "\n");
    expect_error([&] { RecordFile f(rec); }, {"wrap.idx", "line 4", "key 3", std::string("offset ") + off, "past the end"});
    RecordFile skipping_file(rec, skipping());
    EXPECT_EQ(skipping_file.skipped(), 1u);
  }
  // The CLI gives the same one-line error and exit status 1.
  qface::write_file_atomic(idx, first_lines + "3\t18446744073709551612\n");
  auto r = qface::testing::run_qface({"data", "info", rec.string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("past the end"), std::string::npos) << r.err;
  // Empty and tiny .rec files with an index naming offset 0.
  const fs::path tiny = dir / "tiny.rec";
  qface::write_file_atomic(tiny, "abc");
  qface::write_file_atomic(dir / "tiny.idx", "0\t0\n");
  expect_error([&] { RecordFile f(tiny); }, {"tiny.idx", "line 1", "past the end"});
  qface::write_file_atomic(tiny, "");
  expect_error([&] { RecordFile f(tiny); }, {"tiny.idx", "line 1", "past the end"});
}

TEST(BadInput, HeaderNamingMillionsOfImagesIsCheap) {
  // A 100-byte file whose header claims 2^24 - 2 images: with skip_bad, the
  // missing ones are counted (a few logged), not reserved or logged one by one.
  TempDir dir;
  const fs::path rec = dir / "claims.rec";
  {
    RecordWriter w(rec);
    w.write(0, pack_payload({}, {16777215.0f, 16777215.0f}, {}));
    w.write(1, pack_payload({}, {}, "img"));
    w.commit();
  }
  expect_error([&] { FaceRecordSet s(rec); }, {"claims.rec", "record 2", "missing from the index"});
  FaceRecordSet s(rec, skipping());
  EXPECT_EQ(s.num_images(), 1u);
  EXPECT_EQ(s.skipped(), 16777213u);
}

TEST(BadInput, CommitReplacesIndexLastAndLeavesNoTemporaries) {
  TempDir dir;
  const fs::path rec = dir / "pair.rec", idx = dir / "pair.idx";
  write_good(rec);
  const std::string old_rec = qface::read_file(rec), old_idx = qface::read_file(idx);
  {
    // An abandoned writer (a crash before commit) leaves the old pair as it was.
    FaceRecordWriter w(rec);
    w.add_image("other", 0);
  }
  EXPECT_EQ(qface::read_file(rec), old_rec);
  EXPECT_EQ(qface::read_file(idx), old_idx);
  // A new pair replaces both; nothing else is left in the folder.
  {
    FaceRecordWriter w(rec);
    for (int i = 0; i < 3; ++i) w.add_image("new-image-" + std::to_string(i), 0);
    w.finish();
  }
  FaceRecordSet set(rec);
  EXPECT_EQ(set.num_images(), 3u);
  EXPECT_EQ(set.read_image(2).encoded, "new-image-2");
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_TRUE(e.path() == rec || e.path() == idx) << e.path();
  }
  EXPECT_EQ(files, 2u);
  // The state a crash between the renames leaves (new .rec, no .idx) reads by scanning.
  fs::remove(idx);
  FaceRecordSet scanned(rec);
  EXPECT_FALSE(scanned.file().indexed());
  EXPECT_EQ(scanned.read_image(2).encoded, "new-image-2");
}
