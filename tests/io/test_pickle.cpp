// The tolerant unpickler and the protocol-2 pickler.
#include <gtest/gtest.h>

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
