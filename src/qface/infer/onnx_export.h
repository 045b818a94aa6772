// ONNX export of a backbone (protobuf classes of Debian's libonnx-dev).
// The graph is written from the module structure, BatchNorm folded: input
// "input" [N, 3, 112, 112] (N dynamic), outputs "embedding" [N, D]
// (L2-normalized) and "norm" [N, 1]. Opset 11, operators that OpenCV's DNN
// module and ONNX Runtime both run.
#pragma once

#include <filesystem>

#include "qface/backbones/backbone.h"

namespace qface::infer {

// Folds the model's BatchNorm (in place) and writes the ONNX file atomically.
void export_onnx(backbones::BackboneImpl& model, const std::filesystem::path& out);

}  // namespace qface::infer
