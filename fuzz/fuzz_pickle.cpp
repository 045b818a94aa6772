// Pickle bytes -> unpickle (every opcode, memo, hooks-free), then a walk of
// the result and a protocol-2 round trip of what is plain.
#include "fuzz/fuzz_util.h"
#include "qface/core/error.h"
#include "qface/io/pickle.h"

using qface::io::PyRef;
using qface::io::PyValue;

namespace {
// Touches every value (describe, get) without recursion. The result is a DAG
// (memo sharing): walking it as a tree visits shared values once per path, so
// the walk is capped; false when the tree is larger than the cap.
bool walk(const PyRef& root) {
  std::vector<const PyValue*> stack{root.get()};
  std::size_t budget = 100000;
  while (!stack.empty() && budget-- > 0) {
    const PyValue* v = stack.back();
    stack.pop_back();
    (void)v->describe();
    (void)v->get("state_dict");
    for (const auto& x : v->items) stack.push_back(x.get());
    for (const auto& [k, x] : v->dict) {
      stack.push_back(k.get());
      stack.push_back(x.get());
    }
    if (v->state) stack.push_back(v->state.get());
  }
  return stack.empty();
}
}  // namespace

namespace qface::fuzz {
int one_pickle(const uint8_t* data, std::size_t size) {
  const std::string_view in = qface::fuzz::as_view(data, size);
  try {
    std::size_t used = 0;
    PyRef v = qface::io::unpickle(in, "fuzz.pkl", {}, &used);
    if (used > size) __builtin_trap();
    // pickle_protocol2 writes shared values once per reference (as Python's
    // pickler without a memo would): only small trees make the round trip.
    if (!walk(v)) return 0;
    std::string again;
    try {
      again = qface::io::pickle_protocol2(v);
    } catch (const qface::Error&) {
      return 0;  // holds kinds the pickler does not write (objects, sets)
    }
    PyRef back = qface::io::unpickle(again, "fuzz-roundtrip.pkl");
    if (qface::io::pickle_protocol2(back) != again) __builtin_trap();
  } catch (const qface::Error&) {
  }
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(pickle)
