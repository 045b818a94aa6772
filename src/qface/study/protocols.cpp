#include "qface/study/protocols.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/tensor_util.h"
#include "qface/data/bin_set.h"
#include "qface/data/recordio.h"
#include "qface/eval/rank.h"
#include "qface/eval/roc.h"
#include "qface/infer/embed.h"
#include "qface/io/checkpoint.h"
#include "qface/study/model_eval.h"
#include "qface/study/stage.h"
#include "qface/train/checkpoint.h"

namespace qface::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// "<label>_<n>.jpg" -> "<label>".
std::string label_of(const fs::path& file) {
  const std::string stem = file.stem().string();
  const auto cut = stem.find('_');
  require(cut != std::string::npos && cut > 0, "{}: file name is not <label>_<n>", file.string());
  return stem.substr(0, cut);
}

// The .jpg files of a folder in name order, encoded, with the file names'
// labels ("<label>_<n>.jpg").
struct Labelled {
  std::vector<std::string> images, labels;
};
Labelled read_labelled(const fs::path& dir) {
  require(fs::is_directory(dir), "{}: folder missing", dir.string());
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".jpg") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  Labelled out;
  for (const fs::path& f : files) {
    out.labels.push_back(label_of(f));
    out.images.push_back(read_file(f));
  }
  return out;
}

std::vector<int64_t> class_indices(const std::vector<std::string>& labels, const fs::path& dir) {
  std::vector<int64_t> out;
  for (const std::string& l : labels) {
    require(!l.empty() && l.size() < 18 && std::all_of(l.begin(), l.end(), [](char c) { return c >= '0' && c <= '9'; }),
            "{}: label '{}' is not a class index", dir.string(), l);
    out.push_back(std::stoll(l));
  }
  return out;
}

std::string far_key(double far) { return fmt::format("{:g}", far); }

// The identity-free records of train.rec named by the manifest
// (train.records[k].identity_free), at most kTrainTailSample of them spread
// evenly over the records, their images read by record key.
void load_train_tail(const fs::path& dir, TailSet& t) {
  const json m = json::parse(read_file(dir / "manifest.json"));
  if (!m.contains("train") || !m["train"].contains("records")) return;
  std::vector<std::pair<uint64_t, int64_t>> flagged, wanted;  // key, label
  for (const json& r : m["train"]["records"])
    if (r.value("identity_free", false)) flagged.push_back({r.at("key").get<uint64_t>(), r.at("label").get<int64_t>()});
  if (flagged.empty()) return;
  // Records are grouped by class: an even stride samples every class alike.
  const std::size_t stride = (flagged.size() + kTrainTailSample - 1) / kTrainTailSample;
  for (std::size_t i = 0; i < flagged.size(); i += stride) wanted.push_back(flagged[i]);
  const data::FaceRecordSet rec(dir / "train.rec");
  std::unordered_map<uint64_t, std::size_t> index;
  for (std::size_t i = 0; i < rec.num_images(); ++i) index[rec.image_key(i)] = i;
  for (const auto& [key, label] : wanted) {
    const auto it = index.find(key);
    require(it != index.end(), "{}: record {} of the manifest is not in train.rec", (dir / "manifest.json").string(),
            key);
    data::FaceRecordSet::Image img = rec.read_image(it->second);
    require(img.label == label, "{}: record {} has label {}, the manifest says {}", (dir / "train.rec").string(), key,
            img.label, label);
    t.train_free.push_back(std::move(img.encoded));
    t.train_free_label.push_back(label);
  }
}

}  // namespace

ProtocolData load_protocol_data(const fs::path& dir) {
  ProtocolData d;
  if (fs::exists(dir / "val_cross.bin")) {
    CrossSet c;
    data::BinSet set = data::read_bin_set(dir / "val_cross.bin");
    c.images = std::move(set.images);
    c.issame = std::move(set.issame);
    const fs::path side = dir / "val_cross.json";
    const json ids = json::parse(read_file(side)).at("identity");
    require(ids.size() == c.issame.size(), "{}: {} identity entries for {} pairs", side.string(), ids.size(),
            c.issame.size());
    for (const json& p : ids) {
      c.identity.push_back(p.at(0).get<int64_t>());
      c.identity.push_back(p.at(1).get<int64_t>());
    }
    d.cross = std::move(c);
  }
  if (fs::exists(dir / "tinyface" / "probe")) {
    GallerySet g;
    Labelled probe = read_labelled(dir / "tinyface" / "probe"), gallery = read_labelled(dir / "tinyface" / "gallery");
    g.probe = std::move(probe.images);
    g.probe_label = std::move(probe.labels);
    g.gallery = std::move(gallery.images);
    g.gallery_label = std::move(gallery.labels);
    if (fs::exists(dir / "tinyface" / "distractor")) g.distractor = read_labelled(dir / "tinyface" / "distractor").images;
    require(!g.probe.empty() && !g.gallery.empty(), "{}: TinyFace-style set without probes or gallery",
            (dir / "tinyface").string());
    d.tinyface = std::move(g);
  }
  if (fs::exists(dir / "tail_probe" / "free")) {
    TailSet t;
    Labelled free = read_labelled(dir / "tail_probe" / "free"), ordinary = read_labelled(dir / "tail_probe" / "ordinary");
    t.free_label = class_indices(free.labels, dir / "tail_probe" / "free");
    t.ordinary_label = class_indices(ordinary.labels, dir / "tail_probe" / "ordinary");
    t.free = std::move(free.images);
    t.ordinary = std::move(ordinary.images);
    load_train_tail(dir, t);
    d.tail = std::move(t);
  }
  return d;
}

