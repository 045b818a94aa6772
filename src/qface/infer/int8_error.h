// Where int8 moves the norm (the quality score): each quantized graph value's
// own share of the error, measured by rounding that value alone to its quint8
// grid (quantize then dequantize) in an otherwise fp32 run of the graph. The
// values whose rounding moves the norm most are where finer ranges (or fp32)
// pay; `qface quantize --error-by-value FILE` writes this table.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

#include "qface/backbones/graph.h"
#include "qface/infer/int8.h"

namespace qface::infer {

// What the engine quantizes: the outputs of convolutions, BatchNorms, PReLUs,
// adds and fp32 gates, except the first layer's input and the embedding.
// (A subsample keeps its input's grid; the linear's output stays fp32.)
bool quantized_value(const backbones::Graph& graph, int value);

struct ValueNormError {
  int value = 0;
  std::string op;           // the step that makes it: conv, bn, prelu, add, float
  std::string shape;        // C x H x W
  double max_norm_error = 0;   // over the images, |n - n_fp32| / n_fp32
  double mean_norm_error = 0;
  double min_cosine = 1;    // of the raw embeddings, to fp32
};

// `x`: preprocessed N x 3 x 112 x 112 faces. Each quantized value rounded alone.
std::vector<ValueNormError> norm_error_by_value(const backbones::Graph& graph, const std::vector<QParams>& act,
                                                const torch::Tensor& x);
// The listed values rounded together, in one run.
ValueNormError norm_error_of(const backbones::Graph& graph, const std::vector<QParams>& act, const torch::Tensor& x,
                             const std::vector<int>& values);

// The whole table as JSON: "values" (each alone, with its scale and zero
// point), "stages" (each stage's values together; stages as stage_starts
// finds them) and "all" (every quantized value: int8's activation rounding
// without its weight rounding).
nlohmann::json int8_error_report(const backbones::Graph& graph, const std::vector<QParams>& act, const torch::Tensor& x);

}  // namespace qface::infer
