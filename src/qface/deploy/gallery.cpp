#include "qface/deploy/gallery.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"

namespace qface::deploy {
namespace fs = std::filesystem;
using nlohmann::json;

json to_json(const IndexOptions& o) {
  return {{"type", o.type},     {"nlist", o.nlist},
          {"nprobe", o.nprobe}, {"hnsw_m", o.hnsw_m},
          {"ef_construction", o.ef_construction}, {"ef_search", o.ef_search}};
}

namespace {

// nlohmann's CBOR reader recurses once per nesting level, so a file of a
// million nested arrays overflows the stack; this SAX builds the same DOM and
// stops the parse beyond `kMaxDepth` levels (the thumbnails file has 4).
struct ShallowCbor : nlohmann::detail::json_sax_dom_parser<json> {
  static constexpr std::size_t kMaxDepth = 16;
  using Base = nlohmann::detail::json_sax_dom_parser<json>;
  using Base::Base;
  std::size_t depth = 0;
  bool start_object(std::size_t n) { return ++depth <= kMaxDepth && Base::start_object(n); }
  bool end_object() { return --depth, Base::end_object(); }
  bool start_array(std::size_t n) { return ++depth <= kMaxDepth && Base::start_array(n); }
  bool end_array() { return --depth, Base::end_array(); }
};

json parse_cbor(const std::string& bytes, const fs::path& path) {
  json j;
  ShallowCbor sax(j, /*allow_exceptions=*/true);
  require(json::sax_parse(bytes, &sax, json::input_format_t::cbor) && sax.depth <= ShallowCbor::kMaxDepth,
          "{}: CBOR nested deeper than {} levels", path.string(), ShallowCbor::kMaxDepth);
  return j;
}

}  // namespace

IndexOptions index_options_from_json(const json& j, const std::string& where) {
  IndexOptions o;
  try {
    o.type = j.at("type").get<std::string>();
    o.nlist = j.value("nlist", o.nlist);
    o.nprobe = j.value("nprobe", o.nprobe);
    o.hnsw_m = j.value("hnsw_m", o.hnsw_m);
    o.ef_construction = j.value("ef_construction", o.ef_construction);
    o.ef_search = j.value("ef_search", o.ef_search);
  } catch (const json::exception& e) {
    fail("{}: bad index options: {}", where, e.what());
  }
  return o;
}

namespace {

void check_options(const IndexOptions& o) {
  require(o.type == "flat" || o.type == "ivf" || o.type == "hnsw", "index type must be flat, ivf or hnsw, got '{}'",
          o.type);
  require(o.nlist >= 0 && o.nprobe > 0 && o.hnsw_m > 1 && o.ef_construction > 0 && o.ef_search > 0,
          "index options out of range: nlist {} nprobe {} hnsw_m {} ef_construction {} ef_search {}", o.nlist,
          o.nprobe, o.hnsw_m, o.ef_construction, o.ef_search);
}

}  // namespace

std::unique_ptr<faiss::Index> make_index(int64_t dim, const IndexOptions& o, const float* train, int64_t n_train) {
  check_options(o);
  try {
    if (o.type == "flat") {
      auto idx = std::make_unique<faiss::IndexIDMap2>(new faiss::IndexFlatIP(dim));
      idx->own_fields = true;
      return idx;
    }
    if (o.type == "hnsw") {
      auto* h = new faiss::IndexHNSWFlat(static_cast<int>(dim), o.hnsw_m, faiss::METRIC_INNER_PRODUCT);
      h->hnsw.efConstruction = o.ef_construction;
      auto idx = std::make_unique<faiss::IndexIDMap2>(h);
      idx->own_fields = true;
      return idx;
    }
    // ivf: native ids and removal (an IDMap wrapper would lose track of ids on removal).
    require(n_train > 0, "ivf index: needs training vectors");
    int64_t nlist = o.nlist;
    if (nlist == 0) nlist = std::clamp<int64_t>(std::llround(4 * std::sqrt(double(n_train))), 1, std::max<int64_t>(1, n_train / 39));
    require(nlist <= n_train, "ivf index: nlist {} needs at least as many vectors to train, got {}", nlist, n_train);
    auto* q = new faiss::IndexFlatIP(dim);
    auto idx = std::make_unique<faiss::IndexIVFFlat>(q, dim, static_cast<std::size_t>(nlist), faiss::METRIC_INNER_PRODUCT);
    idx->own_fields = true;
    idx->cp.seed = 1234;
    idx->verbose = false;
    idx->train(n_train, train);
    return idx;
  } catch (const faiss::FaissException& e) {
    fail("faiss: {}", e.what());
  }
}

void set_search_parameters(faiss::Index& index, const IndexOptions& o) {
  faiss::Index* inner = &index;
  if (auto* m = dynamic_cast<faiss::IndexIDMap*>(inner)) inner = m->index;
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(inner)) ivf->nprobe = static_cast<std::size_t>(o.nprobe);
  if (auto* h = dynamic_cast<faiss::IndexHNSW*>(inner)) h->hnsw.efSearch = o.ef_search;
}

