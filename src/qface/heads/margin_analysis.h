// Margin versus feature norm: the analysis behind the AdaFace paper's central
// figure. Runs one head on given raw embeddings, labels and class centres, and
// reports the loss, each sample's norm and margin terms, the head's updated
// buffers and the gradients w.r.t. the raw embeddings and the kernel.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>

#include "qface/heads/factory.h"

namespace qface::heads {

struct MarginResult {
  nlohmann::json report;        // loss, ce, [reg], norm, per-head terms, [batch_mean, batch_std] (AdaFace), [t] (CurricularFace)
  torch::Tensor d_embeddings;   // [N, D] d loss / d raw embeddings
  torch::Tensor d_kernel;       // [D, C] d loss / d kernel
};

// raw_embeddings [N, D] float32 (unnormalized), labels [N] int64 in [0, C),
// kernel [D, C] float32. The config's embedding size and class count are taken
// from the kernel. Throws qface::Error on inconsistent shapes.
MarginResult analyze_margin(const torch::Tensor& raw_embeddings, const torch::Tensor& labels,
                            const torch::Tensor& kernel, heads::HeadConfig config);

// An SVG chart of the margin terms against the feature norm.
std::string plot_margin(const nlohmann::json& report);

}  // namespace qface::heads
