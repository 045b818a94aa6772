// Torch checkpoints without Python.
//
// Reads what Python's torch.save writes — the zip container (PyTorch >= 1.6:
// <archive>/data.pkl + <archive>/data/<key>) and the legacy stream (magic
// number, protocol, sys info, object pickle, storage keys, raw storages) —
// with the tolerant unpickler of pickle.h, so files holding arbitrary Python
// objects next to the tensors (PyTorch Lightning's argparse.Namespace in
// `hyper_parameters`, optimizer state, ...) load. Tensors are materialized
// by name from their storages. The zip container is read by LibTorch's own
// caffe2::serialize::PyTorchStreamReader.
//
// qface's own checkpoints are LibTorch archives (torch::serialize, the format
// of torch::save): attributes `qface_format` (1), `arch` and `state_dict`
// (Dict[str, Tensor]).
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <filesystem>
#include <optional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "qface/io/pickle.h"

namespace qface::io {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The object tree of a Python torch.save file (zip or legacy); tensors are
// kOpaque values (see as_tensor). Throws qface::Error naming the file for
// anything unreadable: truncated, corrupt, not a torch file.
PyRef load_torch_pickle(const std::filesystem::path& path);

// The tensor a value holds, or an undefined tensor.
torch::Tensor as_tensor(const PyRef& value);

// The int8 activation calibration a quantized model file carries (`qface
// quantize`, infer/int8.h): per graph value the quint8 scale and zero point,
// and how it was made (JSON text: images, accuracy guard).
struct Int8Calibration {
  std::vector<double> scale;
  std::vector<int64_t> zero_point;
  int64_t fp32_from = -1;  // first graph step kept in fp32 (mixed precision); -1: none
  // Bias correction: the graph steps that carry a per-channel shift, in
  // order, and their shifts concatenated (infer::bias_correction). Their
  // channel counts are checked against the graph when the engine is built.
  std::vector<int64_t> bias_steps;
  std::vector<float> bias_shift;
  std::string info;
};

struct Checkpoint {
  NamedTensors tensors;  // every tensor of the state dict, in file order
  std::string arch;      // the architecture the file names, when it names one
  std::string format;    // "qface", "torch-zip", "torch-legacy"
  std::optional<Int8Calibration> int8;  // qface files from `qface quantize`
};

// Reads a checkpoint of any supported kind: qface's own, AdaFace's Lightning
// .ckpt (`state_dict` with `model.` / `head.` keys; `hyper_parameters.arch`),
// MagFace's .pth (`{epoch, arch, state_dict, optimizer}`), a plain state dict.
Checkpoint read_checkpoint(const std::filesystem::path& path);

struct LoadReport {
  std::string prefix;              // the key prefix that was stripped ("model.", "features.module.", ...)
  std::size_t loaded = 0;          // tensors copied (or handed) into the module
  std::vector<std::string> ignored;  // checkpoint keys outside that prefix (a head, optimizer entries)
  std::optional<Int8Calibration> int8;  // the file's int8 calibration, if it has one
};

// Copies `tensors` into the parameters and buffers of `module` (by name,
// converted to the module's dtype). The prefix is chosen among "", "model.",
// "module.", "module.features.", "features.module.", "features.",
// "backbone." as the one under which most of the module's names are found.
// Any missing key, unexpected key under that prefix, or shape difference
// throws one qface::Error listing them all (`source` names the file; `arch`
// the checkpoint's own architecture if known, as a hint). Nothing is changed
// when it throws. BatchNorm's num_batches_tracked may be absent (old files).
LoadReport load_state_dict(torch::nn::Module& module, const NamedTensors& tensors, const std::string& source,
                           const std::string& checkpoint_arch = "");

// The same, taking the tensors over: a parameter or buffer whose tensor has
// the module's dtype, a dense layout (contiguous or channels_last) and a
// storage of its own is given that storage instead of a copy (a 170 MB IR-50
// file is not copied twice).
// The tensors belong to the module afterwards.
LoadReport load_state_dict(torch::nn::Module& module, NamedTensors&& tensors, const std::string& source,
                           const std::string& checkpoint_arch = "");

// read_checkpoint + load_state_dict.
LoadReport load_weights(torch::nn::Module& module, const std::filesystem::path& path);

// Writes qface's own checkpoint (LibTorch archive) atomically, with an int8
// calibration when given (attributes int8_scale, int8_zero_point, int8_fp32_from, int8_info).
void save_checkpoint(const std::filesystem::path& path, const torch::nn::Module& module, const std::string& arch,
                     const Int8Calibration* int8 = nullptr);

}  // namespace qface::io