Gallery Gallery::create(const fs::path& dir, int64_t dim, const IndexOptions& options, bool overwrite) {
  check_options(options);
  require(dim > 0, "gallery: embedding size must be positive");
  require(overwrite || !fs::exists(dir / "gallery.json"), "{}: a gallery exists here (use `search add`, or --overwrite)",
          dir.string());
  Gallery g;
  g.dir_ = dir;
  g.dim_ = dim;
  g.options_ = options;
  g.stale_ = true;
  if (fs::exists(dir / "gallery.json")) {  // keep the generation counter increasing
    try {
      g.generation_ = json::parse(read_file(dir / "gallery.json")).value("generation", int64_t{0});
    } catch (const json::exception&) {
    }
  }
  return g;
}

Gallery Gallery::open(const fs::path& dir) {
  const fs::path meta = dir / "gallery.json";
  require(fs::exists(meta), "{}: no gallery here (create one with `qface search build`)", dir.string());
  Gallery g;
  g.dir_ = dir;
  json j;
  try {
    j = json::parse(read_file(meta));
    require(j.value("kind", "") == "deploy.gallery", "{}: not a qface gallery (kind '{}')", meta.string(),
            j.value("kind", ""));
    g.dim_ = j.at("dim").get<int64_t>();
    g.next_id_ = j.at("next_id").get<int64_t>();
    g.generation_ = j.at("generation").get<int64_t>();
    g.options_ = index_options_from_json(j.at("index"), meta.string());
    for (const auto& e : j.at("identities")) {
      g.pos_[e.at("name").get<std::string>()] = g.size();
      g.id_pos_[e.at("id").get<int64_t>()] = g.size();
      g.names_.push_back(e.at("name").get<std::string>());
      g.ids_.push_back(e.at("id").get<int64_t>());
      g.images_.push_back(e.at("images").get<int64_t>());
    }
    // Galleries written before this field: take the training size as today's.
    g.trained_on_ = j.value("ivf_trained_on", g.options_.type == "ivf" ? g.size() : int64_t{0});
  } catch (const json::exception& e) {
    fail("{}: {}", meta.string(), e.what());
  }
  require(g.pos_.size() == g.names_.size() && g.id_pos_.size() == g.ids_.size(),
          "{}: duplicate identity names or ids", meta.string());
  const fs::path tpl = dir / fmt::format("templates-{}.npy", g.generation_);
  const fs::path idx = dir / fmt::format("index-{}.faiss", g.generation_);
  torch::Tensor t = read_npy(tpl);
  require(t.scalar_type() == torch::kFloat32 && t.dim() == 2 && t.size(0) == g.size() && t.size(1) == g.dim_,
          "{}: expected {} x {} float32 templates, got [{}]", tpl.string(), g.size(), g.dim_, fmt::join(t.sizes(), ", "));
  t = t.contiguous();
  g.sums_.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  require(fs::exists(idx), "{}: missing (gallery.json names generation {})", idx.string(), g.generation_);
  try {
    g.index_.reset(faiss::read_index(idx.string().c_str()));
  } catch (const faiss::FaissException& e) {
    fail("{}: not a faiss index: {}", idx.string(), e.what());
  }
  require(g.index_->d == g.dim_ && g.index_->ntotal == g.size(), "{}: index holds {} vectors of {} dims, expected {} x {}",
          idx.string(), g.index_->ntotal, g.index_->d, g.size(), g.dim_);
  set_search_parameters(*g.index_, g.options_);
  g.thumbs_.resize(g.names_.size());
  if (j.contains("thumbnails")) g.read_thumbnails(dir / j["thumbnails"].get<std::string>());
  return g;
}

