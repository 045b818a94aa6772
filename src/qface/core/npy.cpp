#include "qface/core/npy.h"

#include <torch/torch.h>

#include <cctype>
#include <cstring>
#include <limits>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/tensor_util.h"

namespace qface {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMaxDims = 64;  // NumPy's own limit (NPY_MAXDIMS) is 32
constexpr std::size_t kMagicLen = 6;

struct DtypeInfo {
  const char* descr;
  torch::ScalarType type;
  std::size_t itemsize;
};

constexpr DtypeInfo kDtypes[] = {
    {"<f4", torch::kFloat32, 4}, {"<f8", torch::kFloat64, 8}, {"<i8", torch::kInt64, 8},
    {"<i4", torch::kInt32, 4},   {"|u1", torch::kUInt8, 1},   {"|b1", torch::kBool, 1},
};

const DtypeInfo* find_dtype(const std::string& descr) {
  for (const auto& d : kDtypes)
    if (descr == d.descr) return &d;
  return nullptr;
}

const DtypeInfo* find_dtype(torch::ScalarType type) {
  for (const auto& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

// A tiny parser for the Python dict literal of a .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : s_(text), name_(name) {}

  void parse(NpyHeader& h) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      std::string key = parse_string();
      expect(':');
      if (key == "descr") {
        h.descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = parse_bool();
        have_order = true;
      } else if (key == "shape") {
        h.shape = parse_tuple();
        have_shape = true;
      } else {
        error(fmt::format("unknown header key '{}'", key));
      }
      skip_ws();
      if (peek() == ',') ++i_;
    }
    if (!have_descr) error("header has no 'descr'");
    if (!have_order) error("header has no 'fortran_order'");
    if (!have_shape) error("header has no 'shape'");
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail("{}: invalid .npy header at header byte {}: {}", name_, i_, what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) error(fmt::format("expected '{}'", c));
    ++i_;
  }
  std::string parse_string() {
    skip_ws();
    char q = peek();
    if (q != '\'' && q != '"') error("expected a quoted string");
    ++i_;
    std::size_t end = s_.find(q, i_);
    if (end == std::string_view::npos) error("unterminated string");
    std::string out(s_.substr(i_, end - i_));
    i_ = end + 1;
    return out;
  }
  bool parse_bool() {
    skip_ws();
    if (s_.substr(i_, 4) == "True") {
      i_ += 4;
      return true;
    }
    if (s_.substr(i_, 5) == "False") {
      i_ += 5;
      return false;
    }
    error("expected True or False");
  }
  std::vector<int64_t> parse_tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      skip_ws();
      if (peek() == ')') {
        ++i_;
        return out;
      }
      if (!std::isdigit(static_cast<unsigned char>(peek()))) error("expected a dimension");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) error("dimension too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 long literal
      out.push_back(v);
      skip_ws();
      if (peek() == ',') ++i_;
      else if (peek() != ')') error("expected ',' or ')' in shape");
    }
  }

  std::string_view s_;
  const std::string& name_;
  std::size_t i_ = 0;
};

uint32_t read_le(const char* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

}  // namespace

NpyHeader parse_npy_header(std::string_view bytes, const std::string& name) {
  if (bytes.size() < kMagicLen + 2 || std::memcmp(bytes.data(), kMagic, kMagicLen) != 0)
    fail("{}: not a .npy file (bad magic at byte 0)", name);
  NpyHeader h;
  h.major = static_cast<unsigned char>(bytes[6]);
  h.minor = static_cast<unsigned char>(bytes[7]);
  int len_bytes = 0;
  if (h.major == 1) len_bytes = 2;
  else if (h.major == 2 || h.major == 3) len_bytes = 4;
  else fail("{}: unsupported .npy format version {}.{} (byte 6)", name, h.major, h.minor);
  if (bytes.size() < 8 + static_cast<std::size_t>(len_bytes))
    fail("{}: truncated .npy header (file has {} bytes)", name, bytes.size());
  const std::size_t header_len = read_le(bytes.data() + 8, len_bytes);
  h.data_offset = 8 + len_bytes + header_len;
  if (bytes.size() < h.data_offset)
    fail("{}: truncated .npy header: header needs {} bytes, file has {}", name, h.data_offset, bytes.size());
  std::string_view text = bytes.substr(8 + len_bytes, header_len);
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) fail("{}: .npy header is not ASCII", name);
  HeaderParser(text, name).parse(h);
  return h;
}

