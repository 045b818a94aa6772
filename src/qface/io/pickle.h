// Python pickle streams without Python: a tolerant unpickler (protocols 0-5)
// that turns any stream into a tree of plain values, and a protocol-2 pickler
// for the plain values qface writes (.bin verification sets).
//
// Unknown classes never fail: a GLOBAL becomes a kGlobal value, and calling it
// (REDUCE, NEWOBJ, ...) builds a kObject holding the class, the call arguments
// and any BUILD state. Hooks let a caller materialize what it understands
// (torch tensors from persistent ids and _rebuild_tensor_v2, for instance).
// Python's own pickle module is not available to C++; LibTorch's
// torch::jit::Unpickler rejects unknown classes, hence this module.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qface::io {

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

// unpickle() rejects values nested deeper than this (Python's own recursion
// limit, so every pickle Python can write passes), and reference cycles.
inline constexpr std::size_t kMaxPickleDepth = 1000;

struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kStr, kBytes, kList, kTuple, kDict, kSet, kGlobal, kObject, kOpaque };
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                               // kStr (UTF-8), kBytes
  std::vector<PyRef> items;                    // kList, kTuple, kSet; kObject: call arguments
  std::vector<std::pair<PyRef, PyRef>> dict;   // kDict
  std::string module, name;                    // kGlobal; kObject: its class
  PyRef state;                                 // kObject: BUILD state (often a kDict), or null
  std::shared_ptr<void> opaque;                // kOpaque: what a hook made (e.g. a torch::Tensor)

  PyValue() = default;
  PyValue(const PyValue&) = default;
  PyValue(PyValue&&) = default;
  PyValue& operator=(const PyValue&) = default;
  PyValue& operator=(PyValue&&) = default;
  // Iterative: releasing a chain of a million nested values does not recurse.
  ~PyValue();

  // Construction helpers.
  static PyRef none();
  static PyRef boolean(bool v);
  static PyRef integer(int64_t v);
  static PyRef real(double v);
  static PyRef str(std::string v);
  static PyRef bytes(std::string v);
  static PyRef list(std::vector<PyRef> v = {});
  static PyRef tuple(std::vector<PyRef> v = {});
  static PyRef dictionary(std::vector<std::pair<PyRef, PyRef>> v = {});

  bool is(Kind k) const { return kind == k; }
  // Dict lookup by string key (kStr or kBytes); nullptr when absent or not a dict.
  PyRef get(std::string_view key) const;
  // "module.name" of a kGlobal or kObject.
  std::string qualified_name() const;
  // A short human-readable description, e.g. "dict(3)", "object argparse.Namespace".
  std::string describe() const;
};

struct UnpickleHooks {
  // PERSISTENT_ID / BINPERSID: turns a persistent id into a value. Without a
  // hook the id itself (wrapped in a kObject named "<persistent_id>") is used.
  std::function<PyRef(const PyRef& pid)> persistent_load;
  // Calls of a global callable (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ). Return
  // nullptr to get the default kObject.
  std::function<PyRef(const std::string& module, const std::string& name, const PyRef& args)> call;
};

// Unpickles one stream. `name` (usually the file) is used in errors, which
// also give the byte offset. Throws qface::Error on malformed or truncated
// input; never crashes. The result is a tree or DAG (values reached through
// the memo are shared) at most kMaxPickleDepth deep: a value that contains
// itself (a self-referencing dict, for instance) or deeper nesting is an
// error naming the byte offset of the opcode that made the value. A stream
// that copies more than a few times its own size (OrderedDict / set / BUILD
// of memoized containers, over and over) is rejected as a decompression bomb. Python 3's protocol-2 encoding of bytes
// (_codecs.encode(str, 'latin1')) comes back as kBytes, and Python 2 str
// (BINSTRING) as kBytes, as Python's encoding='bytes' gives them.
PyRef unpickle(std::string_view data, const std::string& name, const UnpickleHooks& hooks = {});
// The same, also giving the bytes consumed up to and including STOP (streams
// that hold several pickles back to back, such as legacy torch.save files).
PyRef unpickle(std::string_view data, const std::string& name, const UnpickleHooks& hooks, std::size_t* consumed);

// Pickles plain values (None, bool, int, float, str, bytes, list, tuple,
// dict) with protocol 2 as Python 2 wrote them: bytes as BINSTRING, so that
// Python 3 reads them with pickle.load(f, encoding='bytes'). Throws on other kinds.
std::string pickle_protocol2(const PyRef& value);

}  // namespace qface::io
