// IJB-S-style surveillance identification (AdaFace's Surveillance-to-Single,
// -to-Booking and -to-Surveillance tasks) from per-frame features.
//
// Layout of a meta folder (docs/ijbs.md; `qface synth` writes one in DIR/ijbs):
//   templates.csv   TEMPLATE_ID,SUBJECT_ID,FILENAME,MEDIA   one row per image or
//                   frame; FILENAME relative to the folder; MEDIA single|booking|video
//   surveillance_to_single.csv, surveillance_to_booking.csv,
//   surveillance_to_surveillance.csv
//                   PROBE_TEMPLATE_ID,GALLERY_TEMPLATE_IDS   one row per probe,
//                   its gallery's template ids separated by ';'
// A probe whose subject is not among its row's gallery templates is non-mated
// (open set).
//
// Per protocol: templates fused from their frames (mean, norm-weighted or
// top-K by norm), each probe scored (cosine) against its own gallery, then
// closed-set CMC rank-k over the mated probes and open-set TPIR@FPIR over all
// probes, with score_probes (eval/probe_scan.h) and the IJB 1:N functions of
// eval/ijb.h (summarize_identification, open_set_tpir: the mate at rank 1 and above the
// threshold taken from the non-mated probes' top scores). Probes sharing one
// gallery list are scored with one GEMM. Per-probe outcomes are kept for
// paired bootstraps between models or fusions.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include "qface/eval/bootstrap.h"
#include "qface/eval/ijb.h"

namespace qface::eval {

enum class IjbsMedia : uint8_t { kSingle, kBooking, kVideo };
const char* media_name(IjbsMedia m);

// The protocol files, in report order.
inline constexpr std::array<const char*, 3> kIjbsProtocols = {
    "surveillance_to_single", "surveillance_to_booking", "surveillance_to_surveillance"};

struct IjbsProtocol {
  std::string name;  // e.g. "surveillance_to_single"
  std::filesystem::path file;
  std::vector<int64_t> probe;    // probe template id per row
  std::vector<int64_t> line;     // the row's line in `file`
  std::vector<int32_t> gallery;  // per row: index into `galleries`
  std::vector<std::vector<int64_t>> galleries;  // distinct gallery lists, in file order
};

struct IjbsMeta {
  std::filesystem::path dir;
  std::filesystem::path templates_file;
  // templates.csv, one entry per row.
  std::vector<std::string> files;
  std::vector<int64_t> template_id, subject_id, line;
  std::vector<IjbsMedia> media;
  // Per template id.
  std::unordered_map<int64_t, int64_t> subject_of;
  std::unordered_map<int64_t, IjbsMedia> media_of;
  std::vector<IjbsProtocol> protocols;  // the files present, in kIjbsProtocols order
};

// Reads templates.csv and the protocol files present (at least one). Every
// malformed line is a one-line qface::Error naming the file and the line.
IjbsMeta load_ijbs_meta(const std::filesystem::path& dir);

// How frames become a template (then L2-normalized):
//  mean   plain average of the normalized frame features;
//  norm   each frame weighted by its feature norm (quality-aware);
//  topk   average of the K frames with the highest norm (all when fewer).
struct Fusion {
  enum class Kind { kMean, kNorm, kTopK } kind = Kind::kMean;
  int k = 0;
  std::string name() const;  // "mean", "norm", "topk:K"
};
Fusion parse_fusion(const std::string& text);  // throws qface::Error naming the accepted forms

// Templates from frame features: features N x D normalized rows, norms N;
// rows[i] is the feature row of entry i, template_id[i] its template.
Templates fuse_templates(const torch::Tensor& features, const torch::Tensor& norms, const std::vector<int64_t>& rows,
                         const std::vector<int64_t>& template_id, const Fusion& fusion);

// Feature row of every templates.csv row: files.txt entries matched by equal
// path or path suffix on '/' boundaries (files.txt may hold "DIR/ijbs/images/x.jpg"
// for FILENAME "images/x.jpg", or "x.jpg"), ambiguity and absence are errors.
std::vector<int64_t> match_files(const IjbsMeta& meta, const std::vector<std::string>& files);

struct IjbsProtocolResult {
  std::string protocol;
  IdentificationResult summary;  // CMC, TPIR@FPIR, probe counts; gallery_templates = distinct gallery templates
  // Per probe row, in protocol-file order (the same for every model / fusion on one meta folder).
  std::vector<int64_t> probe_template, probe_subject;
  ProbeOutcomes outcomes;
  // Per mated probe, in row order: 1 when its mate is within rank k, else 0.
  std::vector<double> hits_at_rank(int k) const;
  // Per mated probe, in row order: 1 when it counts towards TPIR at `fpir`
  // (mate at rank 1 and above the threshold of this result's non-mated probes).
  std::vector<double> open_set_hits(double fpir) const;
};

struct IjbsResult {
  int64_t frames = 0, templates = 0;
  std::string fusion;
  std::vector<IjbsProtocolResult> protocols;
  std::vector<std::pair<std::string, double>> timings;  // seconds per stage
  const IjbsProtocolResult* find(const std::string& protocol) const;  // nullptr when absent
};

struct IjbsOptions {
  Fusion fusion;
  std::vector<int> ks{1, 5, 10};
  std::vector<double> fpirs{0.01, 0.1};
};

// Runs every protocol of `meta` on frame features (features N x D normalized,
// norms N, files: files.txt of the features folder).
IjbsResult evaluate_ijbs(const IjbsMeta& meta, const torch::Tensor& features, const torch::Tensor& norms,
                         const std::vector<std::string>& files, const IjbsOptions& options = {});

// JSON of a result (the body of kind "eval.ijbs"); per_probe adds each
// protocol's per-probe arrays (template, subject, mated, rank, top_score, mate_score).
nlohmann::json to_json(const IjbsResult& r, bool per_probe = false);

// Reads back what to_json(r, true) wrote (a cache): the per-probe arrays are
// required, the summaries recomputed from them with `options`' ks and fpirs.
IjbsResult ijbs_result_from_json(const nlohmann::json& j, const IjbsOptions& options = {});

// Paired bootstrap intervals of A - B on one protocol (two models, or two
// fusions, on the same meta folder: the probes must be the same rows):
//  rank-k identification rate, resampling the mated probes
//  (paired_mean_difference of hits_at_rank(k));
//  TPIR at `fpir`, resampling all probes, the threshold re-estimated from each
//  draw's non-mated probes (open_set_tpir on the draw).
Interval paired_rank_difference(const IjbsProtocolResult& a, const IjbsProtocolResult& b, int k,
                                const BootstrapOptions& options = {});
Interval paired_tpir_difference(const IjbsProtocolResult& a, const IjbsProtocolResult& b, double fpir,
                                const BootstrapOptions& options = {});

}  // namespace qface::eval
