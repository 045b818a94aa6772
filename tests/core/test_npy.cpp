// .npy reading and writing: round trips, hand-made headers, and bad files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "tests/support/testing.h"

using qface::testing::TempDir;

namespace {

std::string header_v1(const std::string& dict) {
  std::string h = dict;
  std::size_t total = 10 + h.size() + 1;
  h.append((total + 63) / 64 * 64 - total, ' ');
  h.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(1);
  out.push_back(0);
  out.push_back(static_cast<char>(h.size() & 0xff));
  out.push_back(static_cast<char>(h.size() >> 8));
  return out + h;
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::string expect_error(const std::string& bytes) {
  try {
    qface::decode_npy(bytes, "bad.npy");
  } catch (const qface::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("bad.npy"), std::string::npos) << msg;
    return msg;
  }
  ADD_FAILURE() << "expected an error";
  return {};
}

}  // namespace

TEST(Npy, RoundTripsEverySupportedDtype) {
  TempDir dir;
  std::vector<torch::Tensor> tensors = {
      torch::randn({3, 4}),
      torch::randn({2, 3, 2}, torch::kFloat64),
      torch::arange(-5, 5, torch::kInt64),
      torch::arange(0, 12, torch::kInt32).reshape({3, 4}),
      torch::randint(0, 255, {5}, torch::kUInt8),
      torch::tensor({true, false, true}),
      torch::zeros({0, 512}),
      torch::tensor(3.5f),
  };
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    auto path = dir / ("t" + std::to_string(i) + ".npy");
    qface::write_npy(path, tensors[i]);
    torch::Tensor back = qface::read_npy(path);
    EXPECT_EQ(back.scalar_type(), tensors[i].scalar_type()) << i;
    EXPECT_EQ(back.sizes(), tensors[i].sizes()) << i;
    EXPECT_TRUE(torch::equal(back, tensors[i])) << i;
    // Data starts on a 64-byte boundary, as numpy writes it.
    auto h = qface::parse_npy_header(qface::read_file(path), path.string());
    EXPECT_EQ(h.data_offset % 64, 0u);
  }
}

TEST(Npy, WritesNonContiguousTensorsInCOrder) {
  torch::Tensor t = torch::arange(6, torch::kFloat32).reshape({2, 3}).t();
  torch::Tensor back = qface::decode_npy(qface::encode_npy(t), "t");
  EXPECT_TRUE(torch::equal(back, t.contiguous()));
}

TEST(Npy, ReadsHandWrittenV1AndV2Headers) {
  std::vector<float> v = {1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f};
  auto a = qface::decode_npy(header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }") + raw(v), "a");
  EXPECT_EQ(a.sizes(), torch::IntArrayRef({2, 3}));
  EXPECT_FLOAT_EQ(a[1][2].item<float>(), 6.0f);

  // Version 2.0: 4-byte header length; keys in another order, double quotes.
  std::string dict = "{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"<i8\"}";
  std::string h = dict + std::string(64 - (12 + dict.size() + 1) % 64, ' ') + "\n";
  std::string bytes = "\x93NUMPY";
  bytes.push_back(2);
  bytes.push_back(0);
  uint32_t len = static_cast<uint32_t>(h.size());
  bytes.append(reinterpret_cast<const char*>(&len), 4);
  bytes += h + raw(std::vector<int64_t>{7, 8, 9});
  auto b = qface::decode_npy(bytes, "b");
  EXPECT_EQ(b.scalar_type(), torch::kInt64);
  EXPECT_EQ(b[2].item<int64_t>(), 9);

  // Fortran order is harmless for 1-D arrays.
  auto c = qface::decode_npy(header_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }") +
                                 raw(std::vector<float>{1, 2}),
                             "c");
  EXPECT_EQ(c.numel(), 2);
}

TEST(Npy, RejectsBadFilesWithClearErrors) {
  const std::string good = header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }");
  const std::string data = raw(std::vector<float>{1, 2, 3, 4});
  EXPECT_NE(expect_error("PK\x03\x04 not numpy").find("bad magic"), std::string::npos);
  EXPECT_NE(expect_error(good + data.substr(0, 10)).find("truncated data"), std::string::npos);
  EXPECT_NE(expect_error(good + data + "xx").find("trailing"), std::string::npos);
  EXPECT_NE(expect_error(good.substr(0, 20)).find("truncated .npy header"), std::string::npos);
  EXPECT_NE(expect_error(header_v1("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }") + data)
                .find("big-endian"),
            std::string::npos);
  EXPECT_NE(expect_error(header_v1("{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }") + data)
                .find("unsupported dtype"),
            std::string::npos);
  EXPECT_NE(expect_error(header_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }") + data)
                .find("Fortran"),
            std::string::npos);
  EXPECT_NE(expect_error(header_v1("{'descr': '<f4', 'fortran_order': False}") + data).find("'shape'"),
            std::string::npos);
  EXPECT_NE(expect_error(header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }") + data)
                .find("header byte"),
            std::string::npos);
  std::string bad_version = good;
  bad_version[6] = 9;
  EXPECT_NE(expect_error(bad_version + data).find("version"), std::string::npos);
  EXPECT_NE(expect_error(header_v1("{'descr': '<O', 'fortran_order': False, 'shape': (1,), }") + "12345678")
                .find("unsupported dtype"),
            std::string::npos);
}

