// Torch checkpoint import without Python: files written by Python torch
// (Lightning .ckpt with a Namespace, MagFace legacy .pth, DataParallel state
// dict) load and give Python's embeddings; broken files give clear errors.
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/io/checkpoint.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
namespace qb = qface::backbones;
namespace qi = qface::io;
namespace qt = qface::testing;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const qface::Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::function<void()>& f, const std::string& needle) {
  const std::string msg = error_of(f);
  EXPECT_FALSE(msg.empty()) << "no qface::Error (expected one mentioning '" << needle << "')";
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

}  // namespace

// Files made once per suite by /usr/bin/python3 (bench/python/make_checkpoints.py).
class PythonCheckpoints : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (qt::python_with_torch().empty()) return;
    dir_ = std::make_unique<qt::TempDir>();
    auto r = qt::run_program(qt::python_with_torch(),
                             {qt::source_dir() + "/bench/python/make_checkpoints.py", dir_->path().string()});
    if (r.exit_code != 0) {
      error_ = r.err;
      dir_.reset();
    }
  }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (qt::python_with_torch().empty()) GTEST_SKIP() << "no /usr/bin/python3 with torch";
    ASSERT_TRUE(dir_) << error_;
  }
  static fs::path file(const std::string& name) { return dir_->path() / name; }

  static void expect_python_embeddings(const std::string& arch, const std::string& name) {
    auto model = qb::make_backbone(arch);
    qi::load_weights(*model, file(name + (name == "adaface_ir18" ? ".ckpt" : ".pth")));
    model->eval();
    torch::NoGradGuard g;
    auto [e, n] = model->forward(qface::read_npy(file("input.npy")));
    torch::Tensor pe = qface::read_npy(file(name + ".emb.npy")), pn = qface::read_npy(file(name + ".norm.npy"));
    EXPECT_LT((e - pe).abs().max().item<double>(), 1e-5) << name;
    EXPECT_LT(((n - pn).abs() / pn).max().item<double>(), 1e-5) << name;
  }

  static inline std::unique_ptr<qt::TempDir> dir_;
  static inline std::string error_;
};

TEST_F(PythonCheckpoints, LightningCkptWithNamespaceGivesPythonEmbeddings) {
  qi::Checkpoint c = qi::read_checkpoint(file("adaface_ir18.ckpt"));
  EXPECT_EQ(c.arch, "ir_18");  // from hyper_parameters, an argparse.Namespace
  auto model = qb::make_backbone("ir_18");
  qi::LoadReport r = qi::load_state_dict(*model, c.tensors, "adaface_ir18.ckpt", c.arch);
  EXPECT_EQ(r.prefix, "model.");
  EXPECT_EQ(r.loaded, qb::state_dict(*model).size());
  EXPECT_EQ(r.ignored.size(), 3u);  // head.kernel, head.batch_mean, head.batch_std
  expect_python_embeddings("ir_18", "adaface_ir18");
}

TEST_F(PythonCheckpoints, MagFaceLegacyPthGivesPythonEmbeddings) {
  qi::Checkpoint c = qi::read_checkpoint(file("magface_ir18.pth"));
  EXPECT_EQ(c.arch, "iresnet18");
  expect_python_embeddings("iresnet18", "magface_ir18");
}

TEST_F(PythonCheckpoints, DataParallelStateDictGivesPythonEmbeddings) {
  expect_python_embeddings("mobilefacenet", "mfn_module");
}