torch::Tensor decode_npy(std::string_view bytes, const std::string& name) {
  NpyHeader h = parse_npy_header(bytes, name);
  const DtypeInfo* dt = find_dtype(h.descr);
  if (!dt) {
    if (!h.descr.empty() && h.descr[0] == '>')
      fail("{}: big-endian dtype '{}' is not supported; save it little-endian", name, h.descr);
    fail("{}: unsupported dtype '{}' (expected <f4, <f8, <i8, <i4, |u1 or |b1)", name, h.descr);
  }
  if (h.fortran_order) {
    bool trivial = h.shape.size() <= 1;
    if (!trivial) fail("{}: Fortran-order arrays are not supported; save with C order", name);
  }
  if (h.shape.size() > kMaxDims) fail("{}: shape has {} dimensions (at most {})", name, h.shape.size(), kMaxDims);
  // Overflow-checked, and against the bytes present before allocating: the
  // product of the non-zero dimensions must fit in int64 (LibTorch computes
  // it even for an empty array), and the data must be in the file.
  const std::size_t have = bytes.size() - h.data_offset;
  int64_t count = 1, nonzero = 1;
  for (int64_t d : h.shape) {
    if (d != 0 && __builtin_mul_overflow(nonzero, d, &nonzero))
      fail("{}: shape ({}) overflows a 64-bit element count", name, fmt::join(h.shape, ", "));
    count = d == 0 ? 0 : count * d;  // <= nonzero
  }
  if (static_cast<uint64_t>(count) > have / dt->itemsize)
    fail("{}: truncated data: shape ({}) needs {} elements of {} bytes after the header (offset {}), file has {} bytes",
         name, fmt::join(h.shape, ", "), count, dt->itemsize, h.data_offset, have);
  const std::size_t need = static_cast<std::size_t>(count) * dt->itemsize;
  if (have > need)
    fail("{}: {} unexpected trailing bytes after the array data (offset {})", name, have - need,
         h.data_offset + need);
  auto tensor = torch::empty(h.shape, torch::TensorOptions().dtype(dt->type));
  if (need > 0) std::memcpy(tensor.data_ptr(), bytes.data() + h.data_offset, need);
  return tensor;
}

std::string encode_npy(const torch::Tensor& input) {
  const DtypeInfo* dt = find_dtype(input.scalar_type());
  if (!dt) fail("cannot write .npy: unsupported tensor dtype {}", c10::toString(input.scalar_type()));
  torch::Tensor t = input.detach().to(torch::kCPU).contiguous();
  std::string shape = "(";
  for (int64_t i = 0; i < t.dim(); ++i) {
    shape += std::to_string(t.size(i));
    if (t.dim() == 1 || i + 1 < t.dim()) shape += ",";
    if (i + 1 < t.dim()) shape += " ";
  }
  shape += ")";
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", dt->descr, shape);
  // Pad with spaces so that the data starts on a 64-byte boundary, ending in '\n'.
  int major = 1;
  std::size_t prefix = kMagicLen + 2 + 2;
  if (dict.size() + 1 + 64 > 65535) {  // header length no longer fits in uint16
    major = 2;
    prefix += 2;
  }
  std::size_t total = prefix + dict.size() + 1;
  std::size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  std::string out(kMagic, kMagicLen);
  out.push_back(static_cast<char>(major));
  out.push_back(0);
  const uint32_t len = static_cast<uint32_t>(dict.size());
  const int len_bytes = major == 1 ? 2 : 4;
  for (int i = 0; i < len_bytes; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out += dict;
  const std::size_t nbytes = static_cast<std::size_t>(t.numel()) * dt->itemsize;
  out.append(static_cast<const char*>(t.data_ptr()), nbytes);
  return out;
}

torch::Tensor read_npy(const std::filesystem::path& path) {
  return decode_npy(read_file(path), path.string());
}

void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor) {
  write_file_atomic(path, encode_npy(tensor));
}

void require_shape(const torch::Tensor& t, const std::string& name, int64_t dims) {
  if (t.dim() != dims) fail("{}: expected a {}-D array, got shape {}", name, dims, shape_string(t.sizes()));
}

torch::Tensor read_npy_as(const std::filesystem::path& path, torch::ScalarType type, int64_t dims) {
  torch::Tensor t = read_npy(path);
  require_shape(t, path.string(), dims);
  if (t.scalar_type() != type)
    fail("{}: expected dtype {}, got {}", path.string(), c10::toString(type), c10::toString(t.scalar_type()));
  return t;
}

}  // namespace qface
