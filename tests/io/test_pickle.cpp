// The tolerant unpickler and the protocol-2 pickler.
#include <gtest/gtest.h>

#include <cmath>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/io/pickle.h"
#include "tests/support/testing.h"

using qface::io::PyRef;
using qface::io::PyValue;
using Kind = PyValue::Kind;
using namespace std::string_literals;

namespace {
PyRef load(const std::string& bytes) { return qface::io::unpickle(bytes, "test.pkl"); }
}  // namespace

TEST(Pickle, ReadsProtocol0TextOpcodes) {
  // Python 2: pickle.dumps((1, 'ab', [2.5, True], {'k': None}), 0)
  const std::string p0 = "(I1\nS'ab'\np0\n(lp1\nF2.5\naI01\na(dp2\nS'k'\np3\nNsp4\ntp5\n.";
  PyRef v = load(p0);
  ASSERT_TRUE(v->is(Kind::kTuple));
  ASSERT_EQ(v->items.size(), 4u);
  EXPECT_EQ(v->items[0]->i, 1);
  EXPECT_TRUE(v->items[1]->is(Kind::kBytes));
  EXPECT_EQ(v->items[1]->s, "ab");
  EXPECT_DOUBLE_EQ(v->items[2]->items[0]->f, 2.5);
  EXPECT_TRUE(v->items[2]->items[1]->b);
  EXPECT_TRUE(v->items[3]->get("k")->is(Kind::kNone));
}

TEST(Pickle, RoundTripsPlainValuesThroughProtocol2) {
  std::string big(70000, '\x7f');
  big[5] = '\0';
  PyRef value = PyValue::tuple(
      {PyValue::list({PyValue::bytes("\xff\xd8jpeg"), PyValue::bytes(big)}),
       PyValue::list({PyValue::boolean(true), PyValue::boolean(false)}),
       PyValue::dictionary({{PyValue::str("n"), PyValue::integer(-70000)},
                            {PyValue::str("big"), PyValue::integer(int64_t{1} << 40)},
                            {PyValue::str("x"), PyValue::real(-0.125)},
                            {PyValue::str("u"), PyValue::integer(300)},
                            {PyValue::str("t"), PyValue::tuple({PyValue::none(), PyValue::str("é")})}})});
  PyRef back = load(qface::io::pickle_protocol2(value));
  ASSERT_TRUE(back->is(Kind::kTuple));
  EXPECT_EQ(back->items[0]->items[0]->s, "\xff\xd8jpeg");
  EXPECT_EQ(back->items[0]->items[1]->s, big);
  EXPECT_TRUE(back->items[1]->items[0]->b);
  EXPECT_FALSE(back->items[1]->items[1]->b);
  EXPECT_EQ(back->items[2]->get("n")->i, -70000);
  EXPECT_EQ(back->items[2]->get("big")->i, int64_t{1} << 40);
  EXPECT_DOUBLE_EQ(back->items[2]->get("x")->f, -0.125);
  EXPECT_EQ(back->items[2]->get("u")->i, 300);
  EXPECT_EQ(back->items[2]->get("t")->items[1]->s, "é");
}

TEST(Pickle, UnknownClassesBecomeObjectsAndHooksSeeCalls) {
  // protocol 2: argparse.Namespace via NEWOBJ + BUILD, an OrderedDict via REDUCE + SETITEMS.
  using namespace std::string_literals;
  std::string p = "\x80\x02"s;
  p += "}q\x00(X\x02\x00\x00\x00hpc\x61rgparse\nNamespace\nq\x01)\x81q\x02}q\x03X\x02\x00\x00\x00lrq\x04G?\xb9\x99\x99\x99\x99\x99\x9a"
       "sbX\x02\x00\x00\x00sdccollections\nOrderedDict\nq\x05)Rq\x06X\x01\x00\x00\x00wK\x07su."s;
  PyRef v = load(p);
  PyRef ns = v->get("hp");
  ASSERT_TRUE(ns && ns->is(Kind::kObject)) << v->describe();
  EXPECT_EQ(ns->qualified_name(), "argparse.Namespace");
  ASSERT_TRUE(ns->state);
  EXPECT_DOUBLE_EQ(ns->state->get("lr")->f, 0.1);
  PyRef sd = v->get("sd");
  ASSERT_TRUE(sd->is(Kind::kDict));
  EXPECT_EQ(sd->get("w")->i, 7);

  int calls = 0;
  qface::io::UnpickleHooks hooks;
  hooks.call = [&](const std::string& module, const std::string& name, const PyRef&) -> PyRef {
    if (module == "argparse") {
      ++calls;
      return PyValue::str("namespace!");
    }
    return nullptr;
  };
  PyRef h = qface::io::unpickle(p, "hooked.pkl", hooks);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(h->get("hp")->s, "namespace!");
}

