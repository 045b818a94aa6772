#include "qface/io/tfjs_weights.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "qface/core/error.h"
#include "qface/core/fs.h"

namespace qface::io {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The largest tensor a manifest may declare (elements); the shards' real
// size is checked too, this only keeps the products of the shape in range.
constexpr int64_t kMaxElements = int64_t{1} << 32;
// TensorFlow.js writes shards of 4 MB by default; 1 GiB for a group's shards
// together bounds what a crafted manifest (one shard named many times) can
// make us read.
constexpr std::uintmax_t kMaxShardBytes = std::uintmax_t{1} << 30;

struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  int64_t elements = 1;
  std::string dtype;      // float32 | int32
  std::string code;       // storage: float32 | int32 | uint8 | uint16
  double scale = 1, min = 0;
};

int64_t code_bytes(const std::string& code) { return code == "uint8" ? 1 : code == "uint16" ? 2 : 4; }

Entry parse_entry(const json& w, const std::string& where) {
  require(w.is_object() && w.contains("name") && w["name"].is_string(), "{}: weight entry without a name", where);
  Entry e;
  e.name = w["name"].get<std::string>();
  const std::string at = fmt::format("{} ('{}')", where, e.name);
  require(w.contains("shape") && w["shape"].is_array(), "{}: no shape", at);
  for (const json& d : w["shape"]) {
    require(d.is_number_integer() && d.get<int64_t>() >= 0 && d.get<int64_t>() <= kMaxElements,
            "{}: bad dimension {}", at, d.dump());
    e.shape.push_back(d.get<int64_t>());
    e.elements *= e.shape.back();
    require(e.elements <= kMaxElements, "{}: shape too large", at);
  }
  e.dtype = w.value("dtype", std::string{});
  require(e.dtype == "float32" || e.dtype == "int32", "{}: dtype '{}' is not supported (float32, int32)", at, e.dtype);
  e.code = e.dtype;
  if (w.contains("quantization") && !w["quantization"].is_null()) {
    const json& q = w["quantization"];
    require(q.is_object(), "{}: quantization is not an object", at);
    e.code = q.value("dtype", std::string{});
    require(e.code == "uint8" || e.code == "uint16", "{}: quantization dtype '{}' is not supported (uint8, uint16)",
            at, e.code);
    require(q.contains("scale") && q["scale"].is_number() && q.contains("min") && q["min"].is_number(),
            "{}: quantization needs a scale and a min", at);
    e.scale = q["scale"].get<double>();
    e.min = q["min"].get<double>();
  }
  return e;
}

torch::Tensor decode(const Entry& e, const char* bytes) {
  auto out = torch::empty(e.shape, e.dtype == "float32" ? torch::kFloat32 : torch::kInt32);
  if (e.code == e.dtype) {
    std::memcpy(out.data_ptr(), bytes, static_cast<std::size_t>(e.elements) * 4);
    return out;
  }
  // value = q * scale + min, computed in float32 as TensorFlow.js does.
  const auto scale = static_cast<float>(e.scale), min = static_cast<float>(e.min);
  const auto* u8 = reinterpret_cast<const uint8_t*>(bytes);
  const bool wide = e.code == "uint16";
  auto q = [&](int64_t i) -> float {
    if (!wide) return u8[i];
    uint16_t v;
    std::memcpy(&v, bytes + 2 * i, 2);
    return v;
  };
  if (e.dtype == "float32") {
    float* o = out.data_ptr<float>();
    for (int64_t i = 0; i < e.elements; ++i) o[i] = q(i) * scale + min;
  } else {
    int32_t* o = out.data_ptr<int32_t>();
    for (int64_t i = 0; i < e.elements; ++i) o[i] = static_cast<int32_t>(std::lround(q(i) * scale + min));
  }
  return out;
}

}  // namespace

std::map<std::string, torch::Tensor> read_tfjs_weights(const fs::path& manifest) {
  json groups;
  try {
    groups = json::parse(read_file(manifest));
  } catch (const json::exception& e) {
    fail("{}: not a TensorFlow.js weights manifest: {}", manifest.string(), e.what());
  }
  require(groups.is_array() && !groups.empty(), "{}: expected a non-empty list of weight groups", manifest.string());
  std::map<std::string, torch::Tensor> out;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const std::string where = fmt::format("{}: group {}", manifest.string(), g);
    const json& group = groups[g];
    require(group.is_object() && group.contains("paths") && group["paths"].is_array() && group.contains("weights") &&
                group["weights"].is_array(),
            "{}: needs 'paths' and 'weights' lists", where);
    // The group's shards are one byte stream, in order.
    std::string bytes;
    for (const json& p : group["paths"]) {
      require(p.is_string(), "{}: a shard path is not a string", where);
      const fs::path rel = p.get<std::string>();
      require(!rel.is_absolute() && rel.lexically_normal().string().rfind("..", 0) != 0,
              "{}: shard path '{}' leaves the model folder", where, rel.string());
      const fs::path shard = manifest.parent_path() / rel;
      std::error_code ec;
      const auto size = fs::file_size(shard, ec);
      require(!ec, "{}: shard {} cannot be read: {}", where, shard.string(), ec.message());
      require(size <= kMaxShardBytes - bytes.size(), "{}: shard {} makes the group's shards more than {} bytes", where,
              shard.string(), kMaxShardBytes);
      bytes += read_file(shard);
    }
    std::size_t offset = 0;
    const json& weights = group["weights"];
    for (std::size_t k = 0; k < weights.size(); ++k) {
      const Entry e = parse_entry(weights[k], fmt::format("{}, weight {}", where, k));
      const auto need = static_cast<std::size_t>(e.elements * code_bytes(e.code));
      require(need <= bytes.size() - offset,
              "{}: weight '{}' needs bytes {}..{} but the group's shards hold {} bytes (truncated?)", where, e.name,
              offset, offset + need, bytes.size());
      require(out.count(e.name) == 0, "{}: weight '{}' appears twice", where, e.name);
      out.emplace(e.name, decode(e, bytes.data() + offset));
      offset += need;
    }
    require(offset == bytes.size(), "{}: the shards hold {} bytes, the manifest describes {}", where, bytes.size(),
            offset);
  }
  return out;
}

}  // namespace qface::io
