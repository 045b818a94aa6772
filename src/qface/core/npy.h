// NumPy .npy files (format versions 1.0 and 2.0; 3.0 is accepted when the
// header is plain ASCII). Supported element types, little-endian, C order:
// float32 (<f4), float64 (<f8), int64 (<i8), int32 (<i4), plus uint8 (|u1)
// and bool (|b1). Anything else is rejected with an error naming the file.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace qface {

struct NpyHeader {
  int major = 1;
  int minor = 0;
  std::string descr;            // e.g. "<f4"
  bool fortran_order = false;
  std::vector<int64_t> shape;
  std::size_t data_offset = 0;  // bytes before the array data
};

// Parses the header at the start of `bytes`; `name` is used in error messages.
NpyHeader parse_npy_header(std::string_view bytes, const std::string& name);

// Decodes a whole .npy file held in memory into a (contiguous, owning) tensor.
torch::Tensor decode_npy(std::string_view bytes, const std::string& name);

// Encodes a tensor (any of the supported dtypes; made contiguous) as .npy bytes.
std::string encode_npy(const torch::Tensor& tensor);

torch::Tensor read_npy(const std::filesystem::path& path);

// Writes atomically (temp file + rename).
void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor);

// Convenience checks used by commands that read user arrays.
void require_shape(const torch::Tensor& t, const std::string& name, int64_t dims);
torch::Tensor read_npy_as(const std::filesystem::path& path, torch::ScalarType type, int64_t dims);

}  // namespace qface
