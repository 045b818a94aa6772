// Toy embeddings with a known quality, for demonstrating the margin heads
// before a trained network exists: each sample's direction leans towards its
// class centre and its raw norm grows with its quality, as the AdaFace and
// MagFace papers observe for trained networks.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace qface::heads {

struct ToyEmbeddings {
  torch::Tensor embeddings;  // [N, D] float32, raw (unnormalized)
  torch::Tensor labels;      // [N] int64
  torch::Tensor kernel;      // [D, C] float32, unit columns (the class centres)
  torch::Tensor quality;     // [N] float32 in (0, 1]
};

// Quality follows a web-crawl-like distribution: mostly high with a long low
// tail (q = 1 - 0.9 u^3, u ~ U(0, 1)). The direction is q * centre + (1 - q) *
// noise (renormalized); the norm is 8 + 42 q + N(0, 2), at least 1.
ToyEmbeddings make_toy_embeddings(int64_t n, int64_t dim, int64_t classes, uint64_t seed);

}  // namespace qface::heads
