// .bin verification set bytes (a pickle of (bins, issame_list)) -> parse_bin_set.
#include "fuzz/fuzz_util.h"
#include "qface/core/error.h"
#include "qface/data/bin_set.h"

namespace qface::fuzz {
int one_bin_set(const uint8_t* data, std::size_t size) {
  try {
    // A smaller budget than the reader's 4 GiB: memo references may ask for it, and a fuzzer's memory is capped.
    qface::data::BinSet set =
        qface::data::parse_bin_set(qface::fuzz::as_view(data, size), "fuzz.bin", uint64_t{64} << 20);
    // A parsed set writes and reads back the same.
    qface::data::BinSet back = qface::data::parse_bin_set(qface::data::encode_bin_set(set), "fuzz-roundtrip.bin");
    if (back.images != set.images || back.issame != set.issame) __builtin_trap();
  } catch (const qface::Error&) {
  }
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(bin_set)
