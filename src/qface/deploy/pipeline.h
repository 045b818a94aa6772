// From a photo to an embedding: decode, align (a 112x112 input is taken as an
// aligned crop; anything else goes through the dlib detector and the largest
// face is aligned), embed with a backbone (optionally flip-fused), and read the
// quality (the raw feature norm of the image itself, also when the match
// embedding is flip-fused, so that it matches a calibration made from plain
// `qface embed` features; optionally mapped to [0, 1] by that calibration;
// docs/method.md, Flip fusion and Margin heads). Shared by
// `qface verify/quality/search` and `qface serve`.
// Thread-safe: the detector is created once on first use; forward passes are
// serialized by a mutex (LibTorch parallelizes inside each one).
#pragma once

#include <opencv2/core.hpp>
#include <torch/types.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qface/backbones/backbone.h"
#include "qface/deploy/align.h"
#include "qface/deploy/calibration.h"
#include "qface/deploy/request.h"
#include "qface/infer/precision.h"

namespace qface::deploy {

enum class AlignMode { kAuto, kDetect, kAligned };
AlignMode parse_align_mode(const std::string& s);  // auto | detect | aligned

struct PipelineOptions {
  std::string arch;                 // empty: the one the weights file records
  std::filesystem::path weights;  // required unless random_weights
  bool random_weights = false;    // no checkpoint: random weights, for tests and benchmarks only
  bool flip_fuse = true;
  int threads = 0;
  AlignMode align = AlignMode::kAuto;
  DetectorOptions detector;
  std::filesystem::path quality_calibration;  // optional: norm -> [0, 1]; empty: the one beside the weights, if any
  infer::Precision precision = infer::Precision::kFp32;
  std::string device = "cpu";  // where the backbone runs (cpu, cuda, cuda:N); detection stays on the CPU
};

// One image's result. `found` is false when no face was detected (then the
// other fields are empty).
struct Probe {
  bool found = false;
  std::optional<Face> face;     // set when the face was detected
  int faces = 0;                // faces in the image (1 for an aligned crop); the largest is used
  cv::Mat crop;                 // 112x112 BGR
  torch::Tensor embedding;      // D float32, L2-normalized
  double norm = 0;              // raw feature norm of the image (quality proxy)
  std::optional<double> quality;  // calibrated [0, 1] when a calibration is loaded
};

// data::decode_image (encoded bytes to BGR, with a pixel limit) is in data/image.h.

class Pipeline {
 public:
  explicit Pipeline(PipelineOptions options);

  // The aligned crop of the largest face (per the align mode); nullopt when
  // none. `faces`: how many the image has (1 for an aligned crop).
  std::optional<cv::Mat> crop(const cv::Mat& image, std::optional<Face>* face = nullptr, int* faces = nullptr) const;
  // Embeds aligned 112x112 crops: N x D normalized (flip-fused per options)
  // embeddings and the N plain feature norms (quality).
  std::pair<torch::Tensor, torch::Tensor> embed_crops(const std::vector<cv::Mat>& crops) const;
  // crop + embed + quality.
  Probe probe(const cv::Mat& image) const;

  std::optional<double> quality(double norm) const;
  bool has_quality_calibration() const { return quality_cal_.has_value(); }
  int64_t dim() const { return model_->embedding_size(); }
  infer::Precision precision() const { return precision_; }
  const PipelineOptions& options() const { return options_; }

 private:
  const FaceDetector& detector() const;

  PipelineOptions options_;
  backbones::Backbone model_;
  infer::InferenceOptions inference_;  // the precision's options (bf16)
  infer::Precision precision_ = infer::Precision::kFp32;  // as applied (auto resolved)
  std::optional<QualityCalibration> quality_cal_;
  mutable std::mutex model_mutex_;
  mutable std::once_flag detector_once_;
  mutable std::unique_ptr<FaceDetector> detector_;
};

}  // namespace qface::deploy