void Gallery::read_thumbnails(const fs::path& path) {
  require(fs::exists(path), "{}: missing (gallery.json names it)", path.string());
  try {
    const std::string bytes = read_file(path);
    const json t = parse_cbor(bytes, path);
    require(t.value("kind", "") == "deploy.gallery.thumbnails", "{}: not gallery thumbnails (kind '{}')", path.string(),
            t.value("kind", ""));
    for (const auto& e : t.at("identities")) {
      const int64_t id = e.at("id").get<int64_t>();
      const auto it = id_pos_.find(id);
      require(it != id_pos_.end(), "{}: thumbnails of identity id {}, which gallery.json does not list", path.string(), id);
      const auto& norms = e.at("norms");
      const auto& jpegs = e.at("jpeg");
      require(norms.size() == jpegs.size() && norms.size() <= kMaxThumbnails,
              "{}: identity id {}: {} norms for {} JPEGs (at most {})", path.string(), id, norms.size(), jpegs.size(),
              kMaxThumbnails);
      auto& dst = thumbs_[static_cast<std::size_t>(it->second)];
      for (std::size_t k = 0; k < norms.size(); ++k) {
        const auto& b = jpegs[k].get_binary();
        dst.push_back({norms[k].get<float>(), std::string(b.begin(), b.end())});
      }
    }
  } catch (const json::exception& e) {
    fail("{}: {}", path.string(), e.what());
  }
}

void Gallery::set_search_options(int nprobe, int ef_search) {
  require(nprobe >= 0 && ef_search >= 0, "search: nprobe and ef_search must be positive (0: the saved value)");
  if (nprobe > 0) options_.nprobe = nprobe;
  if (ef_search > 0) options_.ef_search = ef_search;
  if (index_) set_search_parameters(*index_, options_);
}

int64_t Gallery::images(const std::string& name) const {
  auto it = pos_.find(name);
  return it == pos_.end() ? 0 : images_[static_cast<std::size_t>(it->second)];
}

const std::vector<Thumbnail>& Gallery::thumbnails(const std::string& name) const {
  static const std::vector<Thumbnail> none;
  auto it = pos_.find(name);
  return it == pos_.end() ? none : thumbs_[static_cast<std::size_t>(it->second)];
}

std::vector<float> Gallery::normalized(int64_t pos) const {
  const float* s = sums_.data() + pos * dim_;
  double n = 0;
  for (int64_t d = 0; d < dim_; ++d) n += double(s[d]) * s[d];
  const float inv = n > 0 ? static_cast<float>(1 / std::sqrt(n)) : 0.f;
  std::vector<float> v(static_cast<std::size_t>(dim_));
  for (int64_t d = 0; d < dim_; ++d) v[static_cast<std::size_t>(d)] = s[d] * inv;
  return v;
}

