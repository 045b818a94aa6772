#include "qface/io/checkpoint.h"

#include <caffe2/serialize/inline_container.h>
#include <spdlog/spdlog.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <cmath>

#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

#include "qface/core/error.h"
#include "qface/core/fs.h"

namespace qface::io {
namespace fs = std::filesystem;
using Kind = PyValue::Kind;

namespace {

// dtype of a legacy storage class name (torch.FloatStorage, ...).
torch::ScalarType storage_dtype(const std::string& name, const std::string& source) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"FloatStorage", torch::kFloat32}, {"DoubleStorage", torch::kFloat64}, {"HalfStorage", torch::kFloat16},
      {"BFloat16Storage", torch::kBFloat16}, {"LongStorage", torch::kInt64}, {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16}, {"CharStorage", torch::kInt8}, {"ByteStorage", torch::kUInt8},
      {"BoolStorage", torch::kBool}};
  auto it = types.find(name);
  if (it == types.end()) fail("{}: unsupported tensor storage type '{}'", source, name);
  return it->second;
}

PyRef tensor_value(torch::Tensor t) {
  auto v = std::make_shared<PyValue>();
  v->kind = Kind::kOpaque;
  v->module = "torch";
  v->name = "Tensor";
  v->opaque = std::make_shared<torch::Tensor>(std::move(t));
  return v;
}

constexpr std::size_t kMaxDims = 64;  // as many as LibTorch's own limit for sizes

// Byte size of `numel` elements of `dtype`, or -1 when it overflows int64.
int64_t checked_nbytes(int64_t numel, torch::ScalarType dtype) {
  int64_t n = 0;
  if (numel < 0 || __builtin_mul_overflow(numel, static_cast<int64_t>(c10::elementSize(dtype)), &n)) return -1;
  return n;
}

std::vector<int64_t> int_list(const PyRef& v, const std::string& what, const std::string& source) {
  if (!v || (!v->is(Kind::kTuple) && !v->is(Kind::kList)))
    fail("{}: tensor {} is {}, expected a tuple", source, what, v ? v->describe() : "missing");
  std::vector<int64_t> out;
  if (v->items.size() > kMaxDims) fail("{}: tensor {} has {} dimensions (at most {})", source, what, v->items.size(), kMaxDims);
  for (const auto& x : v->items) {
    if (!x->is(Kind::kInt)) fail("{}: tensor {} holds {}, expected integers", source, what, x->describe());
    out.push_back(x->i);
  }
  return out;
}

// Storages by key; each is read once and shared by the tensors that view it.
class StorageLoader {
 public:
  StorageLoader(std::string source, std::function<torch::Tensor(const std::string& key, torch::ScalarType, int64_t numel)> read)
      : source_(std::move(source)), read_(std::move(read)) {}

  // pid = ('storage', storage_type, key, location, numel[, view_metadata])
  PyRef persistent_load(const PyRef& pid) {
    if (!pid->is(Kind::kTuple) || pid->items.size() < 5 || !pid->items[0]->is(Kind::kStr) ||
        pid->items[0]->s != "storage")
      fail("{}: unsupported persistent id {}", source_, pid->describe());
    const PyRef& type = pid->items[1];
    const PyRef& key = pid->items[2];
    if (!type->is(Kind::kGlobal) && !type->is(Kind::kObject))
      fail("{}: storage type is {}", source_, type->describe());
    std::string k = key->is(Kind::kStr) ? key->s : key->is(Kind::kInt) ? std::to_string(key->i) : "";
    if (k.empty()) fail("{}: storage key is {}", source_, key->describe());
    if (!pid->items[4]->is(Kind::kInt) || pid->items[4]->i < 0)
      fail("{}: storage '{}' has size {}", source_, k, pid->items[4]->describe());
    const torch::ScalarType dtype = storage_dtype(type->name, source_);
    auto it = storages_.find(k);
    if (it == storages_.end()) it = storages_.emplace(k, read_(k, dtype, pid->items[4]->i)).first;
    if (it->second.scalar_type() != dtype)
      fail("{}: storage '{}' is read both as {} and {}", source_, k, c10::toString(it->second.scalar_type()),
           c10::toString(dtype));
    return tensor_value(it->second);
  }

