// A file -> read_checkpoint: the legacy torch.save stream (pickles + raw
// storages) and the zip container (LibTorch's reader, then data.pkl and the
// storages), tensor rebuilds, state-dict flattening.
#include <c10/util/Exception.h>

#include "fuzz/fuzz_util.h"
#include "qface/core/error.h"
#include "qface/io/checkpoint.h"

namespace qface::fuzz {
int one_checkpoint(const uint8_t* data, std::size_t size) {
  const auto path = qface::fuzz::put_file("fuzz.pth", qface::fuzz::as_view(data, size));
  try {
    qface::io::Checkpoint c = qface::io::read_checkpoint(path);
    for (const auto& [name, t] : c.tensors) (void)t.sum();  // every tensor's memory is readable
  } catch (const qface::Error&) {
  }
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(checkpoint)