TEST(Pickle, MalformedStreamsAreErrorsWithOffsets) {
  const std::string good = qface::io::pickle_protocol2(
      PyValue::tuple({PyValue::list({PyValue::bytes(std::string(300, 'x'))}), PyValue::list()}));
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{100}, good.size() - 1}) {
    try {
      load(good.substr(0, cut));
      ADD_FAILURE() << "cut at " << cut << " should fail";
    } catch (const qface::Error& e) {
      EXPECT_NE(std::string(e.what()).find("test.pkl: bad pickle at byte"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(load("\x80\x02\xff."), qface::Error);        // unknown opcode
  EXPECT_THROW(load("\x80\x02h\x05."), qface::Error);       // memo key never stored
  EXPECT_THROW(load("\x80\x02s."), qface::Error);           // stack underflow
  EXPECT_THROW(load("\x80\x02T\xff\xff\xff\x7f."), qface::Error);  // length past the end
  EXPECT_THROW(load("\x80\x02\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01."), qface::Error);  // > 64-bit
}

TEST(PickleRobustness, MemoKeysPastTheStreamAreErrors) {
  // Picklers number memo entries 0, 1, ... (one per PUT): a 10-byte stream
  // can number at most 10. LibTorch's unpickler sizes a table by the key, so
  // qface files pass this check before LibTorch reads them.
  const std::string huge("\x80\x02Nr\x00\x00\x00\x40.", 9);  // LONG_BINPUT 2^30
  try {
    load(huge);
    ADD_FAILURE() << "memo key 2^30 in 9 bytes should fail";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("memo key 1073741824 is past what a 9-byte pickle can number"),
              std::string::npos)
        << e.what();
  }
  // Keys the stream could have numbered, in any order, stay fine.
  EXPECT_TRUE(load(std::string("\x80\x02Nr\x09\x00\x00\x00h\x09.", 11))->is(PyValue::Kind::kNone));
  EXPECT_TRUE(load("(lp3\n.")->is(PyValue::Kind::kList));  // protocol 0's text PUT
  EXPECT_THROW(load("(lp99\n."), qface::Error);
}

TEST(Pickle, ReadsWhatPythonWrites) {
  const std::string& py = qface::testing::python_with_torch();
  if (py.empty()) GTEST_SKIP() << "/usr/bin/python3 not available";
  qface::testing::TempDir dir;
  const auto path = dir / "py.pkl";
  auto r = qface::testing::run_program(
      py, {"-c",
           "import pickle, sys, argparse, collections\n"
           "ns = argparse.Namespace(arch='ir_50', lr=0.1)\n"
           "od = collections.OrderedDict([('a', 1), ('b', [1.5, None])])\n"
           "obj = {'bins': [b'\\x00\\xffabc', bytes(range(256))], 'flags': [True, False], 'ns': ns, 'od': od,\n"
           "       'big': 2**62, 'neg': -5, 's': frozenset([3])}\n"
           "for proto in (2, 4):\n"
           "    open(sys.argv[1] + str(proto), 'wb').write(pickle.dumps(obj, protocol=proto))\n",
           path.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* proto : {"2", "4"}) {
    PyRef v = qface::io::unpickle(qface::read_file(path.string() + proto), "py.pkl");
    PyRef bins = v->get("bins");
    ASSERT_TRUE(bins) << proto;
    EXPECT_EQ(bins->items[0]->s, std::string("\x00\xff" "abc", 5)) << proto;
    EXPECT_EQ(bins->items[1]->s.size(), 256u) << proto;
    EXPECT_TRUE(bins->items[1]->is(Kind::kBytes)) << proto;
    EXPECT_EQ(static_cast<unsigned char>(bins->items[1]->s[200]), 200) << proto;
    EXPECT_TRUE(v->get("flags")->items[0]->b);
    EXPECT_EQ(v->get("ns")->qualified_name(), "argparse.Namespace");
    EXPECT_EQ(v->get("ns")->state->get("arch")->s, "ir_50");
    EXPECT_EQ(v->get("od")->get("a")->i, 1);
    EXPECT_EQ(v->get("big")->i, int64_t{1} << 62);
    EXPECT_EQ(v->get("neg")->i, -5);
  }

  // And Python reads ours with bytes semantics, as it reads Python 2 era .bin files.
  const auto ours = dir / "ours.pkl";
  qface::write_file_atomic(ours, qface::io::pickle_protocol2(PyValue::tuple(
                                     {PyValue::list({PyValue::bytes("\x01\x02\xff")}),
                                      PyValue::list({PyValue::boolean(true)})})));
  r = qface::testing::run_program(
      py, {"-c",
           "import pickle, sys\n"
           "bins, same = pickle.load(open(sys.argv[1], 'rb'), encoding='bytes')\n"
           "assert bins == [b'\\x01\\x02\\xff'] and same == [True], (bins, same)\n"
           "print('ok')",
           ours.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}

// ---------------------------------------------------------------------------
// Streams that crashed the unpickler or its callers (issue #16), and what the
// fuzzer (fuzz/fuzz_pickle.cpp) found: each is an error naming the byte, not
// a crash, a hang or a leak.
namespace {
std::string error_of(const std::string& bytes) {
  try {
    load(bytes);
  } catch (const qface::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}
}  // namespace

TEST(PickleRobustness, DictHoldingItselfIsACycleError) {
  // d = {}; d['a'] = d (via the memo): used to recurse forever in the checkpoint reader.
  const std::string msg = error_of("\x80\x02}q\x00X\x01\x00\x00\x00" "a" "h\x00s."s);
  EXPECT_NE(msg.find("test.pkl: bad pickle at byte 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("contains itself"), std::string::npos) << msg;
  // A list appended to itself, and a cycle through an object's BUILD state.
  EXPECT_NE(error_of("\x80\x02]q\x00h\x00" "a."s).find("contains itself"), std::string::npos);
  EXPECT_NE(error_of("\x80\x02\x63m\nC\n)\x81q\x00h\x00\x62."s).find("contains itself"), std::string::npos);
  // A cycle the result does not reach is fine (and freed: LeakSanitizer checks that).
  EXPECT_TRUE(load("\x80\x02]q\x00h\x00\x61\x30N."s)->is(Kind::kNone));
  // Sharing without a cycle (a DAG through the memo) is fine.
  PyRef shared = load("\x80\x02]q\x00h\x00h\x00\x86."s);
  ASSERT_TRUE(shared->is(Kind::kTuple));
  EXPECT_EQ(shared->items[0], shared->items[1]);
}

TEST(PickleRobustness, NestingDepthIsLimited) {
  // ~100k TUPLE1 opcodes: a chain whose destructor overflowed the stack.
  const std::string deep = "\x80\x02N"s + std::string(100000, '\x85') + ".";
  const std::string msg = error_of(deep);
  EXPECT_NE(msg.find("test.pkl: bad pickle at byte"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nested deeper than 1000 levels"), std::string::npos) << msg;
  // The limit itself: 1000 levels (None + 999 tuples) load, 1001 do not.
  EXPECT_TRUE(load("\x80\x02N"s + std::string(999, '\x85') + ".")->is(Kind::kTuple));
  EXPECT_NE(error_of("\x80\x02N"s + std::string(1000, '\x85') + ".").find("deeper than"), std::string::npos);
  // Deep through a shared value reached at two depths: the deeper path counts.
  // (T, ((T,),)) with T 999 deep: T fits where it is first reached, not inside the second item.
  std::string via_memo = "\x80\x02N"s + std::string(998, '\x85') + "q\x00h\x00\x85\x85\x86."s;
  EXPECT_NE(error_of(via_memo).find("deeper than"), std::string::npos);
  // A chain built by APPENDs into lists already nested (depth grows after
  // construction): L0 is returned, L(k-1).append(Lk) for k = 1..1500.
  auto u32 = [](uint32_t k) { return std::string(reinterpret_cast<const char*>(&k), 4); };
  std::string appended = "\x80\x02]r" + u32(0);
  for (uint32_t k = 1; k <= 1500; ++k) appended += "]r" + u32(k) + "0j" + u32(k - 1) + "j" + u32(k) + "a0";
  appended += ".";
  EXPECT_NE(error_of(appended).find("deeper than"), std::string::npos);
  appended = "\x80\x02]r" + u32(0);
  for (uint32_t k = 1; k <= 900; ++k) appended += "]r" + u32(k) + "0j" + u32(k - 1) + "j" + u32(k) + "a0";
  EXPECT_TRUE(load(appended + ".")->is(Kind::kList));
}

TEST(PickleRobustness, DeepValuesAreFreedWithoutRecursion) {
  // A million nested lists built through the API: ~PyValue is iterative.
  PyRef v = PyValue::none();
  for (int i = 0; i < 1000000; ++i) v = PyValue::list({v});
  v.reset();
  SUCCEED();
}

TEST(PickleRobustness, NumbersAndEscapesAreQfaceErrors) {
  // std::stoll / stod / stoi used to throw std::invalid_argument / out_of_range past qface::Error.
  EXPECT_NE(error_of("I12x\n."s).find("bad integer '12x'"), std::string::npos);
  EXPECT_NE(error_of("I99999999999999999999999\n."s).find("does not fit in 64 bits"), std::string::npos);
  EXPECT_NE(error_of("I\n."s).find("bad integer"), std::string::npos);
  EXPECT_NE(error_of("F1.5e\n."s).find("bad float '1.5e'"), std::string::npos);
  EXPECT_NE(error_of("Fnope\n."s).find("bad float"), std::string::npos);
  EXPECT_NE(error_of("S'\\xzz'\n."s).find("bad \\x escape"), std::string::npos);
  EXPECT_NE(error_of("p-1x\n."s).find("test.pkl: bad pickle at byte 0"), std::string::npos);
  EXPECT_NE(error_of("g\xff\n."s).find("\\xff"), std::string::npos);  // raw bytes are escaped in messages
  EXPECT_EQ(load("I+7\n."s)->i, 7);
  EXPECT_EQ(load("L-12L\n."s)->i, -12);
  EXPECT_DOUBLE_EQ(load("F1e+100\n."s)->f, 1e100);
  EXPECT_TRUE(std::isinf(load("Finf\n."s)->f));
  EXPECT_EQ(load("S'\\x41\\x62'\n."s)->s, "Ab");
}

TEST(PickleRobustness, CopyingBombsAreRefused) {
  // BUILD of a dict with itself: d.update(d) (used to insert a vector into itself).
  PyRef d = load("\x80\x02}X\x01\x00\x00\x00kK\x01s2b."s);
  ASSERT_TRUE(d->is(Kind::kDict));
  EXPECT_EQ(d->dict.size(), 1u);
  // Two dicts updating each other in turn grow like Fibonacci numbers: 6 bytes a step.
  std::string fib = "\x80\x02}q\x00X\x01\x00\x00\x00kK\x01s}q\x01X\x01\x00\x00\x00kK\x01s0"s;
  for (int i = 0; i < 100; ++i) fib += i % 2 ? "h\x01h\x00\x62\x30"s : "h\x00h\x01\x62\x30"s;
  fib += "N.";
  EXPECT_NE(error_of(fib).find("decompression bomb"), std::string::npos);
}
