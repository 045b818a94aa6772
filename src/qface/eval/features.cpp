#include "qface/eval/features.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <charconv>
#include <iostream>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"

namespace qface::eval {
namespace fs = std::filesystem;

Features make_features(torch::Tensor embeddings, torch::Tensor norms, std::vector<std::string> files) {
  require(embeddings.defined() && embeddings.dim() == 2, "features: embeddings must be N x D");
  Features f;
  f.embeddings = embeddings.to(torch::kFloat32).contiguous();
  const int64_t n = f.embeddings.size(0);
  if (!norms.defined()) norms = torch::ones({n});
  require(norms.dim() == 1 && norms.size(0) == n, "features: {} norms for {} embeddings", norms.numel(), n);
  f.norms = norms.to(torch::kFloat32).contiguous();
  if (files.empty())
    for (int64_t i = 0; i < n; ++i) files.push_back(std::to_string(i));
  require(static_cast<int64_t>(files.size()) == n, "features: {} file names for {} embeddings", files.size(), n);
  f.files = std::move(files);
  return f;
}

Features load_features(const fs::path& dir) {
  require(fs::is_directory(dir), "{}: features folder not found", dir.string());
  const fs::path emb_path = dir / "embeddings.npy", norm_path = dir / "norms.npy", files_path = dir / "files.txt";
  require(fs::exists(emb_path), "{}: missing (a features folder holds embeddings.npy, norms.npy, files.txt)",
          emb_path.string());
  require(fs::exists(files_path), "{}: missing (one image path per embedding row)", files_path.string());
  torch::Tensor emb = read_npy(emb_path);
  require(emb.dim() == 2, "{}: expected an N x D array, got {} dimensions", emb_path.string(), emb.dim());
  require(emb.scalar_type() == torch::kFloat32 || emb.scalar_type() == torch::kFloat64,
          "{}: expected float32, got {}", emb_path.string(), c10::toString(emb.scalar_type()));
  const int64_t n = emb.size(0);
  torch::Tensor norms;
  if (fs::exists(norm_path)) {
    norms = read_npy(norm_path);
    if (norms.dim() == 2 && norms.size(1) == 1) norms = norms.reshape({-1});
    require(norms.dim() == 1, "{}: expected a 1-d array of N norms, got {} dimensions", norm_path.string(),
            norms.dim());
    require(norms.size(0) == n, "{}: {} norms but {} has {} rows", norm_path.string(), norms.size(0),
            emb_path.string(), n);
  } else {
    spdlog::warn("{}: no norms.npy, using norm 1 for every row", dir.string());
  }
  std::vector<std::string> files = read_lines(files_path);
  while (!files.empty() && files.back().empty()) files.pop_back();
  require(static_cast<int64_t>(files.size()) == n, "{}: {} lines but {} has {} rows", files_path.string(),
          files.size(), emb_path.string(), n);
  for (size_t i = 0; i < files.size(); ++i)
    require(!files[i].empty(), "{}:{}: empty file name", files_path.string(), i + 1);
  Features f = make_features(emb, norms, std::move(files));
  f.dir = dir;
  if (const fs::path meta = dir / "features.json"; fs::exists(meta)) {
    try {
      f.mode = nlohmann::json::parse(read_file(meta)).at("mode").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      fail("{}: {}", meta.string(), e.what());
    }
    require(f.mode == "plain" || f.mode == "flip_fused", "{}: mode '{}' is neither 'plain' nor 'flip_fused'",
            meta.string(), f.mode);
  }
  f.embeddings = unit_rows(f.embeddings, emb_path.string());
  return f;
}

torch::Tensor unit_rows(const torch::Tensor& x, const std::string& what) {
  const double worst = x.size(0) ? (x.norm(2, 1) - 1).abs().max().item<double>() : 0.0;
  require(std::isfinite(worst), "{}: embeddings contain NaN or Inf", what);
  if (worst <= 1e-3) return x;
  spdlog::warn("{}: rows are not L2-normalized (max |norm-1| = {:.3g}); normalizing", what, worst);
  return l2_normalize(x);
}

torch::Tensor l2_normalize(const torch::Tensor& x) {
  torch::Tensor y = x.to(torch::kFloat32);
  return (y / y.norm(2, -1, true).clamp_min(1e-12)).contiguous();
}

std::string label_from_name(const std::string& path) {
  std::string stem = fs::path(path).stem().string();
  size_t us = stem.find('_');
  return us == std::string::npos ? stem : stem.substr(0, us);
}

std::string features_name(const fs::path& dir) {
  fs::path p = dir.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  const std::string text = j.dump(2) + "\n";
  if (path.empty() || path == "-") {
    std::cout << text;
    return;
  }
  if (path.has_parent_path()) ensure_dir(path.parent_path());
  write_file_atomic(path, text);
}

}  // namespace qface::eval
