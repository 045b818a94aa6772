// .bin verification sets: round trips, Python 2 and Python 3 encodings, and
// the real Python (when /usr/bin/python3 with torch is there) both ways.
#include <gtest/gtest.h>

#include <fstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/bin_set.h"
#include "tests/support/testing.h"

using namespace qface::data;
using qface::testing::TempDir;
using namespace std::string_literals;

namespace {
BinSet sample_set() {
  BinSet s;
  for (int i = 0; i < 6; ++i) {
    std::string img = "\xff\xd8image" + std::to_string(i);
    img.push_back('\0');
    img += std::string(static_cast<std::size_t>(i) * 100, static_cast<char>(0x80 + i));  // > 255 bytes
    s.images.push_back(img);
  }
  s.issame = {true, false, true};
  return s;
}
}  // namespace

TEST(BinSet, RoundTrip) {
  TempDir dir;
  BinSet s = sample_set();
  write_bin_set(dir / "s.bin", s);
  BinSet r = read_bin_set(dir / "s.bin");
  EXPECT_EQ(r.images, s.images);
  EXPECT_EQ(r.issame, s.issame);
  EXPECT_EQ(r.pairs(), 3u);
  // Protocol 2, bytes as Python 2 str (SHORT_BINSTRING 'U' / BINSTRING 'T').
  const std::string bytes = qface::read_file(dir / "s.bin");
  EXPECT_EQ(bytes.substr(0, 2), "\x80\x02");
  EXPECT_NE(bytes.find('U'), std::string::npos);
  EXPECT_NE(bytes.find('T'), std::string::npos);
}

TEST(BinSet, ReadsPython2AndPython3Encodings) {
  // Python 2: pickle.dumps((['ab', 'cd'], [True]), 2)
  const std::string py2 = "\x80\x02]q\x00(U\x02" "abq\x01U\x02" "cdq\x02" "e]q\x03\x88" "a\x86q\x04."s;
  BinSet a = parse_bin_set(py2, "py2.bin");
  EXPECT_EQ(a.images, (std::vector<std::string>{"ab", "cd"}));
  EXPECT_EQ(a.issame, std::vector<uint8_t>{1});
  // Python 3: pickle.dumps(([b'ab', b'cd'], [False]), 2)
  const std::string py3 =
      "\x80\x02]q\x00(c_codecs\nencode\nq\x01X\x02\x00\x00\x00" "abq\x02X\x06\x00\x00\x00latin1q\x03\x86q\x04Rq\x05"
      "h\x01X\x02\x00\x00\x00" "cdq\x06h\x03\x86q\x07Rq\x08" "e]q\t\x89" "a\x86q\n."s;
  BinSet b = parse_bin_set(py3, "py3.bin");
  EXPECT_EQ(b.images, (std::vector<std::string>{"ab", "cd"}));
  EXPECT_EQ(b.issame, std::vector<uint8_t>{0});
}

TEST(BinSet, BadFilesNameTheProblem) {
  auto expect_error = [](const std::string& data, const std::string& mention) {
    try {
      parse_bin_set(data, "bad.bin");
      ADD_FAILURE() << "no error for " << mention;
    } catch (const qface::Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.bin"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << e.what();
    }
  };
  BinSet s = sample_set();
  const std::string good = encode_bin_set(s);
  expect_error(good.substr(0, good.size() / 2), "bad.bin");         // truncated
  // Three images for one pair: pickle.dumps((['a','b','c'], [True]), 2)
  expect_error("\x80\x02](U\x01" "aU\x01" "bU\x01" "ce]\x88" "a\x86."s, "3 images for 1 pairs");
  expect_error("\x80\x02K\x05."s, "expected a pickled (bins, issame_list) pair");
  // ([1], [True]): an int where an image should be.
  expect_error("\x80\x02]K\x01" "a]\x88" "a\x86."s, "bins[0]");
  s.issame.pop_back();
  EXPECT_THROW(encode_bin_set(s), qface::Error);
}

// Pairs that reuse one image object (issue #39, item 8): Python's pickle
// stores it once and refers to it; the reader makes the copies, within an
// absolute budget rather than the file's size.
TEST(BinSet, OneImageListedManyTimesIsReadWithinTheBudget) {
  // 2000 memo references to one 1000-byte image: 2 MB of copies from a 5 kB file.
  std::string p = "\x80\x02](T\xe8\x03\x00\x00"s + std::string(1000, 'j') + "q\x00"s;
  for (int i = 1; i < 2000; ++i) p += "h\x00"s;
  p += "e](";
  for (int i = 0; i < 1000; ++i) p += "\x88";
  p += "e\x86.";
  const BinSet set = parse_bin_set(p, "shared.bin");
  ASSERT_EQ(set.images.size(), 2000u);
  EXPECT_EQ(set.pairs(), 1000u);
  EXPECT_EQ(set.images[1999], std::string(1000, 'j'));
  // The same file under a 1 MiB budget: refused, naming the budget and where it was passed.
  try {
    parse_bin_set(p, "amplified.bin", uint64_t{1} << 20);
    ADD_FAILURE() << "no error";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("amplified.bin: bins[1048]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("more than 1 MiB, the reader's budget"), std::string::npos) << e.what();
  }
}

TEST(BinSet, RoundTripsWithPython) {
  const std::string& py = qface::testing::python_with_torch();
  if (py.empty()) GTEST_SKIP() << "no /usr/bin/python3 with torch";
  TempDir dir;
  const std::string script = R"(
import pickle, sys
mode, path = sys.argv[1], sys.argv[2]
bins = [bytes([i % 256 for i in range(k * 37, k * 37 + 300 + k)]) for k in range(8)]
issame = [True, False, False, True]
if mode == 'write':
    with open(path, 'wb') as f:
        pickle.dump((bins, issame), f, protocol=2)
else:
    with open(path, 'rb') as f:
        b, s = pickle.load(f, encoding='bytes')
    assert list(b) == bins, 'images differ'
    assert list(s) == issame, 'issame differs'
    print('ok')
)";
  qface::write_file_atomic(dir / "t.py", script);
  auto w = qface::testing::run_program(py, {(dir / "t.py").string(), "write", (dir / "py.bin").string()});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  BinSet s = read_bin_set(dir / "py.bin");
  ASSERT_EQ(s.images.size(), 8u);
  for (int k = 0; k < 8; ++k) {
    ASSERT_EQ(s.images[k].size(), static_cast<std::size_t>(300 + k));
    for (std::size_t i = 0; i < s.images[k].size(); ++i)
      ASSERT_EQ(static_cast<unsigned char>(s.images[k][i]), (k * 37 + i) % 256);
  }
  EXPECT_EQ(s.issame, (std::vector<uint8_t>{1, 0, 0, 1}));
  write_bin_set(dir / "qface.bin", s);
  auto r = qface::testing::run_program(py, {(dir / "t.py").string(), "read", (dir / "qface.bin").string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}