void Gallery::add(const std::string& name, const torch::Tensor& embeddings, const torch::Tensor& norms,
                  const std::vector<std::string>& thumbnails) {
  require(!name.empty(), "gallery: empty identity name");
  require(embeddings.dim() == 2 && embeddings.size(1) == dim_ && norms.numel() == embeddings.size(0),
          "gallery: '{}': expected N x {} embeddings and N norms, got [{}] and {}", name, dim_,
          fmt::join(embeddings.sizes(), ", "), norms.numel());
  require(thumbnails.empty() || static_cast<int64_t>(thumbnails.size()) == embeddings.size(0),
          "gallery: '{}': {} thumbnails for {} images", name, thumbnails.size(), embeddings.size(0));
  if (embeddings.size(0) == 0) return;
  // Norm-weighted sum: sum_i e_i * n_i (the raw features), fused with what is enrolled.
  torch::Tensor s = (embeddings.to(torch::kFloat32) * norms.to(torch::kFloat32).reshape({-1, 1})).sum(0).contiguous();
  const float* sp = s.data_ptr<float>();
  auto it = pos_.find(name);
  int64_t pos;
  if (it == pos_.end()) {
    pos = size();
    pos_[name] = pos;
    names_.push_back(name);
    ids_.push_back(next_id_);
    id_pos_[next_id_++] = pos;
    images_.push_back(0);
    thumbs_.emplace_back();
    sums_.insert(sums_.end(), sp, sp + dim_);
  } else {
    pos = it->second;
    float* dst = sums_.data() + pos * dim_;
    for (int64_t d = 0; d < dim_; ++d) dst[d] += sp[d];
    // The template changed: drop the old vector from the index.
    if (!stale_) {
      if (options_.type == "hnsw") stale_ = true;
      else index_->remove_ids(faiss::IDSelectorBatch(1, &ids_[static_cast<std::size_t>(pos)]));
    }
  }
  images_[static_cast<std::size_t>(pos)] += embeddings.size(0);
  auto& kept = thumbs_[static_cast<std::size_t>(pos)];
  const torch::Tensor n = norms.to(torch::kFloat32).contiguous();
  for (std::size_t i = 0; i < thumbnails.size(); ++i) kept.push_back({n.data_ptr<float>()[i], thumbnails[i]});
  std::stable_sort(kept.begin(), kept.end(), [](const Thumbnail& a, const Thumbnail& b) { return a.norm > b.norm; });
  if (kept.size() > kMaxThumbnails) kept.resize(kMaxThumbnails);
  if (!stale_) {
    const std::vector<float> v = normalized(pos);
    index_->add_with_ids(1, v.data(), &ids_[static_cast<std::size_t>(pos)]);
  }
}

bool Gallery::remove(const std::string& name) {
  auto it = pos_.find(name);
  if (it == pos_.end()) return false;
  const int64_t pos = it->second, last = size() - 1;
  const int64_t id = ids_[static_cast<std::size_t>(pos)];
  if (!stale_) {
    if (options_.type == "hnsw") stale_ = true;
    else index_->remove_ids(faiss::IDSelectorBatch(1, &id));
  }
  // Swap with the last identity, then drop the last slot.
  if (pos != last) {
    const auto p = static_cast<std::size_t>(pos), l = static_cast<std::size_t>(last);
    std::copy_n(sums_.begin() + last * dim_, dim_, sums_.begin() + pos * dim_);
    names_[p] = names_[l];
    ids_[p] = ids_[l];
    images_[p] = images_[l];
    thumbs_[p] = std::move(thumbs_[l]);
    pos_[names_[p]] = pos;
    id_pos_[ids_[p]] = pos;
  }
  pos_.erase(name);
  id_pos_.erase(id);
  names_.pop_back();
  ids_.pop_back();
  images_.pop_back();
  thumbs_.pop_back();
  sums_.resize(sums_.size() - static_cast<std::size_t>(dim_));
  return true;
}

void Gallery::rebuild() {
  std::vector<float> all(sums_.size());
  for (int64_t i = 0; i < size(); ++i) {
    const std::vector<float> v = normalized(i);
    std::copy(v.begin(), v.end(), all.begin() + i * dim_);
  }
  if (options_.type == "ivf")
    require(size() > 0, "{}: an ivf gallery needs identities to train on", dir_.string());
  index_ = make_index(dim_, options_, all.data(), size());
  trained_on_ = options_.type == "ivf" ? size() : 0;
  try {
    if (size() > 0) index_->add_with_ids(size(), all.data(), ids_.data());
  } catch (const faiss::FaissException& e) {
    fail("faiss: {}", e.what());
  }
  set_search_parameters(*index_, options_);
  stale_ = false;
}

