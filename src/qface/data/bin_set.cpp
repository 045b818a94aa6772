#include "qface/data/bin_set.h"

#include <optional>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/io/pickle.h"

namespace qface::data {
namespace {
using io::PyRef;
using io::PyValue;
using Kind = PyValue::Kind;

// The raw data and shape of a NumPy array pickled as
// numpy.core.multiarray._reconstruct(...) + BUILD (version, shape, dtype, fortran, data).
struct NumpyRaw {
  std::vector<int64_t> shape;
  std::string data;
};
std::optional<NumpyRaw> numpy_raw(const PyRef& v) {
  if (!v || v->kind != Kind::kObject || v->name != "_reconstruct" || !v->state) return std::nullopt;
  const PyRef& st = v->state;
  if (st->kind != Kind::kTuple || st->items.size() < 5) return std::nullopt;
  const PyRef& shape = st->items[1];
  const PyRef& raw = st->items[4];
  if (shape->kind != Kind::kTuple || (raw->kind != Kind::kBytes && raw->kind != Kind::kStr)) return std::nullopt;
  NumpyRaw out;
  for (const auto& d : shape->items) {
    if (d->kind != Kind::kInt) return std::nullopt;
    out.shape.push_back(d->i);
  }
  out.data = raw->s;
  return out;
}

std::string image_bytes(const PyRef& v, const std::string& name, std::size_t i) {
  if (v->kind == Kind::kBytes) return v->s;
  if (auto np = numpy_raw(v); np && np->shape.size() == 1 && static_cast<std::size_t>(np->shape[0]) == np->data.size())
    return np->data;  // a 1-D uint8 array of encoded bytes
  fail("{}: bins[{}] is {}, expected bytes (an encoded image)", name, i, v->describe());
}

std::vector<uint8_t> issame_list(const PyRef& v, const std::string& name) {
  std::vector<uint8_t> out;
  if (v->kind == Kind::kList || v->kind == Kind::kTuple) {
    out.reserve(v->items.size());
    for (std::size_t i = 0; i < v->items.size(); ++i) {
      const PyRef& b = v->items[i];
      if (b->kind == Kind::kBool) out.push_back(b->b);
      else if (b->kind == Kind::kInt && (b->i == 0 || b->i == 1)) out.push_back(b->i == 1);
      else fail("{}: issame_list[{}] is {}, expected a bool", name, i, b->describe());
    }
    return out;
  }
  if (auto np = numpy_raw(v); np && np->shape.size() == 1 && static_cast<std::size_t>(np->shape[0]) == np->data.size()) {
    for (std::size_t i = 0; i < np->data.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(np->data[i]);
      require(c <= 1, "{}: issame_list[{}] has byte value {}, expected a bool", name, i, c);
      out.push_back(c == 1);
    }
    return out;
  }
  fail("{}: issame_list is {}, expected a list of bools", name, v->describe());
}
}  // namespace

BinSet parse_bin_set(std::string_view data, const std::string& name, uint64_t max_image_bytes) {
  PyRef root = io::unpickle(data, name);
  require((root->kind == Kind::kTuple || root->kind == Kind::kList) && root->items.size() == 2,
          "{}: expected a pickled (bins, issame_list) pair, got {}", name, root->describe());
  const PyRef& bins = root->items[0];
  require(bins->kind == Kind::kList || bins->kind == Kind::kTuple, "{}: bins is {}, expected a list of bytes", name,
          bins->describe());
  uint64_t total = 0;
  BinSet set;
  set.images.reserve(bins->items.size());
  for (std::size_t i = 0; i < bins->items.size(); ++i) {
    set.images.push_back(image_bytes(bins->items[i], name, i));
    total += set.images.back().size();
    // One image at a time: a copy never passes the budget by more than one image (itself within the file).
    require(total <= max_image_bytes,
            "{}: bins[{}]: the images add up to more than {} MiB, the reader's budget for one set (the pickle's memo "
            "lists its {} images from fewer objects; see data::kBinImageBudget)",
            name, i, max_image_bytes >> 20, bins->items.size());
  }
  set.issame = issame_list(root->items[1], name);
  require(set.images.size() == 2 * set.issame.size(), "{}: {} images for {} pairs (expected {})", name,
          set.images.size(), set.issame.size(), 2 * set.issame.size());
  return set;
}

BinSet read_bin_set(const std::filesystem::path& path) { return parse_bin_set(read_file(path), path.string()); }

std::string encode_bin_set(const BinSet& set) {
  require(set.images.size() == 2 * set.issame.size(), ".bin set: {} images for {} pairs (expected {})",
          set.images.size(), set.issame.size(), 2 * set.issame.size());
  std::vector<PyRef> bins, same;
  bins.reserve(set.images.size());
  for (const auto& im : set.images) bins.push_back(PyValue::bytes(im));
  same.reserve(set.issame.size());
  for (uint8_t b : set.issame) same.push_back(PyValue::boolean(b != 0));
  return io::pickle_protocol2(PyValue::tuple({PyValue::list(std::move(bins)), PyValue::list(std::move(same))}));
}

void write_bin_set(const std::filesystem::path& path, const BinSet& set) {
  write_file_atomic(path, encode_bin_set(set));
}

}  // namespace qface::data