TEST_F(PythonCheckpoints, WrongArchitectureListsMissingUnexpectedAndShapes) {
  auto model = qb::make_backbone("ir_34");
  const std::string msg = error_of([&] { qi::load_weights(*model, file("adaface_ir18.ckpt")); });
  EXPECT_NE(msg.find("adaface_ir18.ckpt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'ir_18'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing: body."), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  // iresnet weights into an IR model: nothing fits.
  auto ir = qb::make_backbone("ir_18");
  expect_error([&] { qi::load_weights(*ir, file("magface_ir18.pth")); }, "unexpected");
  // Embedding size differs: shape mismatch named with both shapes.
  auto small = qb::make_backbone("mobilefacenet", 128);
  expect_error([&] { qi::load_weights(*small, file("mfn_module.pth")); }, "linear.weight [512x512] vs model [128x512]");
}

TEST_F(PythonCheckpoints, TruncatedAndCorruptFilesGiveErrorsNotCrashes) {
  qt::TempDir tmp;
  for (const char* name : {"adaface_ir18.ckpt", "magface_ir18.pth", "mfn_module.pth"}) {
    const std::string bytes = qface::read_file(file(name));
    auto model = qb::make_backbone(std::string(name) == "mfn_module.pth" ? "mobilefacenet"
                                   : std::string(name) == "magface_ir18.pth" ? "iresnet18" : "ir_18");
    for (double frac : {0.0, 0.5, 0.999}) {
      const fs::path p = tmp / (std::string("cut_") + name);
      qface::write_file_atomic(p, bytes.substr(0, static_cast<std::size_t>(bytes.size() * frac)));
      expect_error([&] { qi::load_weights(*model, p); }, p.string());
    }
    // Bytes flipped in the middle (tensor data or structure): an error, never a crash.
    std::string bad = bytes;
    for (std::size_t i = bad.size() / 2; i < bad.size() / 2 + 64; ++i) bad[i] = static_cast<char>(~bad[i]);
    const fs::path p = tmp / (std::string("flip_") + name);
    qface::write_file_atomic(p, bad);
    // Neither torch.load nor LibTorch's zip reader verify CRCs: flipped tensor bytes may load as
    // other numbers; what must hold is an error naming the file or a clean load, never a crash.
    const std::string msg = error_of([&] { qi::load_weights(*model, p); });
    if (!msg.empty()) {
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    }
    // The first kilobyte (zip header / pickle structure) corrupted.
    std::string head = bytes;
    for (std::size_t i = 40; i < 1024; ++i) head[i] = static_cast<char>(head[i] ^ 0x5a);
    qface::write_file_atomic(p, head);
    expect_error([&] { qi::load_weights(*model, p); }, p.string());
  }
}

namespace {
// A MobileFaceNet with seeded random weights, saved as a qface file at `p`.
qb::Backbone saved_mobilefacenet(const fs::path& p, uint64_t seed) {
  torch::manual_seed(seed);
  auto a = qb::make_backbone("mobilefacenet");
  qi::save_checkpoint(p, *a, "mobilefacenet");
  return a;
}
}  // namespace

TEST(Checkpoint, QfaceOwnFormatRoundTrips) {
  qt::TempDir tmp;
  const fs::path p = tmp / "mfn.qface.pt";
  auto a = saved_mobilefacenet(p, 5);
  qi::Checkpoint c = qi::read_checkpoint(p);
  EXPECT_EQ(c.format, "qface");
  EXPECT_EQ(c.arch, "mobilefacenet");
  auto b = qb::make_backbone("mobilefacenet");
  qi::LoadReport r = qi::load_weights(*b, p);
  EXPECT_EQ(r.prefix, "");
  auto sa = qb::state_dict(*a), sb = qb::state_dict(*b);
  ASSERT_EQ(sa.size(), sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second)) << sa[i].first;
  // Truncated qface file.
  const std::string bytes = qface::read_file(p);
  qface::write_file_atomic(p, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { qi::load_weights(*b, p); }, p.string());
}