std::vector<std::vector<Hit>> Gallery::query(const torch::Tensor& queries, int k) const {
  require(k > 0, "search: k must be positive, got {}", k);
  require(!stale_, "gallery: refresh() or save() before querying after changes");
  require(queries.dim() == 2 && queries.size(1) == dim_, "search: queries must be Q x {}, got [{}]", dim_,
          fmt::join(queries.sizes(), ", "));
  const int64_t nq = queries.size(0);
  std::vector<std::vector<Hit>> out(static_cast<std::size_t>(nq));
  if (size() == 0 || nq == 0) return out;
  torch::Tensor q = queries.to(torch::kFloat32).contiguous();
  std::vector<float> dist(static_cast<std::size_t>(nq * k));
  // faiss labels are int64_t: Index::idx_t in Debian 12's faiss, faiss::idx_t in 13's.
  std::vector<int64_t> lab(static_cast<std::size_t>(nq * k));
  index_->search(nq, q.data_ptr<float>(), k, dist.data(), lab.data());
  for (int64_t i = 0; i < nq; ++i)
    for (int j = 0; j < k; ++j) {
      const auto at = static_cast<std::size_t>(i * k + j);
      auto it = id_pos_.find(lab[at]);
      if (lab[at] < 0 || it == id_pos_.end()) continue;
      out[static_cast<std::size_t>(i)].push_back({names_[static_cast<std::size_t>(it->second)], dist[at]});
    }
  return out;
}

void Gallery::refresh() {
  if (stale_) rebuild();
}

bool Gallery::ivf_outgrown() const {
  return options_.type == "ivf" && !stale_ && trained_on_ > 0 && size() >= 2 * trained_on_;
}

void Gallery::save() {
  if (ivf_outgrown()) {
    spdlog::info("gallery: retraining the ivf index ({} identities, trained on {})", size(), trained_on_);
    stale_ = true;
  }
  if (stale_) rebuild();
  ensure_dir(dir_);
  const int64_t gen = generation_ + 1;
  faiss::VectorIOWriter w;
  try {
    faiss::write_index(index_.get(), &w);
  } catch (const faiss::FaissException& e) {
    fail("faiss: {}", e.what());
  }
  write_file_atomic(dir_ / fmt::format("index-{}.faiss", gen),
                    std::string_view(reinterpret_cast<const char*>(w.data.data()), w.data.size()));
  torch::Tensor t = torch::from_blob(sums_.data(), {size(), dim_}, torch::kFloat32);
  write_npy(dir_ / fmt::format("templates-{}.npy", gen), t);
  json ids = json::array(), thumbs = json::array();
  for (std::size_t i = 0; i < names_.size(); ++i) {
    ids.push_back({{"name", names_[i]}, {"id", ids_[i]}, {"images", images_[i]}});
    if (thumbs_[i].empty()) continue;
    json norms = json::array(), jpegs = json::array();
    for (const Thumbnail& t : thumbs_[i]) {
      norms.push_back(t.norm);
      jpegs.push_back(json::binary(std::vector<std::uint8_t>(t.jpeg.begin(), t.jpeg.end())));
    }
    thumbs.push_back({{"id", ids_[i]}, {"norms", norms}, {"jpeg", jpegs}});
  }
  json j{{"kind", "deploy.gallery"}, {"version", 1},           {"dim", dim_},
         {"generation", gen},        {"next_id", next_id_},     {"index", to_json(options_)},
         {"ivf_trained_on", trained_on_},
         {"fusion", "template = normalize(sum_i n_i e_i) over enrolled images (norm-weighted)"},
         {"identities", ids}};
  if (!thumbs.empty()) {
    const std::string file = fmt::format("thumbnails-{}.cbor", gen);
    const std::vector<std::uint8_t> cbor =
        json::to_cbor(json{{"kind", "deploy.gallery.thumbnails"}, {"format", "jpeg"}, {"identities", thumbs}});
    write_file_atomic(dir_ / file, std::string_view(reinterpret_cast<const char*>(cbor.data()), cbor.size()));
    j["thumbnails"] = file;
  }
  write_file_atomic(dir_ / "gallery.json", j.dump(1) + "\n");
  // The new generation is committed; the previous one's files can go.
  std::error_code ec;
  for (int64_t old = std::max<int64_t>(0, generation_ - 1); old <= generation_; ++old) {
    fs::remove(dir_ / fmt::format("index-{}.faiss", old), ec);
    fs::remove(dir_ / fmt::format("templates-{}.npy", old), ec);
    fs::remove(dir_ / fmt::format("thumbnails-{}.cbor", old), ec);
  }
  generation_ = gen;
}

}  // namespace qface::deploy
