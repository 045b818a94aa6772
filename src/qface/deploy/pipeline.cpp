#include "qface/deploy/pipeline.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <cstdlib>
#include <mutex>

#include "qface/core/error.h"
#include "qface/data/image.h"
#include "qface/infer/embed.h"
#include "qface/io/checkpoint.h"

namespace qface::deploy {

AlignMode parse_align_mode(const std::string& s) {
  if (s == "auto") return AlignMode::kAuto;
  if (s == "detect") return AlignMode::kDetect;
  if (s == "aligned") return AlignMode::kAligned;
  fail("align mode must be auto, detect or aligned, got '{}'", s);
}

Pipeline::Pipeline(PipelineOptions o) : options_(std::move(o)) {
  infer::LoadedModel m = infer::load_for_inference(
      {options_.arch, options_.weights, options_.random_weights, options_.precision, options_.threads, "model",
       options_.device});
  model_ = m.model;
  options_.arch = model_->arch();
  inference_ = m.options;
  precision_ = m.precision.precision;
  if (options_.quality_calibration.empty() && !options_.weights.empty()) {
    options_.quality_calibration = quality_calibration_beside(options_.weights);
    if (!options_.quality_calibration.empty())
      spdlog::info("model: quality calibration {} (beside the weights)", options_.quality_calibration.string());
  }
  if (!options_.quality_calibration.empty()) quality_cal_ = read_quality_calibration(options_.quality_calibration);
}

const FaceDetector& Pipeline::detector() const {
  std::call_once(detector_once_, [this] { detector_ = std::make_unique<FaceDetector>(options_.detector); });
  return *detector_;
}

std::optional<cv::Mat> Pipeline::crop(const cv::Mat& image, std::optional<Face>* face, int* faces) const {
  require(!image.empty() && image.type() == CV_8UC3, "crop: expected an 8-bit BGR image");
  const bool is_crop = image.rows == 112 && image.cols == 112;
  if (options_.align == AlignMode::kAligned || (options_.align == AlignMode::kAuto && is_crop)) {
    require(is_crop, "image is {}x{}, expected an aligned 112x112 crop (align mode 'aligned')", image.cols, image.rows);
    if (faces) *faces = 1;
    return image;
  }
  std::vector<Face> found = detector().detect(image);  // largest first
  if (faces) *faces = static_cast<int>(found.size());
  if (found.empty()) return std::nullopt;
  if (face) *face = found[0];
  return data::warp_face(image, found[0].landmarks);
}

std::pair<torch::Tensor, torch::Tensor> Pipeline::embed_crops(const std::vector<cv::Mat>& crops) const {
  if (crops.empty()) return {torch::zeros({0, dim()}), torch::zeros({0})};
  torch::Tensor x = infer::preprocess(crops, model_->preprocessing());
  const infer::InferenceOptions& io = inference_;
  std::lock_guard lock(model_mutex_);
  if (!options_.flip_fuse) {
    infer::Embeddings e = infer::embed(*model_, x, io);
    return {e.embeddings, e.norms};
  }
  // One pass over [x; flipped x]; the match embedding is fused, the quality stays the plain image's norm.
  const int64_t n = x.size(0);
  infer::Embeddings both = infer::embed(*model_, torch::cat({x, x.flip({3})}), io);
  infer::Embeddings plain{both.embeddings.slice(0, 0, n), both.norms.slice(0, 0, n)};
  infer::Embeddings fused = infer::fuse_flip(plain, {both.embeddings.slice(0, n), both.norms.slice(0, n)});
  return {fused.embeddings, plain.norms.contiguous()};
}

std::optional<double> Pipeline::quality(double norm) const {
  if (!quality_cal_) return std::nullopt;
  return quality_cal_->map(norm);
}

Probe Pipeline::probe(const cv::Mat& image) const {
  Probe p;
  std::optional<cv::Mat> c = crop(image, &p.face, &p.faces);
  if (!c) return p;
  p.found = true;
  p.crop = *c;
  auto [e, n] = embed_crops({p.crop});
  p.embedding = e[0].contiguous();
  p.norm = n[0].item<double>();
  p.quality = quality(p.norm);
  return p;
}

}  // namespace qface::deploy