  PyRef call(const std::string& module, const std::string& name, const PyRef& args) {
    if (module == "torch._utils" && (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor")) return rebuild(args);
    if (module == "torch._utils" && (name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state")) {
      if (args->items.empty() || !as_tensor(args->items[0]).defined())
        fail("{}: _rebuild_parameter without a tensor", source_);
      return args->items[0];
    }
    if (module == "torch._tensor" && name == "_rebuild_from_type_v2") {
      // (func, type, args, state): a tensor subclass; rebuild the plain tensor.
      if (args->items.size() < 3 || !args->items[0]->is(Kind::kGlobal) || !args->items[2]->is(Kind::kTuple))
        fail("{}: malformed _rebuild_from_type_v2", source_);
      PyRef v = call(args->items[0]->module, args->items[0]->name, args->items[2]);
      if (!v) fail("{}: unsupported tensor rebuild {}", source_, args->items[0]->qualified_name());
      return v;
    }
    return nullptr;
  }

 private:
  PyRef rebuild(const PyRef& args) {
    const auto& a = args->items;
    if (a.size() < 4) fail("{}: _rebuild_tensor_v2 with {} arguments", source_, a.size());
    torch::Tensor storage = as_tensor(a[0]);
    // A storage is a whole 1-d buffer; a tensor made by an earlier rebuild (a
    // view, maybe with zero strides) is not one, and offsets into it are not
    // offsets into its memory.
    if (!storage.defined() || storage.dim() != 1 || storage.storage_offset() != 0 ||
        storage.numel() * static_cast<int64_t>(storage.element_size()) != static_cast<int64_t>(storage.storage().nbytes()))
      fail("{}: tensor rebuilt from {}, not a storage", source_, a[0]->describe());
    if (!a[1]->is(Kind::kInt)) fail("{}: tensor storage offset is {}", source_, a[1]->describe());
    const int64_t offset = a[1]->i;
    std::vector<int64_t> size = int_list(a[2], "size", source_), stride = int_list(a[3], "stride", source_);
    if (size.size() != stride.size()) fail("{}: tensor size and stride differ in length", source_);
    // Overflow-checked: the element count, and the last element reached
    // (offset + sum (size - 1) * stride), which must lie inside the storage.
    // The product of the non-zero sizes must fit too: LibTorch computes it even for an empty tensor.
    int64_t numel = 1, last = offset;
    bool overflow = false, empty = false;
    for (std::size_t i = 0; i < size.size(); ++i) {
      if (size[i] < 0 || stride[i] < 0) fail("{}: negative tensor size or stride", source_);
      if (size[i] == 0) {
        empty = true;
        continue;
      }
      int64_t step = 0;
      overflow |= __builtin_mul_overflow(numel, size[i], &numel);
      overflow |= __builtin_mul_overflow(size[i] - 1, stride[i], &step) || __builtin_add_overflow(last, step, &last);
    }
    if (empty) numel = 0;
    if (overflow)
      fail("{}: tensor of size [{}] and stride [{}] overflows 64-bit element counts", source_, fmt::join(size, ", "),
           fmt::join(stride, ", "));
    if (offset < 0 || (numel > 0 && last >= storage.numel()))
      fail("{}: tensor of size [{}] at offset {} overruns its storage of {} elements", source_,
           fmt::join(size, ", "), offset, storage.numel());
    if (numel == 0) return tensor_value(torch::empty(size, storage.options()));
    // set_, not as_strided: an autograd view would keep the storage tensor as
    // its base, and load_state_dict could not take the storage over.
    return tensor_value(torch::empty({0}, storage.options()).set_(storage.storage(), offset, size, stride));
  }

  std::string source_;
  std::function<torch::Tensor(const std::string&, torch::ScalarType, int64_t)> read_;
  std::map<std::string, torch::Tensor> storages_;
};

bool starts_with(const std::string& s, std::string_view p) { return s.size() >= p.size() && s.compare(0, p.size(), p) == 0; }
// (Not std::string::ends_with: the fuzz build compiles LibTorch code as C++17, fuzz/CMakeLists.txt.)
bool ends_with(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// A record as a 1-d tensor of `dtype` on the record's own buffer, which
// getRecord hands over (CPU allocator, 64-byte aligned): no second copy.
torch::Tensor record_to_storage(at::DataPtr data, std::size_t nbytes, torch::ScalarType dtype, int64_t numel,
                                const std::string& what) {
  // Checked before use: the element count comes from the pickle.
  const int64_t need = checked_nbytes(numel, dtype);
  if (need < 0 || static_cast<uint64_t>(need) > nbytes)
    fail("{}: holds {} bytes, {} elements of {} need {} (truncated?)", what, nbytes, numel, c10::toString(dtype),
         need < 0 ? std::string("more than 2^63") : std::to_string(need));
  // The storage is the `need` bytes the pickle declares; bytes past them stay
  // unused (PyTorch's loader accepts such records too).
  c10::Storage storage(c10::Storage::use_byte_size_t(), static_cast<std::size_t>(need), std::move(data),
                       /*allocator=*/nullptr, /*resizable=*/false);
  return torch::empty({0}, torch::TensorOptions().dtype(dtype)).set_(std::move(storage), 0, {numel}, {1});
}

PyRef load_zip(const fs::path& path, const std::string& source) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path.string());
  } catch (const c10::Error& e) {
    fail("{}: not a readable torch zip archive (truncated or corrupt?): {}", source, e.what_without_backtrace());
  }
  try {
    if (!reader->hasRecord("data.pkl")) fail("{}: torch zip archive without data.pkl", source);
    auto [pkl, pkl_size] = reader->getRecord("data.pkl");
    StorageLoader loader(source, [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
      const std::string record = "data/" + key;
      if (!reader->hasRecord(record)) fail("{}: tensor storage '{}' is missing from the archive", source, record);
      auto [ptr, size] = reader->getRecord(record);
      return record_to_storage(std::move(ptr), size, dtype, numel, source + ": " + record);
    });
    UnpickleHooks hooks;
    hooks.persistent_load = [&](const PyRef& pid) { return loader.persistent_load(pid); };
    hooks.call = [&](const std::string& m, const std::string& n, const PyRef& a) { return loader.call(m, n, a); };
    return unpickle(std::string_view(static_cast<const char*>(pkl.get()), pkl_size), source + ":data.pkl", hooks);
  } catch (const c10::Error& e) {
    fail("{}: corrupt torch zip archive: {}", source, e.what_without_backtrace());
  }
}

// The legacy format (torch.save with _use_new_zipfile_serialization=False):
// pickles of the magic number, the protocol version, sys info, the object
// (storages as persistent ids), the list of storage keys, then per storage an
// int64 element count and the raw elements.
PyRef load_legacy(const std::string& bytes, const std::string& source) {
  std::size_t pos = 0;
  auto next = [&](const std::string& what, const UnpickleHooks& hooks) {
    std::size_t used = 0;
    PyRef v = unpickle(std::string_view(bytes).substr(pos), source + " (" + what + ")", hooks, &used);
    pos += used;
    return v;
  };
  // The magic number 0x1950a86a20f9469cfc6c as pickled by Python (protocol 2, LONG1 of 10 bytes).
  static const std::string kMagic("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e", 15);
  if (bytes.compare(0, kMagic.size(), kMagic) != 0) fail("{}: not a torch file (bad magic number)", source);
  pos = kMagic.size();
  PyRef protocol = next("protocol version", {});
  if (!protocol->is(Kind::kInt) || protocol->i != 1001)
    fail("{}: unsupported legacy torch protocol {}", source, protocol->describe());
  next("sys info", {});
  struct Pending {
    torch::ScalarType dtype;
    int64_t numel;
    torch::Tensor storage;
  };
  std::map<std::string, Pending> pending;
  // Storage data comes after the object pickle, so all storages together must
  // fit in the bytes after its start: checked before allocating anything.
  const std::size_t object_pos = pos;
  uint64_t reserved = 0;
  StorageLoader loader(source, [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    const int64_t nbytes = checked_nbytes(numel, dtype);
    const uint64_t room = bytes.size() - object_pos - reserved;
    if (nbytes < 0 || static_cast<uint64_t>(nbytes) > room)
      fail("{}: storage '{}' of {} {} elements needs more than the {} bytes left in the file (truncated or corrupt)",
           source, key, numel, c10::toString(dtype), room);
    reserved += static_cast<uint64_t>(nbytes);
    // Allocate now, fill below.
    Pending p{dtype, numel, torch::zeros({numel}, torch::TensorOptions().dtype(dtype))};
    pending.emplace(key, p);
    return p.storage;
  });
  UnpickleHooks hooks;
  hooks.persistent_load = [&](const PyRef& pid) { return loader.persistent_load(pid); };
  hooks.call = [&](const std::string& m, const std::string& n, const PyRef& a) { return loader.call(m, n, a); };
  PyRef root = next("object", hooks);
  PyRef keys = next("storage keys", {});
  if (!keys->is(Kind::kList)) fail("{}: storage key list is {}", source, keys->describe());
  std::set<std::string> filled;
  for (const auto& k : keys->items) {
    if (!k->is(Kind::kStr)) fail("{}: storage key is {}", source, k->describe());
    if (bytes.size() - pos < 8) fail("{}: truncated at byte {} (storage '{}')", source, pos, k->s);
    int64_t numel = 0;
    std::memcpy(&numel, bytes.data() + pos, 8);
    auto it = pending.find(k->s);
    if (it == pending.end()) fail("{}: storage '{}' at byte {} is not used by any tensor", source, k->s, pos);
    if (!filled.insert(k->s).second) fail("{}: storage '{}' at byte {} is listed twice", source, k->s, pos);
    const auto& p = it->second;
    if (numel != p.numel)
      fail("{}: storage '{}' at byte {} has {} elements, the tensors expect {}", source, k->s, pos, numel, p.numel);
    pos += 8;
    const uint64_t nbytes = static_cast<uint64_t>(checked_nbytes(numel, p.dtype));  // checked when allocated
    if (nbytes > bytes.size() - pos)
      fail("{}: storage '{}' at byte {} needs {} bytes, {} left (truncated?)", source, k->s, pos, nbytes,
           bytes.size() - pos);
    if (nbytes) std::memcpy(p.storage.data_ptr(), bytes.data() + pos, nbytes);
    pos += nbytes;
  }
  for (const auto& [key, p] : pending)
    if (!filled.count(key)) fail("{}: storage '{}' is used by a tensor but has no data in the file", source, key);
  return root;
}

// Flattens a dict of tensors (nested dicts give dotted keys), depth first in
// file order, without recursion. Each dict is expanded once: the memo lets a
// pickle put one dict under many keys, and n levels of that would otherwise
// give 2^n entries from a few hundred bytes. (unpickle() already rejected cycles.)
void collect(const PyRef& root, const std::string& source, NamedTensors& out) {
  struct Frame {
    const PyValue* dict;
    std::string prefix;
    std::size_t next = 0;
  };
  std::unordered_set<const PyValue*> expanded{root.get()};
  std::vector<Frame> stack;
  stack.push_back({root.get(), ""});
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next == f.dict->dict.size()) {
      stack.pop_back();
      continue;
    }
    const auto& [k, x] = f.dict->dict[f.next++];
    if (!k->is(Kind::kStr)) continue;
    torch::Tensor t = as_tensor(x);
    if (t.defined()) {
      out.emplace_back(f.prefix + k->s, t);
    } else if (x->is(Kind::kDict)) {
      if (!expanded.insert(x.get()).second)
        fail("{}: state dict holds the same dict twice (again under '{}{}')", source, f.prefix, k->s);
      std::string prefix = f.prefix + k->s + ".";
      stack.push_back({x.get(), std::move(prefix)});  // invalidates f
    }
  }
}

