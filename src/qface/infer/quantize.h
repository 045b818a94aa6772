// Post-training int8 quantization of a prepared (folded) backbone, judged on
// what the model is for: the embedding and its norm, the quality score.
// Activation ranges are calibrated on aligned faces (infer/int8.h); the
// accuracy guard (infer/precision.h) is checked on held-out ones, first all
// int8, then with the last one and two stages in fp32, keeping the first
// configuration that passes. With verification .bin sets, the 10-fold
// accuracy and TAR@FAR must stay within 0.3 points of fp32 and the EDC pAUC
// of the norm (the quality score's ranking of pairs) within 0.002.
// `qface quantize` is this plus reading images and writing the file.
#pragma once

#include <nlohmann/json.hpp>
#include <opencv2/core/mat.hpp>

#include <string>
#include <vector>

#include "qface/backbones/backbone.h"
#include "qface/data/bin_set.h"
#include "qface/infer/embed.h"
#include "qface/infer/int8.h"
#include "qface/infer/precision.h"

namespace qface::infer {

struct QuantizeOptions {
  int batch = 32;
  int fp32_stages = -1;  // -1: the fewest of 0, 1, 2 that pass the guard
  // Empirical bias correction (infer/int8.h, bias_correction) on the
  // calibration faces. Off by default: on the main job's trained models it
  // moved the worst image's norm error by -1.5 to +1 points and the mean
  // error up as often as down (docs/performance.md, int8).
  bool bias_correction = false;
  GuardLimits limits;
};

struct QuantizeAttempt {
  int fp32_stages = 0;
  int fp32_from = -1;  // Int8Engine's first fp32 step (-1: only the linear layer)
  BiasShift shift;     // this configuration's bias correction (empty: none)
  GuardResult guard;
};

struct QuantizeResult {
  std::vector<QParams> act;
  int64_t calibration_images = 0;
  std::vector<QuantizeAttempt> tried;  // in order; the last is the one kept
  const QuantizeAttempt& kept() const { return tried.back(); }
};

// `model` is prepared for inference (fp32, no engine) and is left with the
// kept configuration's Int8Engine installed. `calibrate` and `check` are
// aligned 112x112 BGR faces.
QuantizeResult quantize(backbones::BackboneImpl& model, const InferenceOptions& options,
                        const std::vector<cv::Mat>& calibrate, const std::vector<cv::Mat>& check,
                        const QuantizeOptions& o = {});

// fp32 against int8 (act, fp32_from) on one verification set: 10-fold
// accuracy, TAR@FAR and the EDC pAUC of the flip-fused norm; `passed` when
// accuracy and every TAR move at most 0.3 points and the pAUC at most
// `max_pauc_change`. Leaves the int8 engine installed.
struct BinComparison {
  nlohmann::json json;  // fp32, int8, the changes, passed
  bool passed = false;
  std::string failure;
};
BinComparison compare_on_bin(backbones::BackboneImpl& model, const InferenceOptions& options,
                             const std::vector<QParams>& act, int fp32_from, const BiasShift& shift,
                             const data::BinSet& set, const std::string& name, int batch,
                             double max_pauc_change = 0.002);

// Embeds aligned BGR faces in batches (no flip).
Embeddings embed_images(backbones::BackboneImpl& model, const std::vector<cv::Mat>& images, int batch,
                        const InferenceOptions& options);

}  // namespace qface::infer
