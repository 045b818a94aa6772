#include <nlohmann/json.hpp>

#include <cmath>
#include <map>
#include <unordered_map>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/eval/quality.h"

namespace qface::eval {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::optional<double> entry_quality(const json& v) {
  if (v.is_object()) {
    for (const char* k : {"quality", "gt_quality", "q"})
      if (v.contains(k) && v[k].is_number()) return v[k].get<double>();
  }
  return std::nullopt;
}

struct Index {
  std::unordered_map<std::string, double> by_key;              // file-like keys
  std::map<std::string, std::vector<std::optional<double>>> lists;  // parent key -> per position
};

void walk(const json& v, const std::string& key, Index& idx) {
  if (auto q = entry_quality(v)) {
    if (!key.empty()) idx.by_key.emplace(key, *q);
    for (const char* k : {"file", "path", "image", "name", "key", "filename"})
      if (v.contains(k) && v[k].is_string()) idx.by_key.emplace(v[k].get<std::string>(), *q);
  }
  if (v.is_object()) {
    // An object whose values are entries keyed "0", "1", ... also counts as a list.
    for (auto& [k, child] : v.items()) walk(child, key.empty() ? k : key + "/" + k, idx);
    bool numeric = !v.empty();
    for (auto& [k, child] : v.items())
      numeric = numeric && !k.empty() && k.find_first_not_of("0123456789") == std::string::npos;
    if (numeric && !key.empty()) {
      std::vector<std::optional<double>> list;
      for (auto& [k, child] : v.items()) {
        const size_t i = std::stoul(k);
        if (list.size() <= i) list.resize(i + 1);
        list[i] = child.is_number() ? std::optional<double>(child.get<double>()) : entry_quality(child);
      }
      idx.lists[key] = std::move(list);
    }
  } else if (v.is_array()) {
    std::vector<std::optional<double>> list(v.size());
    // Entries carrying an integer "index" are placed by it (qface synth writes one).
    bool indexed = !v.empty();
    for (const auto& x : v)
      indexed = indexed && x.is_object() && x.contains("index") && x["index"].is_number_integer() &&
                x["index"].get<int64_t>() >= 0 && x["index"].get<int64_t>() < static_cast<int64_t>(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      walk(v[i], key + "[" + std::to_string(i) + "]", idx);
      const size_t at = indexed ? static_cast<size_t>(v[i]["index"].get<int64_t>()) : i;
      list[at] = v[i].is_number() ? std::optional<double>(v[i].get<double>()) : entry_quality(v[i]);
    }
    if (!key.empty()) idx.lists[key] = std::move(list);
  }
}

}  // namespace

std::vector<double> ground_truth_quality(const fs::path& manifest, const std::string& bin,
                                         const std::vector<std::string>& files, int64_t count) {
  json j;
  try {
    j = json::parse(read_file(manifest));
  } catch (const json::exception& e) {
    fail("{}: not valid JSON ({})", manifest.string(), e.what());
  }
  Index idx;
  walk(j, "", idx);
  std::vector<double> out(count, std::nan(""));
  if (!bin.empty()) {
    const std::string name = fs::path(bin).filename().string(), stem = fs::path(bin).stem().string();
    const std::vector<std::optional<double>>* list = nullptr;
    for (const auto& [k, l] : idx.lists) {
      const std::string last = k.substr(k.rfind('/') == std::string::npos ? 0 : k.rfind('/') + 1);
      if ((last == name || last == stem) && static_cast<int64_t>(l.size()) == count) list = &l;
    }
    if (!list) {
      // A list nested under a key like "images" inside the set's object.
      for (const auto& [k, l] : idx.lists)
        if (static_cast<int64_t>(l.size()) == count && (k.rfind(stem + "/", 0) == 0 || k.find("/" + stem + "/") != std::string::npos))
          list = &l;
    }
    if (list) {
      for (int64_t i = 0; i < count; ++i) {
        require((*list)[i].has_value(), "{}: no quality for {} image {}", manifest.string(), name, i);
        out[i] = *(*list)[i];
      }
      return out;
    }
    // Entries keyed like "val_low.bin:12", "val_low/12", "val_low.bin/12".
    for (int64_t i = 0; i < count; ++i) {
      const std::string n = std::to_string(i);
      for (const std::string& k : {name + ":" + n, stem + ":" + n, name + "/" + n, stem + "/" + n, stem + "_" + n}) {
        auto it = idx.by_key.find(k);
        if (it != idx.by_key.end()) {
          out[i] = it->second;
          break;
        }
      }
      require(std::isfinite(out[i]), "{}: no ground-truth quality for {} image {} (expected a list named '{}')",
              manifest.string(), name, i, stem);
    }
    return out;
  }
  require(static_cast<int64_t>(files.size()) == count, "ground truth: {} files for {} rows", files.size(), count);
  // Suffix matching by base name: collect keys by base name.
  std::unordered_multimap<std::string, std::pair<std::string, double>> by_base;
  for (const auto& [k, q] : idx.by_key) by_base.emplace(fs::path(k).filename().string(), std::pair{k, q});
  for (int64_t i = 0; i < count; ++i) {
    const std::string& f = files[i];
    auto it = idx.by_key.find(f);
    if (it != idx.by_key.end()) {
      out[i] = it->second;
      continue;
    }
    const std::string base = fs::path(f).filename().string();
    auto [b, e] = by_base.equal_range(base);
    int matches = 0;
    double best = std::nan("");
    size_t best_len = 0;
    for (auto x = b; x != e; ++x) {
      const std::string& k = x->second.first;
      // k must be a suffix of f (or f of k) at a path boundary.
      const bool suffix = (f.size() >= k.size() && f.compare(f.size() - k.size(), k.size(), k) == 0) ||
                          (k.size() >= f.size() && k.compare(k.size() - f.size(), f.size(), f) == 0);
      if (!suffix) continue;
      if (k.size() > best_len || matches == 0) {
        best = x->second.second;
        best_len = k.size();
      }
      ++matches;
    }
    require(matches > 0, "{}: no ground-truth quality for '{}' (files.txt line {})", manifest.string(), f, i + 1);
    out[i] = best;
  }
  return out;
}

}  // namespace qface::eval