std::string str_field(const PyRef& v, const std::string& key) {
  if (!v) return "";
  PyRef x = v->get(key);
  if (!x && v->is(Kind::kObject) && v->state) x = v->state->get(key);  // argparse.Namespace keeps fields in its state
  return x && x->is(Kind::kStr) ? x->s : "";
}

// qface's own files (save_checkpoint below) are LibTorch archives: a zip whose
// data.pkl pickles a TorchScript module object, __torch__.Module, with the
// written values as its BUILD state. They are read with qface's zip and pickle
// reader, as every other torch file, not with LibTorch's TorchScript loader:
// that one compiles the archive's code/ record and trusts the pickle's
// lengths (a crafted 2 KB file made it allocate 10 GB; fuzz/regressions).
Checkpoint read_qface(const PyRef& root, const std::string& source) {
  Checkpoint c;
  c.format = "qface";
  const PyRef attrs = root->is(Kind::kObject) ? root->state : nullptr;
  if (!attrs || !attrs->is(Kind::kDict))
    fail("{}: qface checkpoint: expected a module object with attributes, found {}", source, root->describe());
  c.arch = str_field(attrs, "arch");
  PyRef dict = attrs->get("state_dict");
  // A c10::Dict is pickled as torch.jit._pickle.restore_type_tag(dict, "Dict[str, Tensor]").
  if (dict && dict->is(Kind::kObject) && dict->qualified_name() == "torch.jit._pickle.restore_type_tag" &&
      !dict->items.empty())
    dict = dict->items.front();
  if (!dict || !dict->is(Kind::kDict)) fail("{}: qface checkpoint without a state_dict", source);
  for (const auto& [k, v] : dict->dict) {
    const torch::Tensor t = as_tensor(v);
    if (!k->is(Kind::kStr) || !t.defined()) fail("{}: state_dict holds a non-tensor entry", source);
    c.tensors.emplace_back(k->s, t);
  }
  if (const PyRef scale = attrs->get("int8_scale")) {
    const torch::Tensor scales = as_tensor(scale), zero_points = as_tensor(attrs->get("int8_zero_point"));
    const PyRef info = attrs->get("int8_info");
    require(scales.defined() && zero_points.defined() && info && info->is(Kind::kStr),
            "{}: incomplete int8 calibration (int8_scale without int8_zero_point or int8_info)", source);
    const torch::Tensor sc = scales.to(torch::kFloat64).contiguous().reshape({-1});
    const torch::Tensor z = zero_points.to(torch::kInt64).contiguous().reshape({-1});
    require(sc.numel() == z.numel() && sc.numel() > 0, "{}: int8 calibration: {} scales for {} zero points", source,
            sc.numel(), z.numel());
    Int8Calibration q;
    q.scale.assign(sc.data_ptr<double>(), sc.data_ptr<double>() + sc.numel());
    q.zero_point.assign(z.data_ptr<int64_t>(), z.data_ptr<int64_t>() + z.numel());
    for (std::size_t i = 0; i < q.scale.size(); ++i)
      require(std::isfinite(q.scale[i]) && q.scale[i] > 0 && q.zero_point[i] >= 0 && q.zero_point[i] <= 255,
              "{}: int8 calibration value {}: scale {} / zero point {} out of range", source, i, q.scale[i],
              q.zero_point[i]);
    q.info = info->s;
    if (const PyRef from = attrs->get("int8_fp32_from")) {
      require(from->is(Kind::kInt) && from->i >= -1 && from->i < static_cast<int64_t>(q.scale.size()),
              "{}: int8_fp32_from out of range", source);
      q.fp32_from = from->i;
    }
    const PyRef steps = attrs->get("int8_bias_steps"), shift = attrs->get("int8_bias_shift");
    if (steps || shift) {
      const torch::Tensor st = steps ? as_tensor(steps) : torch::Tensor(), sh = shift ? as_tensor(shift) : torch::Tensor();
      require(st.defined() && sh.defined(), "{}: incomplete int8 bias correction (int8_bias_steps and int8_bias_shift)",
              source);
      const torch::Tensor s64 = st.to(torch::kInt64).contiguous().reshape({-1});
      const torch::Tensor f32 = sh.to(torch::kFloat32).contiguous().reshape({-1});
      q.bias_steps.assign(s64.data_ptr<int64_t>(), s64.data_ptr<int64_t>() + s64.numel());
      q.bias_shift.assign(f32.data_ptr<float>(), f32.data_ptr<float>() + f32.numel());
      for (std::size_t i = 0; i < q.bias_steps.size(); ++i)
        require(q.bias_steps[i] >= 0 && q.bias_steps[i] + 1 < static_cast<int64_t>(q.scale.size()) &&
                    (i == 0 || q.bias_steps[i] > q.bias_steps[i - 1]),
                "{}: int8_bias_steps[{}] = {} is out of range or out of order", source, i, q.bias_steps[i]);
      require(q.bias_steps.empty() == q.bias_shift.empty(), "{}: int8 bias correction: {} steps and {} shifts", source,
              q.bias_steps.size(), q.bias_shift.size());
      for (std::size_t i = 0; i < q.bias_shift.size(); ++i)
        require(std::isfinite(q.bias_shift[i]), "{}: int8_bias_shift[{}] is not finite", source, i);
    }
    c.int8 = std::move(q);
  }
  return c;
}

}  // namespace