json ProtocolEval::to_json() const {
  return {{"cross_score", cross_score},     {"cross", cross},
          {"tinyface_rank", tinyface_rank}, {"tinyface", tinyface},
          {"tail_free_hit", tail_free_hit}, {"tail_ordinary_hit", tail_ordinary_hit},
          {"tail_train_hit", tail_train_hit}, {"tail", tail}};
}

ProtocolEval ProtocolEval::from_json(const json& j) {
  ProtocolEval p;
  p.cross_score = j.at("cross_score").get<std::vector<double>>();
  p.cross = j.at("cross");
  p.tinyface_rank = j.at("tinyface_rank").get<std::vector<double>>();
  p.tinyface = j.at("tinyface");
  p.tail_free_hit = j.at("tail_free_hit").get<std::vector<double>>();
  p.tail_ordinary_hit = j.at("tail_ordinary_hit").get<std::vector<double>>();
  p.tail_train_hit = j.at("tail_train_hit").get<std::vector<double>>();
  p.tail = j.at("tail");
  return p;
}

double tar_at_far(const std::vector<double>& score, const std::vector<uint8_t>& genuine, double far,
                  std::span<const int64_t> items) {
  // Both kinds at float precision, as the cosines were computed and as
  // threshold_at_fmr compares them.
  std::vector<float> impostors, mates;
  auto take = [&](std::size_t p) {
    if (genuine[p]) mates.push_back(static_cast<float>(score[p]));
    else impostors.push_back(static_cast<float>(score[p]));
  };
  if (items.empty())
    for (std::size_t p = 0; p < score.size(); ++p) take(p);
  else
    for (int64_t p : items) take(static_cast<std::size_t>(p));
  if (mates.empty() || static_cast<double>(impostors.size()) * far < 1.0) return std::nan("");
  const double t = eval::threshold_at_fmr(std::move(impostors), far);
  const auto accepted = std::count_if(mates.begin(), mates.end(), [&](float s) { return s > t; });
  return static_cast<double>(accepted) / static_cast<double>(mates.size());
}

eval::Interval tar_difference(const std::vector<double>& a, const std::vector<double>& b,
                              const std::vector<uint8_t>& genuine, const std::vector<int64_t>& pair_identity,
                              double far, const eval::BootstrapOptions& o) {
  require(a.size() == b.size() && a.size() == genuine.size() && a.size() == pair_identity.size(),
          "tar difference: {} / {} scores, {} labels, {} identities", a.size(), b.size(), genuine.size(),
          pair_identity.size());
  return eval::cluster_bootstrap(pair_identity, [&](std::span<const int64_t> draw) {
    return tar_at_far(a, genuine, far, draw) - tar_at_far(b, genuine, far, draw);
  }, o);
}

torch::Tensor class_centres(const fs::path& run_dir) {
  const std::vector<fs::path> ckpts = train::list_checkpoints(run_dir / "checkpoints", 0, false);
  if (ckpts.empty()) return {};
  const fs::path& newest = ckpts.back();
  try {
    (void)io::load_torch_pickle(newest);  // qface's checked reader first, as train::load_checkpoint
    torch::serialize::InputArchive archive, head;
    archive.load_from(newest.string());
    archive.read("head", head);
    torch::Tensor kernel;
    head.read("kernel", kernel);
    return kernel.detach().to(torch::kFloat32);
  } catch (const qface::Error&) {
    throw;
  } catch (const std::exception& e) {
    fail("{}: cannot read the head's class centres: {}", newest.string(), e.what());
  }
}

