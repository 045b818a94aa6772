// IJB-B / IJB-C template protocols (docs/method.md), from image features:
//  - templates: image features (normalized; optionally times the raw norm or
//    the detector score) averaged per media, summed per template, normalized;
//  - 1:1: cosine per template pair, exact ROC, TAR at FAR 1e-6 ... 1e-1;
//  - 1:N: gallery G1 and G2 against the probe templates, CMC top-1/5/10 over
//    mated probes, TPIR at FPIR 0.01 / 0.1 with the corrected protocol (mate
//    at rank 1 and above a threshold taken from the non-mated probes' top
//    scores, per gallery), then averaged over the galleries.
// Meta files of any prefix (ijbb_, ijbc_, synth_): *_face_tid_mid.txt,
// *_template_pair_label.txt, *_name_5pts_score.txt, *_1N_gallery_G1.csv,
// *_1N_gallery_G2.csv, *_1N_probe_mixed.csv. Hand-written (no library has
// these protocols); the hot loops are parallel (ATen's thread pool).
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "qface/eval/buffer.h"
#include "qface/eval/ijb_meta.h"
#include "qface/eval/probe_scan.h"
#include "qface/eval/roc.h"

namespace qface::eval {

// Template features: T x D normalized rows, and the id of each row.
struct Templates {
  std::vector<int64_t> ids;
  torch::Tensor features;  // T x D float32 contiguous
  std::unordered_map<int64_t, int64_t> index;  // id -> row
  int64_t row(int64_t id) const;               // -1 when absent
};

struct TemplateOptions {
  bool norm_weighted = false;      // use e * n (raw features) instead of e
  bool detector_weighted = false;  // multiply each image feature by its detector score
};

// Builds templates. image_rows[i] is the feature row of image i (features:
// N x D normalized; norms: N); template_id / media_id per image; weights
// optional per image (empty: 1).
Templates build_templates(const torch::Tensor& features, const torch::Tensor& norms,
                          const std::vector<int64_t>& image_rows, const std::vector<int64_t>& template_id,
                          const std::vector<int64_t>& media_id, const std::vector<float>& weights,
                          const TemplateOptions& options = {});

// Rows of many template ids at once (-1 where absent): a dense table when the
// id range is small (IJB ids are), a hash lookup otherwise; parallel.
Buffer<int32_t> template_rows(const Templates& templates, std::span<const int64_t> ids);

// Cosine score of each pair of template rows (r1[i], r2[i]); parallel, fp32.
Buffer<float> pair_scores(const torch::Tensor& template_features, std::span<const int32_t> r1,
                          std::span<const int32_t> r2);

struct IdentificationResult {
  std::string gallery;
  int64_t gallery_templates = 0, mated_probes = 0, nonmated_probes = 0;
  std::vector<std::pair<int, double>> cmc;                 // (k, top-k rate over mated probes)
  struct Point { double fpir, tpir, threshold; };
  std::vector<Point> tpir_at_fpir;
};

// TPIR at one FPIR over the probes `items` (all probes when empty; repeats
// allowed, as in a bootstrap draw): the threshold is threshold_at_fmr of the
// non-mated probes' top scores; a mated probe counts when its mate is at rank
// 1 and scores above it. NaN when the items hold no non-mated or no mated
// probe. `threshold` (optional) receives the threshold (NaN without non-mated probes).
double open_set_tpir(const ProbeOutcomes& o, double fpir, std::span<const int64_t> items = {},
                     double* threshold = nullptr);

// Whether `nonmated` non-mated probes resolve an FPIR: at least 1/FPIR of them.
inline bool fpir_resolved(int64_t nonmated, double fpir) {
  return static_cast<double>(nonmated) * fpir >= 1 - 1e-9;
}

// CMC top-k over mated probes and TPIR@FPIR from per-probe outcomes; TPIR
// (and its threshold) is NaN at an FPIR that fewer than 1/FPIR non-mated
// probes cannot resolve.
IdentificationResult summarize_identification(const ProbeOutcomes& o, int64_t gallery_templates,
                                              const std::vector<int>& ks = {1, 5, 10},
                                              const std::vector<double>& fpirs = {0.01, 0.1});

// One gallery: score_probes then summarize_identification.
IdentificationResult identify(const torch::Tensor& probe_features, const std::vector<int64_t>& probe_subject,
                              const torch::Tensor& gallery_features, const std::vector<int64_t>& gallery_subject,
                              const std::vector<int>& ks = {1, 5, 10}, const std::vector<double>& fpirs = {0.01, 0.1});

struct IjbResult {
  int64_t images = 0, templates = 0;
  std::optional<RocResult> verification;
  std::vector<IdentificationResult> identification;
  std::vector<std::pair<std::string, double>> timings;  // seconds per stage
};

struct IjbOptions {
  TemplateOptions templates;
  std::vector<double> fars = default_fars();
  bool verification = true, identification = true;
};

// Runs the protocols on image features matched to the meta by image name
// (files.txt base names, or paths relative to the image folder).
IjbResult evaluate_ijb(const IjbMeta& meta, const torch::Tensor& features, const torch::Tensor& norms,
                       const std::vector<std::string>& files, const IjbOptions& options = {});

nlohmann::json to_json(const IjbResult& r);

}  // namespace qface::eval
