// .npy bytes -> decode_npy (header parser, shape/size checks, copy).
#include <torch/types.h>

#include "fuzz/fuzz_util.h"
#include "qface/core/error.h"
#include "qface/core/npy.h"

namespace qface::fuzz {
int one_npy(const uint8_t* data, std::size_t size) {
  try {
    torch::Tensor t = qface::decode_npy(qface::fuzz::as_view(data, size), "fuzz.npy");
    // What decodes must encode and decode to the same array.
    torch::Tensor back = qface::decode_npy(qface::encode_npy(t), "fuzz-roundtrip.npy");
    if (!back.equal(t) && t.scalar_type() != torch::kFloat32 && t.scalar_type() != torch::kFloat64) __builtin_trap();
  } catch (const qface::Error&) {
  }
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(npy)
