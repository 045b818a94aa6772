// Precomputed features (the layout `qface embed` writes) and small helpers
// shared by every `qface eval` verb: loading with validation, labels taken
// from file names, atomic JSON output. (.bin sets: data::read_bin_set.)
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "qface/core/tensor_util.h"  // fuse_flip
#include "qface/core/text.h"  // split_fields, parse_int, read_lines: used with the readers here

namespace qface::eval {

// A features folder: embeddings.npy (N x D float32, L2-normalized rows),
// norms.npy (N float32 raw norms, optional: absent means all 1), files.txt
// (N lines, the image each row came from) and features.json (optional:
// {"mode": "plain" | "flip_fused"}; absent means plain).
struct Features {
  std::filesystem::path dir;
  // "flip_fused": each row already fused with its flipped image's (docs/method.md, Flip fusion)
  std::string mode = "plain";
  torch::Tensor embeddings;  // N x D float32, contiguous
  torch::Tensor norms;       // N float32
  std::vector<std::string> files;
  int64_t size() const { return embeddings.size(0); }
  int64_t dim() const { return embeddings.size(1); }
};

// Loads and validates a features folder; every count mismatch, wrong shape or
// dtype is a qface::Error naming the file.
Features load_features(const std::filesystem::path& dir);

// Builds a Features value from tensors (tests, the training loop); checks shapes.
Features make_features(torch::Tensor embeddings, torch::Tensor norms, std::vector<std::string> files);

// L2-normalizes rows (float32).
torch::Tensor l2_normalize(const torch::Tensor& x);

// Embeddings that should already be unit rows: returned as they are when
// every row's norm is within 1e-3 of 1, else renormalized with a warning
// naming `what`; NaN or Inf is a qface::Error naming it.
torch::Tensor unit_rows(const torch::Tensor& x, const std::string& what);

// Identity label of a TinyFace-style file name: the base name's prefix before
// the first '_' ("gallery/0042_3.jpg" -> "0042"). The whole stem when there is no '_'.
std::string label_from_name(const std::string& path);

// A features folder's name (its last component): the default run name of reports.
std::string features_name(const std::filesystem::path& dir);

// Writes pretty JSON atomically; "-" or empty path prints to stdout.
void write_json(const std::filesystem::path& path, const nlohmann::json& j);

}  // namespace qface::eval
