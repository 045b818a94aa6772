// RecordIO: input = flags byte, the .idx text, "\n@@rec@@\n", the .rec bytes.
// Opens the pair as RecordFile and FaceRecordSet (with and without the
// index, strict and skip_bad) and reads every record and image; also
// unpack_payload on the raw bytes.
#include "fuzz/fuzz_util.h"
#include "qface/core/error.h"
#include "qface/data/recordio.h"

using namespace qface::data;

namespace qface::fuzz {
int one_recordio(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const auto parts = qface::fuzz::split(qface::fuzz::as_view(data + 1, size - 1), "\n@@rec@@\n", 2);
  const std::string_view idx = parts.size() == 2 ? parts[0] : std::string_view();
  const std::string_view rec = parts.back();
  try {
    (void)unpack_payload(rec, "payload");
  } catch (const qface::Error&) {
  }
  const auto rec_path = qface::fuzz::put_file("fuzz.rec", rec);
  qface::fuzz::put_file("fuzz.idx", idx);
  ReadOptions o;
  o.use_index = parts.size() == 2;
  o.skip_bad = flags & 1;
  try {
    RecordFile f(rec_path, o);
    for (uint64_t key : f.keys()) {
      try {
        (void)f.read(key);
      } catch (const qface::Error&) {
      }
    }
    (void)f.find_magic(flags);
  } catch (const qface::Error&) {
  }
  try {
    FaceRecordSet s(rec_path, o);
    for (std::size_t i = 0; i < s.num_images() && i < 4096; ++i) {
      try {
        (void)s.read_image(i);
      } catch (const qface::Error&) {
      }
    }
    for (int64_t c = 0; c < s.num_classes() && c < 4096; ++c) (void)s.identity_range(c);
  } catch (const qface::Error&) {
  }
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(recordio)
