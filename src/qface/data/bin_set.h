// Verification `.bin` sets (lfw.bin, cfp_fp.bin, agedb_30.bin, calfw.bin,
// cplfw.bin; docs/method.md, Data formats): a Python pickle of `(bins,
// issame_list)`, `bins` a list of encoded images (bytes), pairs are images (2i,
// 2i+1), `issame_list` one bool per pair. Read with qface::io::unpickle (any
// protocol; Python 2 str and Python 3 bytes alike; the list may also be a NumPy
// bool array and images NumPy uint8 arrays); written with protocol 2 and bytes
// as Python 2 str, as the original tools wrote them, so Python 3 loads them
// with pickle.load(f, encoding='bytes').
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace qface::data {

struct BinSet {
  std::vector<std::string> images;  // encoded images (JPEG/PNG bytes)
  std::vector<uint8_t> issame;      // one per pair (images 2i, 2i+1): 1 = the same identity
  std::size_t pairs() const { return issame.size(); }
};

// What the images of one set may add up to once read: a pickle's memo lets a
// set list one image object many times (ordinary when pairs share an image,
// and Python reads it so), so a small file may stand for many copies; the
// reader makes them up to this absolute budget and refuses beyond it.
inline constexpr uint64_t kBinImageBudget = uint64_t{4} << 30;  // 4 GiB

// Parses pickle bytes; `name` (usually the file) prefixes errors, which say
// what is wrong and where (item index). Requires images.size() == 2 * pairs.
BinSet parse_bin_set(std::string_view data, const std::string& name, uint64_t max_image_bytes = kBinImageBudget);
BinSet read_bin_set(const std::filesystem::path& path);

// Protocol-2 pickle bytes of (list of bytes, list of bool).
std::string encode_bin_set(const BinSet& set);
// Writes atomically; throws when images.size() != 2 * issame.size().
void write_bin_set(const std::filesystem::path& path, const BinSet& set);

}  // namespace qface::data
