// qface.eval: the evaluation protocols on numpy features, returning plain
// dicts with the same numbers (and keys) as the CLI's JSON.
#include <pybind11/stl.h>
#include <torch/torch.h>

#include "bindings.h"
#include "convert.h"
#include "qface/core/error.h"
#include "qface/core/tensor_util.h"
#include "qface/eval/cluster.h"
#include "qface/eval/features.h"
#include "qface/eval/ijb.h"
#include "qface/eval/ijb_meta.h"
#include "qface/eval/quality.h"
#include "qface/eval/rank.h"
#include "qface/eval/verify.h"

namespace qface::py {
namespace {

// N x D float32 rows, renormalized as the CLI's feature loader does
// (eval::unit_rows), so the numbers are the CLI's exactly.
torch::Tensor rows(const pyb::handle& a, const std::string& what, pyb::object& keep) {
  torch::Tensor t = float_tensor(a, what, 2, keep);
  require(t.size(0) > 0, "{}: no rows", what);
  return eval::unit_rows(t, what);
}

std::vector<double> doubles(const pyb::handle& a, const std::string& what, int64_t n) {
  auto arr = pyb::array_t<double, pyb::array::c_style | pyb::array::forcecast>::ensure(numpy_view(a));
  require(static_cast<bool>(arr) && arr.ndim() == 1 && arr.shape(0) == n, "{}: expected {} values", what, n);
  return {arr.data(), arr.data() + n};
}

}  // namespace

void bind_eval(pyb::module_ m) {
  m.def(
      "verify",
      [](const pyb::object& embeddings, const pyb::object& issame, int folds) {
        pyb::object keep;
        torch::Tensor e = rows(embeddings, "embeddings", keep);
        const std::vector<uint8_t> same = flags_from_numpy(issame, "issame");
        require(e.size(0) == 2 * static_cast<int64_t>(same.size()), "embeddings: {} rows for {} pairs (rows 2i, 2i+1)",
                e.size(0), same.size());
        eval::VerifyOptions o;
        o.folds = folds;
        nlohmann::json j;
        {
          pyb::gil_scoped_release release;
          j = eval::to_json(eval::verify_embeddings(e, same, o));
        }
        return to_python(j);
      },
      pyb::arg("embeddings"), pyb::arg("issame"), pyb::arg("folds") = 10,
      R"(The 10-fold 1:1 protocol (docs/method.md) on a .bin set's embeddings.

embeddings: 2P x D (pair i is rows 2i, 2i+1); issame: P booleans. Returns the
dict `qface eval verify` writes per set and mode: accuracy_mean / _std over
folds, best_threshold_mean (squared L2, as InsightFace's protocol) and
best_threshold_cosine_mean (the same as a cosine, 1 - d / 2), fold_accuracy,
tar_at_far_folds (TAR@FAR where every fold's impostors resolve it), roc, ...)");

  m.def(
      "fuse_flip",
      [](const pyb::object& e, const pyb::object& n, const pyb::object& ef, const pyb::object& nf) {
        pyb::object k1, k2, k3, k4;
        auto [fe, fn] = qface::fuse_flip(float_tensor(e, "embeddings", 2, k1), float_tensor(n, "norms", 1, k2),
                                         float_tensor(ef, "flipped", 2, k3), float_tensor(nf, "flipped_norms", 1, k4));
        return pyb::make_tuple(like_input(to_numpy(fe), e), like_input(to_numpy(fn), e));
      },
      pyb::arg("embeddings"), pyb::arg("norms"), pyb::arg("flipped"), pyb::arg("flipped_norms"),
      "AdaFace's flip fusion (docs/method.md): f = e n + e_f n_f; returns (f / |f|, |f|) "
      "(torch tensors for torch input).");

  m.def(
      "rank",
      [](const pyb::object& probe, const std::vector<std::string>& probe_labels, const pyb::object& gallery,
         const std::vector<std::string>& gallery_labels, const pyb::object& distractors, const std::vector<int>& ks) {
        pyb::object k1, k2, k3;
        torch::Tensor p = rows(probe, "probe", k1), g = rows(gallery, "gallery", k2), d;
        if (!distractors.is_none()) d = rows(distractors, "distractors", k3);
        nlohmann::json j;
        {
          pyb::gil_scoped_release release;
          j = eval::to_json(eval::rank_identification(p, probe_labels, g, gallery_labels, d, ks));
        }
        return to_python(j);
      },
      pyb::arg("probe"), pyb::arg("probe_labels"), pyb::arg("gallery"), pyb::arg("gallery_labels"),
      pyb::arg("distractors") = pyb::none(), pyb::arg("ks") = std::vector<int>{1, 5, 20},
      "TinyFace-style rank-k identification: probes against gallery + distractors (as `qface eval rank`).");

  m.def(
      "cluster",
      [](const pyb::object& embeddings, const pyb::object& labels, int k, float threshold, const pyb::object& quality) {
        pyb::object keep;
        torch::Tensor e = rows(embeddings, "embeddings", keep);
        eval::ClusterOptions o;
        o.k = k;
        o.threshold = threshold;
        std::vector<double> q;
        if (!quality.is_none()) {
          q = doubles(quality, "quality", e.size(0));
          o.quality_ordered = true;
        }
        std::vector<int64_t> truth;
        if (!labels.is_none()) {
          auto arr = pyb::array_t<int64_t, pyb::array::c_style | pyb::array::forcecast>::ensure(labels);
          require(static_cast<bool>(arr) && arr.ndim() == 1 && arr.shape(0) == e.size(0), "labels: expected {} integers",
                  e.size(0));
          truth.assign(arr.data(), arr.data() + e.size(0));
        }
        std::vector<int64_t> pred;
        nlohmann::json metrics = nullptr;
        {
          pyb::gil_scoped_release release;
          pred = eval::cluster_knn(e, o, q);
          if (!truth.empty()) metrics = eval::to_json(eval::cluster_metrics(pred, truth));
        }
        pyb::dict d;
        d["labels"] = pyb::array_t<int64_t>(static_cast<pyb::ssize_t>(pred.size()), pred.data());
        d["metrics"] = to_python(metrics);
        return d;
      },
      pyb::arg("embeddings"), pyb::arg("labels") = pyb::none(), pyb::arg("k") = 20, pyb::arg("threshold") = 0.5f,
      pyb::arg("quality") = pyb::none(),
      R"(k-NN graph clustering (faiss), as `qface eval cluster`.

With `quality` (one value per row, e.g. the norms) the quality-ordered
variant runs (low quality never bridges clusters). Returns {"labels": cluster
id per row, "metrics": pairwise / BCubed F and NMI against `labels`, or None}.)");

  m.def(
      "edc",
      [](const pyb::object& embeddings, const pyb::object& issame, const pyb::object& quality, double fmr, double limit) {
        pyb::object keep;
        torch::Tensor e = rows(embeddings, "embeddings", keep);
        const std::vector<uint8_t> same = flags_from_numpy(issame, "issame");
        require(e.size(0) == 2 * static_cast<int64_t>(same.size()), "embeddings: {} rows for {} pairs", e.size(0),
                same.size());
        const std::vector<double> q = doubles(quality, "quality", e.size(0));
        nlohmann::json j;
        {
          pyb::gil_scoped_release release;
          const eval::Comparisons c = eval::pair_comparisons(e, same);
          j = eval::to_json(eval::edc(c, eval::pair_quality(c, q), fmr, limit));
        }
        return to_python(j);
      },
      pyb::arg("embeddings"), pyb::arg("issame"), pyb::arg("quality"), pyb::arg("fmr") = 1e-3, pyb::arg("limit") = 0.2,
      R"(Error-versus-discard characteristic of a per-image quality score on .bin pairs.

Pair quality is the lower of the two images'; returns the dict `qface eval
quality` writes per score under "edc" (discard, fnmr, pauc up to `limit`, ...).)");

  m.def(
      "ijb",
      [](const std::string& meta_dir, const pyb::object& embeddings, const pyb::object& norms,
         const std::vector<std::string>& files, bool norm_score) {
        pyb::object k1, k2;
        torch::Tensor e = rows(embeddings, "embeddings", k1), n = float_tensor(norms, "norms", 1, k2);
        eval::IjbOptions o;
        o.templates.norm_weighted = norm_score;
        nlohmann::json j;
        {
          pyb::gil_scoped_release release;
          j = eval::to_json(eval::evaluate_ijb(eval::load_ijb_meta(meta_dir), e, n, files, o));
        }
        return to_python(j);
      },
      pyb::arg("meta_dir"), pyb::arg("embeddings"), pyb::arg("norms"), pyb::arg("files"), pyb::arg("norm_score") = false,
      "IJB-B/C 1:1 (TAR@FAR) and 1:N (CMC, TPIR@FPIR) from the meta folder and per-image features, as `qface eval ijb`.");
}

}  // namespace qface::py