// load_state_dict with the tensors handed over gives the module the file's
// own buffers (nothing copied) where dtype and exclusivity allow, copies where
// not, and leaves the same values either way; the const& form always copies.
TEST(Checkpoint, HandedOverTensorsBecomeTheModulesStorage) {
  qt::TempDir tmp;
  const fs::path p = tmp / "mfn.qface.pt";
  auto a = saved_mobilefacenet(p, 6);

  qi::Checkpoint copied = qi::read_checkpoint(p);
  auto b = qb::make_backbone_for_weights("mobilefacenet");
  qi::load_state_dict(*b, copied.tensors, p.string());
  for (const auto& [name, t] : qb::state_dict(*b))
    for (const auto& [k, v] : copied.tensors)
      if (k == name) EXPECT_NE(t.data_ptr(), v.data_ptr()) << name;

  qi::Checkpoint c = qi::read_checkpoint(p);
  std::map<std::string, const void*> file_buffer;
  for (const auto& [k, v] : c.tensors) file_buffer[k] = v.data_ptr();
  // One tensor in double: it cannot be taken over, so it is converted.
  for (auto& [k, v] : c.tensors)
    if (k == "conv1.bn.running_var") v = v.to(torch::kFloat64), file_buffer[k] = v.data_ptr();
  auto d = qb::make_backbone_for_weights("mobilefacenet");
  qi::load_state_dict(*d, std::move(c.tensors), p.string());
  const auto sa = qb::state_dict(*a), sb = qb::state_dict(*b), sd = qb::state_dict(*d);
  ASSERT_EQ(sa.size(), sd.size());
  std::size_t shared = 0;
  for (std::size_t i = 0; i < sa.size(); ++i) {
    EXPECT_TRUE(torch::equal(sa[i].second, sd[i].second)) << sa[i].first;
    EXPECT_TRUE(torch::equal(sb[i].second, sd[i].second)) << sa[i].first;
    const bool same = sd[i].second.data_ptr() == file_buffer.at(sd[i].first);
    EXPECT_EQ(same, sd[i].first != "conv1.bn.running_var") << sd[i].first;
    shared += same;
  }
  EXPECT_EQ(shared, sa.size() - 1);
}

TEST(Checkpoint, NonTorchFilesAreRejectedClearly) {
  qt::TempDir tmp;
  auto m = qb::make_backbone("mobilefacenet");
  qface::write_file_atomic(tmp / "empty.pth", "");
  expect_error([&] { qi::load_weights(*m, tmp / "empty.pth"); }, "too short");
  qface::write_file_atomic(tmp / "text.pth", "hello world, not a checkpoint");
  expect_error([&] { qi::load_weights(*m, tmp / "text.pth"); }, "not a torch checkpoint");
  expect_error([&] { qi::load_weights(*m, tmp / "absent.pth"); }, "cannot open");
}