torch::Tensor as_tensor(const PyRef& value) {
  if (!value || !value->is(Kind::kOpaque) || value->name != "Tensor" || !value->opaque) return {};
  return *std::static_pointer_cast<torch::Tensor>(value->opaque);
}

PyRef load_torch_pickle(const fs::path& path) {
  const std::string source = path.string();
  std::string head;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open", source);
    head.resize(4);
    in.read(head.data(), 4);
    head.resize(static_cast<std::size_t>(in.gcount()));
  }
  if (head.size() < 4) fail("{}: too short to be a torch file ({} bytes)", source, head.size());
  if (head == std::string("PK\x03\x04", 4)) return load_zip(path, source);
  if (static_cast<unsigned char>(head[0]) == 0x80) {
    try {
      return load_legacy(read_file(path), source);
    } catch (const c10::Error& e) {
      fail("{}: corrupt legacy torch file: {}", source, e.what_without_backtrace());
    }
  }
  fail("{}: not a torch checkpoint (neither a zip archive nor a pickle stream)", source);
}

Checkpoint read_checkpoint(const fs::path& path) {
  const std::string source = path.string();
  PyRef root = load_torch_pickle(path);
  if (root->is(Kind::kObject) && root->qualified_name() == "__torch__.Module") return read_qface(root, source);
  Checkpoint c;
  c.format = "torch";
  if (!root->is(Kind::kDict)) fail("{}: holds {}, expected a dict (a state dict or a checkpoint)", source, root->describe());
  PyRef sd = root->get("state_dict");
  if (!sd) sd = root->get("model_state_dict");
  if (sd && !sd->is(Kind::kDict)) fail("{}: 'state_dict' is {}, expected a dict", source, sd->describe());
  collect(sd ? sd : root, source, c.tensors);
  if (c.tensors.empty()) fail("{}: no tensors found (keys: {})", source, root->dict.size());
  c.arch = str_field(root, "arch");
  if (c.arch.empty()) c.arch = str_field(root->get("hyper_parameters"), "arch");
  return c;
}

