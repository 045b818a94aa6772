// A TensorFlow.js weights manifest and its shard -> read_tfjs_weights: the
// JSON groups, shapes, dtypes and quantization against the shard's bytes.
// The input is the manifest, a line "--shard--", then the shard (w.bin).
#include <c10/util/Exception.h>

#include "fuzz/fuzz_util.h"
#include "qface/core/error.h"
#include "qface/io/tfjs_weights.h"

namespace qface::fuzz {
int one_tfjs_weights(const uint8_t* data, std::size_t size) {
  const auto parts = split(as_view(data, size), "\n--shard--\n", 2);
  const auto manifest = put_file("m.json", parts[0]);
  put_file("w.bin", parts.size() > 1 ? parts[1] : std::string_view{});
  try {
    for (const auto& [name, t] : qface::io::read_tfjs_weights(manifest)) (void)t.sum();  // every tensor readable
  } catch (const qface::Error&) {
  }
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(tfjs_weights)