// ---------------------------------------------------------------------------
// Hand-made legacy torch.save streams (no Python needed) for what crashed the
// reader (issue #16) and what fuzz/fuzz_checkpoint.cpp found.
namespace {
using namespace std::string_literals;

std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string i64(int64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
std::string ustr(const std::string& s) { return "X" + u32(static_cast<uint32_t>(s.size())) + s; }
// LONG1 of an int64 (pickle's 8-byte little-endian two's complement).
std::string long1(int64_t v) { return "\x8a\x08"s + i64(v); }
std::string ints(const std::vector<int64_t>& v) {
  std::string out = "(";
  for (int64_t x : v) out += long1(x);
  return out + "t";
}

// _rebuild_tensor_v2(storage key `key` of `numel` floats, offset, size, stride).
std::string tensor_op(const std::string& key, int64_t numel, int64_t offset, const std::vector<int64_t>& size,
                      const std::vector<int64_t>& stride) {
  return "ctorch._utils\n_rebuild_tensor_v2\n(" + ("(" + ustr("storage") + "ctorch\nFloatStorage\n" + ustr(key) +
                                                   ustr("cpu") + long1(numel) + "tQ") +
         long1(offset) + ints(size) + ints(stride) + "\x89" + "ccollections\nOrderedDict\n)RtR";
}

// magic, protocol 1001, sys info, `object` (a pickle body without PROTO/STOP),
// the storage keys, then per key its element count and float data.
std::string legacy(const std::string& object, const std::vector<std::pair<std::string, std::vector<float>>>& storages) {
  std::string out = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e"s;  // magic number
  out += "\x80\x02M\xe9\x03."s;                                                    // 1001
  out += "\x80\x02}."s;                                                            // sys info
  out += "\x80\x02" + object + ".";
  out += "\x80\x02(";
  for (const auto& [k, v] : storages) out += ustr(k);
  out += "l.";
  for (const auto& [k, v] : storages) {
    out += i64(static_cast<int64_t>(v.size()));
    out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
  return out;
}

std::string read_error(const fs::path& p, const std::string& bytes) {
  qface::write_file_atomic(p, bytes);
  return error_of([&] { qi::read_checkpoint(p); });
}
}  // namespace

TEST(CheckpointRobustness, HandMadeLegacyFileLoads) {
  qt::TempDir tmp;
  const std::string obj = "}(" + ustr("w") + tensor_op("0", 4, 0, {2, 2}, {2, 1}) + "u";
  qface::write_file_atomic(tmp / "ok.pth", legacy(obj, {{"0", {1, 2, 3, 4}}}));
  qi::Checkpoint c = qi::read_checkpoint(tmp / "ok.pth");
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_EQ(c.tensors[0].first, "w");
  EXPECT_TRUE(torch::equal(c.tensors[0].second, torch::tensor({1.f, 2.f, 3.f, 4.f}).reshape({2, 2})));
}

TEST(CheckpointRobustness, StorageSizesAreCheckedBeforeAllocating) {
  qt::TempDir tmp;
  const fs::path p = tmp / "huge.pth";
  // 2^61 floats in a 300-byte file: torch::zeros used to run first (bad_alloc
  // or a c10::Error past qface::Error); 2^62 floats: numel * 4 overflows int64.
  for (int64_t numel : {int64_t{1} << 40, int64_t{1} << 61, int64_t{1} << 62}) {
    const std::string obj = "}(" + ustr("w") + tensor_op("0", numel, 0, {4}, {1}) + "u";
    const std::string msg = read_error(p, legacy(obj, {{"0", {1, 2, 3, 4}}}));
    EXPECT_NE(msg.find("huge.pth: storage '0'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bytes left in the file"), std::string::npos) << msg;
  }
  // Two storages that each fit, but not together.
  const std::string two =
      "}(" + ustr("a") + tensor_op("0", 1000, 0, {4}, {1}) + ustr("b") + tensor_op("1", 1000, 0, {4}, {1}) + "u";
  EXPECT_NE(read_error(p, legacy(two, {{"0", std::vector<float>(1000)}})).find("storage '1'"), std::string::npos);
  // The element count in the data section disagrees, or the data is missing.
  const std::string obj = "}(" + ustr("w") + tensor_op("0", 4, 0, {4}, {1}) + "u";
  std::string bad_count = legacy(obj, {{"0", {1, 2, 3, 4}}});
  bad_count.replace(bad_count.size() - 24, 8, i64(-5));
  EXPECT_NE(read_error(p, bad_count).find("has -5 elements"), std::string::npos);
  std::string no_data = legacy(obj, {{"0", {1, 2, 3, 4}}});
  EXPECT_NE(read_error(p, no_data.substr(0, no_data.size() - 24)).find("truncated"), std::string::npos);
  EXPECT_NE(read_error(p, legacy(obj, {})).find("has no data in the file"), std::string::npos);
}

// A zip record longer than the element count in the pickle loads its first
// elements (as PyTorch's loader does); a shorter one is an error.
TEST(CheckpointRobustness, ZipRecordLengthAgainstThePickle) {
  qt::TempDir tmp;
  const std::string pkl = "\x80\x02}(" + ustr("w") + tensor_op("0", 4, 0, {2, 2}, {2, 1}) + "u.";
  auto zip = [&](const fs::path& p, const std::vector<float>& data) {
    caffe2::serialize::PyTorchStreamWriter writer(p.string());
    writer.writeRecord("data.pkl", pkl.data(), pkl.size());
    writer.writeRecord("data/0", data.data(), data.size() * sizeof(float));
    writer.writeEndOfFile();
  };
  zip(tmp / "long.pt", {1, 2, 3, 4, 5});
  qi::Checkpoint c = qi::read_checkpoint(tmp / "long.pt");
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_TRUE(torch::equal(c.tensors[0].second, torch::tensor({1.f, 2.f, 3.f, 4.f}).reshape({2, 2})));
  EXPECT_EQ(c.tensors[0].second.storage().nbytes(), 16u);
  zip(tmp / "short.pt", {1, 2, 3});
  const std::string msg = error_of([&] { qi::read_checkpoint(tmp / "short.pt"); });
  EXPECT_NE(msg.find("short.pt: data/0: holds 12 bytes"), std::string::npos) << msg;
}

TEST(CheckpointRobustness, SizeAndStrideOverflowsAreErrors) {
  qt::TempDir tmp;
  const fs::path p = tmp / "stride.pth";
  struct Case {
    std::vector<int64_t> size, stride;
    int64_t offset;
    std::string mention;
  };
  const int64_t big = int64_t{1} << 62;
  const std::vector<Case> cases = {
      {{big, 4}, {1, 1}, 0, "overflows 64-bit"},          // element count overflows
      {{2, 2}, {big, 1}, 0, "overruns its storage"},      // (2 - 1) * 2^62 + 1 fits, but is past 4 elements
      {{3, 1}, {big, 1}, 0, "overflows 64-bit"},          // (3 - 1) * 2^62 overflows
      {{2}, {1}, INT64_MAX, "overflows 64-bit"},          // offset + extent overflows
      {{2}, {1}, 3, "overruns its storage"},               // last element past the storage
      {{0, big, big}, {1, 1, 1}, 0, "overflows 64-bit"},  // empty, but the others multiply past int64
  };
  for (const auto& c : cases) {
    const std::string obj = "}(" + ustr("w") + tensor_op("0", 4, c.offset, c.size, c.stride) + "u";
    const std::string msg = read_error(p, legacy(obj, {{"0", {1, 2, 3, 4}}}));
    EXPECT_NE(msg.find("stride.pth"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.mention), std::string::npos) << msg;
  }
  // A tensor rebuilt from a view (zero strides make it look 1000 elements long) is not a storage.
  const std::string view = "ctorch._utils\n_rebuild_tensor_v2\n(" + tensor_op("0", 4, 0, {1000}, {0}) + long1(0) +
                           ints({500}) + ints({1}) + "\x89" + "ccollections\nOrderedDict\n)RtR";
  const std::string msg = read_error(p, legacy("}(" + ustr("w") + view + "u", {{"0", {1, 2, 3, 4}}}));
  EXPECT_NE(msg.find("not a storage"), std::string::npos) << msg;
}

TEST(CheckpointRobustness, SelfReferencesAndSharedDictsAreErrors) {
  qt::TempDir tmp;
  // The ~40-byte file that crashed `qface embed --weights`: {'a': <itself>}.
  const fs::path p = tmp / "cycle.pth";
  std::string cycle = legacy("}q\x00"s + ustr("a") + "h\x00s"s, {});
  EXPECT_LT(cycle.size(), 60u);
  std::string msg = read_error(p, cycle);
  EXPECT_NE(msg.find("cycle.pth (object): bad pickle at byte"), std::string::npos) << msg;
  EXPECT_NE(msg.find("contains itself"), std::string::npos) << msg;
  // Through the CLI: one line, exit status 1.
  auto r = qt::run_qface({"embed", "--weights", p.string(), "--arch", "mobilefacenet", "--images", tmp.path().string(),
                          "--out", (tmp / "out").string()});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("contains itself"), std::string::npos) << r.err;
  // Dicts shared through the memo: 40 levels of {'a': d, 'b': d} would flatten to 2^40 entries.
  std::string shared = "}r" + u32(0) + "(" + ustr("w") + tensor_op("0", 4, 0, {4}, {1}) + "u";  // level 0 = {'w': t}
  for (uint32_t k = 1; k <= 40; ++k)
    shared += "}r" + u32(k) + "(" + ustr("a") + "j" + u32(k - 1) + ustr("b") + "j" + u32(k - 1) + "u";
  msg = read_error(tmp / "shared.pth", legacy(shared, {{"0", {1, 2, 3, 4}}}));
  EXPECT_NE(msg.find("the same dict twice"), std::string::npos) << msg;
}