namespace {
LoadReport load_into(torch::nn::Module& module, const NamedTensors& tensors, const std::string& source,
                     const std::string& checkpoint_arch, bool adopt) {
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (const auto& p : module.named_parameters(true)) targets.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) targets.emplace_back(b.key(), b.value());
  std::map<std::string, torch::Tensor> ckpt;
  for (const auto& [k, v] : tensors) ckpt[k] = v;

  LoadReport report;
  std::size_t best = 0;
  for (const char* p : {"", "model.", "module.", "module.features.", "features.module.", "features.", "backbone."}) {
    std::size_t hits = 0;
    for (const auto& [name, t] : targets) hits += ckpt.count(p + name);
    if (hits > best) best = hits, report.prefix = p;
  }
  std::set<std::string> used;
  std::vector<std::string> missing, unexpected, shapes;
  for (const auto& [name, t] : targets) {
    auto it = ckpt.find(report.prefix + name);
    if (it == ckpt.end()) {
      if (!ends_with(name, "num_batches_tracked")) missing.push_back(name);
      continue;
    }
    used.insert(it->first);
    if (it->second.sizes() != t.sizes())
      shapes.push_back(fmt::format("{} [{}] vs model [{}]", name, fmt::join(it->second.sizes(), "x"),
                                   fmt::join(t.sizes(), "x")));
  }
  std::set<std::string> model_names;
  for (const auto& [name, t] : targets) model_names.insert(name);
  for (const auto& [k, v] : tensors) {
    if (used.count(k)) continue;
    if (!starts_with(k, report.prefix)) {
      report.ignored.push_back(k);
      continue;
    }
    const std::string rest = k.substr(report.prefix.size());
    // With no prefix, keys of other known containers (a head next to the model) are not ours to judge.
    if (report.prefix.empty() && (starts_with(rest, "head.") || starts_with(rest, "optimizer"))) {
      report.ignored.push_back(k);
      continue;
    }
    if (!model_names.count(rest)) unexpected.push_back(rest);
  }
  if (!missing.empty() || !unexpected.empty() || !shapes.empty()) {
    auto list = [](const std::vector<std::string>& v) {
      const std::size_t shown = std::min<std::size_t>(v.size(), 6);
      std::string s = fmt::format("{}", fmt::join(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(shown), ", "));
      if (v.size() > shown) s += fmt::format(", ... {} more", v.size() - shown);
      return s;
    };
    std::string msg = fmt::format("{}: weights do not fit the model", source);
    if (!checkpoint_arch.empty()) msg += fmt::format(" (the checkpoint names arch '{}')", checkpoint_arch);
    if (!report.prefix.empty()) msg += fmt::format(" [key prefix '{}']", report.prefix);
    if (!missing.empty()) msg += fmt::format("; {} missing: {}", missing.size(), list(missing));
    if (!unexpected.empty()) msg += fmt::format("; {} unexpected: {}", unexpected.size(), list(unexpected));
    if (!shapes.empty()) msg += fmt::format("; {} shape mismatches: {}", shapes.size(), list(shapes));
    throw Error(msg);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : targets) {
    auto it = ckpt.find(report.prefix + name);
    if (it == ckpt.end()) continue;
    const torch::Tensor& v = it->second;
    if (adopt && v.scalar_type() == t.scalar_type() && v.storage().use_count() == 1 &&
        (v.is_contiguous() || v.is_contiguous(torch::MemoryFormat::ChannelsLast)))
      t.set_data(v);
    else
      t.copy_(v.to(t.scalar_type()));
    ++report.loaded;
  }
  return report;
}
}  // namespace

