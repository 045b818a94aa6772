// TensorFlow.js weight files without TensorFlow: a `*-weights_manifest.json`
// (a list of groups, each naming its binary shards in `paths` and its
// tensors in `weights` with name, shape, dtype and optional `quantization`)
// and the shards it names, read in manifest order as one byte stream.
// Quantized tensors are stored as uint8 / uint16 codes q with a per-tensor
// affine map (value = q * scale + min); float16 quantization is refused.
// Every size comes from the manifest and is checked against the shards
// before a byte is read.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>

namespace qface::io {

// name -> tensor (float32 for float weights, int32 for int32 ones), shaped as
// the manifest says (TensorFlow layout: conv filters are [kh, kw, in, out],
// depthwise filters [kh, kw, channels, multiplier]). Throws qface::Error
// naming the manifest or shard and the entry or byte position.
std::map<std::string, torch::Tensor> read_tfjs_weights(const std::filesystem::path& manifest);

}  // namespace qface::io