namespace {

// Rank-1 hits of `emb` [N, D] (normalized) against the class centres [D, C].
std::vector<double> rank1_hits(const torch::Tensor& emb, const torch::Tensor& centres,
                               const std::vector<int64_t>& labels) {
  if (labels.empty()) return {};
  torch::Tensor w = torch::nn::functional::normalize(centres, torch::nn::functional::NormalizeFuncOptions().dim(0));
  const torch::Tensor best = torch::mm(emb.to(torch::kFloat32), w).argmax(1);
  std::vector<double> hit(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    require(labels[i] >= 0 && labels[i] < centres.size(1), "tail probe: label {} outside the head's {} classes",
            labels[i], centres.size(1));
    hit[i] = best[static_cast<int64_t>(i)].item<int64_t>() == labels[i] ? 1.0 : 0.0;
  }
  return hit;
}

double mean_of(const std::vector<double>& v) {
  if (v.empty()) return std::nan("");
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

ProtocolEval evaluate_protocols(const fs::path& model_path, const std::string& name, const ProtocolData& data,
                                const fs::path& data_dir, const EvalSettings& settings, const torch::Tensor& centres,
                                const fs::path& eval_dir) {
  const fs::path cache = eval_dir / "protocols_eval.json";
  const std::string fp = fingerprint(json{{"model", file_fingerprint(model_path)},
                                          {"settings", settings.to_json()},
                                          {"data", file_fingerprint(data_dir / "manifest.json")},
                                          {"centres", centres.defined() ? centres.sum().item<double>() : 0.0},
                                          {"version", 1}});
  if (has_fingerprint(cache, fp)) {
    spdlog::info("demo: {} already evaluated on the cross-quality and identification protocols", name);
    return ProtocolEval::from_json(json::parse(read_file(cache)).at("eval"));
  }
  ensure_dir(eval_dir);
  infer::InferenceOptions io;
  auto net = load_for_eval(model_path, settings, io);
  auto embed = [&](const std::vector<std::string>& images, const std::string& source) {
    return infer::embed_encoded(*net, images, source, settings.batch, io, false).plain;
  };
  ProtocolEval r;
  if (data.cross) {
    spdlog::info("demo: evaluating {} on val_cross ({} pairs, low-quality probe vs high-quality reference)", name,
                 data.cross->issame.size());
    const infer::Embeddings e = embed(data.cross->images, (data_dir / "val_cross.bin").string());
    const torch::Tensor probe = e.embeddings.slice(0, 0, e.embeddings.size(0), 2);
    const torch::Tensor ref = e.embeddings.slice(0, 1, e.embeddings.size(0), 2);
    r.cross_score = to_vector((probe * ref).sum(1));
    int64_t impostors = 0;
    for (uint8_t g : data.cross->issame) impostors += g ? 0 : 1;
    r.cross = {{"pairs", data.cross->issame.size()}, {"impostors", impostors}};
    for (double far : kCrossFars) {
      const double tar = tar_at_far(r.cross_score, data.cross->issame, far);
      r.cross["tar"][far_key(far)] = std::isfinite(tar) ? json(tar) : json();
    }
  }
  if (data.tinyface) {
    const GallerySet& g = *data.tinyface;
    spdlog::info("demo: evaluating {} on the TinyFace-style set ({} probes, {} gallery, {} distractors)", name,
                 g.probe.size(), g.gallery.size(), g.distractor.size());
    const std::string src = (data_dir / "tinyface").string();
    const infer::Embeddings p = embed(g.probe, src), ga = embed(g.gallery, src);
    torch::Tensor dis = g.distractor.empty() ? torch::Tensor() : embed(g.distractor, src).embeddings;
    const eval::RankResult rr = eval::rank_identification(p.embeddings, g.probe_label, ga.embeddings, g.gallery_label,
                                                          dis, {1, 5, 20});
    r.tinyface = eval::to_json(rr);
    r.tinyface_rank.assign(rr.probe_rank.begin(), rr.probe_rank.end());
  }
  if (data.tail && centres.defined()) {
    const TailSet& t = *data.tail;
    spdlog::info("demo: identifying {} identity-free and {} ordinary held-out images with {}'s class centres",
                 t.free.size(), t.ordinary.size(), name);
    const std::string src = (data_dir / "tail_probe").string();
    r.tail_free_hit = rank1_hits(embed(t.free, src).embeddings, centres, t.free_label);
    r.tail_ordinary_hit = rank1_hits(embed(t.ordinary, src).embeddings, centres, t.ordinary_label);
    if (!t.train_free.empty())
      r.tail_train_hit = rank1_hits(embed(t.train_free, (data_dir / "train.rec").string()).embeddings, centres,
                                    t.train_free_label);
    r.tail = {{"classes", centres.size(1)},
              {"chance", 1.0 / static_cast<double>(centres.size(1))},
              {"free", t.free.size()},
              {"ordinary", t.ordinary.size()},
              {"train_free", t.train_free.size()},
              {"free_rank1", mean_of(r.tail_free_hit)},
              {"ordinary_rank1", mean_of(r.tail_ordinary_hit)},
              {"train_free_rank1", mean_of(r.tail_train_hit)}};
  }
  write_file_atomic(cache, json{{"fingerprint", fp}, {"eval", r.to_json()}}.dump() + "\n");
  return r;
}

}  // namespace qface::study
