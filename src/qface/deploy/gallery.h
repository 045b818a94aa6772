// A persistent face gallery on faiss: one template per identity (the
// norm-weighted sum of its images' normalized embeddings, renormalized, so a
// low-quality image counts less; the flip fusion rule of docs/method.md, Flip
// fusion, applied across images), searched by inner product = cosine. Index
// kinds: exact `flat` (IndexFlatIP), `ivf` (IndexIVFFlat, inverted lists with
// native ids and removal) and `hnsw` (IndexHNSWFlat; faiss cannot remove from
// it, so removals and re-enrolments rebuild it from the stored templates).
//
// Each identity also keeps up to kMaxThumbnails small JPEGs of its enrolled
// crops (the highest-norm ones) for display; features enrolled without
// images have none.
//
// On disk (folder): gallery.json (identities, ids, options, generation),
// templates-<g>.npy (the unnormalized template sums, so later images fuse
// in), index-<g>.faiss and, when any identity has thumbnails,
// thumbnails-<g>.cbor (nlohmann's CBOR: per identity id, the norms and JPEG
// bytes). Every file is written atomically and gallery.json, written last,
// names the generation: a crash leaves the previous gallery. Galleries
// written before thumbnails existed load with none.
#pragma once

#include <faiss/Index.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace qface::deploy {

struct IndexOptions {
  std::string type = "flat";  // flat | ivf | hnsw
  int nlist = 0;              // ivf lists; 0: about 4 sqrt(n), at most n / 39, at (re)training time
  int nprobe = 32;            // ivf lists visited per query
  int hnsw_m = 32;            // hnsw links per node
  int ef_construction = 80;
  int ef_search = 128;
};

nlohmann::json to_json(const IndexOptions& o);
IndexOptions index_options_from_json(const nlohmann::json& j, const std::string& where);

// A new, empty inner-product index accepting add_with_ids; ivf is trained on
// `train` (n x dim row-major) when given. Used by the gallery and `qface bench search`.
std::unique_ptr<faiss::Index> make_index(int64_t dim, const IndexOptions& o, const float* train = nullptr,
                                         int64_t n_train = 0);
// Applies nprobe / efSearch to an index made by make_index (or read back).
void set_search_parameters(faiss::Index& index, const IndexOptions& o);

struct Hit {
  std::string name;
  float score = 0;  // cosine similarity
};

// An enrolled crop kept for display.
struct Thumbnail {
  float norm = 0;    // the image's feature norm (quality): the best ones are kept
  std::string jpeg;  // encoded JPEG bytes
};
inline constexpr std::size_t kMaxThumbnails = 3;  // per identity

class Gallery {
 public:
  // A new empty gallery in `dir` (created); an existing gallery there is an error unless `overwrite`.
  static Gallery create(const std::filesystem::path& dir, int64_t dim, const IndexOptions& options, bool overwrite);
  static Gallery open(const std::filesystem::path& dir);

  // Enrols `name` with N normalized embeddings and their norms (N x D, N),
  // fusing them into the identity's existing template if it has one.
  // `thumbnails`: none, or one JPEG per row; the identity keeps the
  // kMaxThumbnails of highest norm among its old and new ones.
  void add(const std::string& name, const torch::Tensor& embeddings, const torch::Tensor& norms,
           const std::vector<std::string>& thumbnails = {});
  // Removes an identity; false when it is not enrolled.
  bool remove(const std::string& name);
  // Top-k identities per query row (Q x D normalized), best first. Needs an
  // index that is up to date: after add() / remove(), call refresh() or save().
  std::vector<std::vector<Hit>> query(const torch::Tensor& queries, int k) const;
  // Brings the index up to date in memory (hnsw rebuild, ivf training) without
  // writing; a no-op when nothing changed. (query() stays const so that the
  // server can run queries under a shared lock.)
  void refresh();
  // Brings the index up to date (ivf training, hnsw rebuild) and writes the gallery atomically.
  void save();

  int64_t size() const { return static_cast<int64_t>(names_.size()); }
  int64_t dim() const { return dim_; }
  const IndexOptions& options() const { return options_; }
  // Query-time parameters (ivf nprobe, hnsw efSearch) for this session, not
  // saved; 0 keeps the gallery's saved value.
  void set_search_options(int nprobe, int ef_search);
  bool contains(const std::string& name) const { return pos_.count(name) > 0; }
  int64_t images(const std::string& name) const;
  // The identity's thumbnails, best first (empty when it has none or is not enrolled).
  const std::vector<Thumbnail>& thumbnails(const std::string& name) const;
  // Enrolled identities in storage order.
  const std::vector<std::string>& names() const { return names_; }
  // The generation save() wrote last (or open() read); 0 for a new gallery.
  int64_t generation() const { return generation_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Gallery() = default;
  std::vector<float> normalized(int64_t pos) const;
  void read_thumbnails(const std::filesystem::path& path);
  void rebuild();  // a fresh index from the templates (trains ivf)
  bool ivf_outgrown() const;

  std::filesystem::path dir_;
  int64_t dim_ = 0, next_id_ = 0, generation_ = 0;
  int64_t trained_on_ = 0;  // ivf: templates the coarse quantizer was trained on
  IndexOptions options_;
  std::vector<std::string> names_;
  std::vector<int64_t> ids_, images_;
  std::vector<float> sums_;  // size() x dim_ template sums
  std::vector<std::vector<Thumbnail>> thumbs_;  // per identity, best first
  std::unordered_map<std::string, int64_t> pos_;
  std::unordered_map<int64_t, int64_t> id_pos_;
  std::shared_ptr<faiss::Index> index_;
  bool stale_ = false;  // index must be rebuilt before use
};

}  // namespace qface::deploy