LoadReport load_state_dict(torch::nn::Module& module, const NamedTensors& tensors, const std::string& source,
                           const std::string& checkpoint_arch) {
  return load_into(module, tensors, source, checkpoint_arch, /*adopt=*/false);
}

LoadReport load_state_dict(torch::nn::Module& module, NamedTensors&& tensors, const std::string& source,
                           const std::string& checkpoint_arch) {
  return load_into(module, tensors, source, checkpoint_arch, /*adopt=*/true);
}

LoadReport load_weights(torch::nn::Module& module, const fs::path& path) {
  Checkpoint c = read_checkpoint(path);
  LoadReport r = load_state_dict(module, std::move(c.tensors), path.string(), c.arch);
  r.int8 = std::move(c.int8);
  spdlog::debug("{}: loaded {} tensors (prefix '{}', {} other entries ignored)", path.string(), r.loaded, r.prefix,
                r.ignored.size());
  return r;
}

void save_checkpoint(const fs::path& path, const torch::nn::Module& module, const std::string& arch,
                     const Int8Calibration* int8) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& p : module.named_parameters(true)) dict.insert(p.key(), p.value().detach().cpu());
  for (const auto& b : module.named_buffers(true)) dict.insert(b.key(), b.value().detach().cpu());
  torch::serialize::OutputArchive archive;
  archive.write("qface_format", c10::IValue(int64_t{1}));
  archive.write("arch", c10::IValue(arch));
  archive.write("state_dict", c10::IValue(dict));
  if (int8) {
    archive.write("int8_scale", c10::IValue(torch::tensor(int8->scale, torch::kFloat64)));
    archive.write("int8_zero_point", c10::IValue(torch::tensor(int8->zero_point, torch::kInt64)));
    archive.write("int8_fp32_from", c10::IValue(int8->fp32_from));
    if (!int8->bias_steps.empty()) {
      archive.write("int8_bias_steps", c10::IValue(torch::tensor(int8->bias_steps, torch::kInt64)));
      archive.write("int8_bias_shift", c10::IValue(torch::tensor(int8->bias_shift, torch::kFloat32)));
    }
    archive.write("int8_info", c10::IValue(int8->info));
  }
  std::ostringstream out;
  archive.save_to(out);
  write_file_atomic(path, out.str());
}

}  // namespace qface::io