// Shapes whose element or byte counts overflow 64 bits used to wrap to a
// small size and reach torch::empty with the huge shape (issue #16).
TEST(Npy, HugeShapesAreCheckedBeforeAllocating) {
  const std::string data = raw(std::vector<float>{1, 2, 3, 4});
  auto with_shape = [&](const std::string& descr, const std::string& shape) {
    return header_v1("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }") + data;
  };
  // 2^62 x 4 elements: the element count overflows int64.
  EXPECT_NE(expect_error(with_shape("<f4", "(4611686018427387904, 4)")).find("overflows"), std::string::npos);
  // 2^61 float64: the count fits, count * 8 bytes wraps to 0 (was: "fits" in 0 bytes).
  EXPECT_NE(expect_error(with_shape("<f8", "(2305843009213693952,)")).find("truncated data"), std::string::npos);
  // 2^62 uint8 elements with 16 bytes present.
  EXPECT_NE(expect_error(with_shape("|u1", "(4611686018427387904,)")).find("truncated data"), std::string::npos);
  // An empty array whose other dimensions multiply past int64.
  EXPECT_NE(expect_error(header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 8), }"))
                .find("overflows"),
            std::string::npos);
  // An empty array with modest dimensions is fine.
  EXPECT_EQ(qface::decode_npy(header_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904), }"),
                              "empty.npy")
                .numel(),
            0);
  // More dimensions than any array has.
  std::string many = "(";
  for (int i = 0; i < 65; ++i) many += "1, ";
  EXPECT_NE(expect_error(with_shape("<f4", many + ")")).find("dimensions"), std::string::npos);
}

TEST(Npy, MissingFileAndWrongTypeNameThePath) {
  TempDir dir;
  try {
    qface::read_npy(dir / "missing.npy");
    FAIL();
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.npy"), std::string::npos);
  }
  qface::write_npy(dir / "i.npy", torch::arange(4, torch::kInt64));
  EXPECT_THROW(qface::read_npy_as(dir / "i.npy", torch::kFloat32, 1), qface::Error);
  EXPECT_THROW(qface::read_npy_as(dir / "i.npy", torch::kInt64, 2), qface::Error);
}

TEST(Npy, AtomicWriteLeavesNoTemporaryFiles) {
  TempDir dir;
  qface::write_npy(dir / "a.npy", torch::ones({3}));
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
  {
    qface::AtomicFile f(dir / "b.bin");
    f.write("partial");
  }  // not committed: nothing appears
  EXPECT_FALSE(std::filesystem::exists(dir / "b.bin"));
  files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
}

TEST(Npy, InteroperatesWithNumpy) {
  const std::string& py = qface::testing::python_with_torch();
  if (py.empty()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  TempDir dir;
  auto from_np = dir / "from_numpy.npy";
  auto r = qface::testing::run_program(
      py, {"-c",
           "import numpy as np, sys; np.save(sys.argv[1], np.arange(12, dtype=np.float64).reshape(3, 4) / 4); "
           "np.save(sys.argv[2], np.array([3, -1, 7], dtype=np.int32))",
           from_np.string(), (dir / "i32.npy").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto t = qface::read_npy(from_np);
  EXPECT_EQ(t.scalar_type(), torch::kFloat64);
  EXPECT_DOUBLE_EQ(t[2][3].item<double>(), 11.0 / 4);
  EXPECT_EQ(qface::read_npy(dir / "i32.npy")[2].item<int32_t>(), 7);

  auto ours = dir / "ours.npy";
  qface::write_npy(ours, torch::arange(6, torch::kFloat32).reshape({2, 3}) * 0.5);
  r = qface::testing::run_program(py, {"-c",
                                       "import numpy as np, sys; a = np.load(sys.argv[1]); "
                                       "assert a.dtype == np.float32 and a.shape == (2, 3), (a.dtype, a.shape); "
                                       "assert a[1, 2] == 2.5; print('ok')",
                                       ours.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}
