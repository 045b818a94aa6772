// qface.Gallery: the persistent faiss gallery of `qface search` (one fused
// template per identity; atomic generations on disk).
#include <pybind11/stl.h>
#include <torch/torch.h>

#include "bindings.h"
#include "convert.h"
#include "qface/core/error.h"
#include "qface/deploy/gallery.h"
#include "qface/eval/features.h"

namespace qface::py {

void bind_gallery(pyb::module_& m) {
  using deploy::Gallery;
  pyb::class_<Gallery>(m, "Gallery", R"(A persistent face gallery on faiss, the one `qface search` and `qface serve` use.

Gallery.create(dir, dim, index="flat") or Gallery.open(dir); add(name,
embeddings, norms) fuses images into the identity's template
normalize(sum n_i e_i); search(queries, k) -> per query a list of (name,
cosine); save() writes a new generation atomically and updates the index:
search after add / remove needs a save() first (qface.Error otherwise).)")
      .def_static(
          "create",
          [](const std::string& dir, int64_t dim, const std::string& index, bool overwrite) {
            deploy::IndexOptions o;
            o.type = index;
            return Gallery::create(dir, dim, o, overwrite);
          },
          pyb::arg("dir"), pyb::arg("dim") = 512, pyb::arg("index") = "flat", pyb::arg("overwrite") = false,
          "A new empty gallery in `dir` (index: flat, ivf or hnsw).")
      .def_static("open", [](const std::string& dir) { return Gallery::open(dir); }, pyb::arg("dir"),
                  "Opens the gallery saved in `dir`.")
      .def(
          "add",
          [](Gallery& g, const std::string& name, const pyb::object& embeddings, const pyb::object& norms) {
            pyb::object k1, k2;
            torch::Tensor e = float_tensor(embeddings, "embeddings", 0, k1), n = float_tensor(norms, "norms", 0, k2);
            if (e.dim() == 1) e = e.reshape({1, -1});
            n = n.reshape({-1});
            require(e.size(0) == n.size(0), "add: {} embeddings but {} norms", e.size(0), n.size(0));
            e = eval::l2_normalize(e);
            g.add(name, e, n);
          },
          pyb::arg("name"), pyb::arg("embeddings"), pyb::arg("norms"),
          "Enrols images of `name` (N x D or D embeddings, N norms), fused into its template.")
      .def("remove", &Gallery::remove, pyb::arg("name"), "Removes an identity; False when it is not enrolled.")
      .def(
          "search",
          [](Gallery& g, const pyb::object& queries, int k) {
            g.refresh();  // enrolments since the last save() are searched too
            pyb::object keep;
            torch::Tensor q = float_tensor(queries, "queries", 0, keep);
            if (q.dim() == 1) q = q.reshape({1, -1});
            q = eval::l2_normalize(q);
            std::vector<std::vector<deploy::Hit>> hits;
            {
              pyb::gil_scoped_release release;
              hits = g.query(q, k);
            }
            pyb::list out;
            for (const auto& row : hits) {
              pyb::list r;
              for (const auto& h : row) r.append(pyb::make_tuple(h.name, h.score));
              out.append(r);
            }
            return out;
          },
          pyb::arg("queries"), pyb::arg("k") = 5, "Top-k identities per query row, best first: [[(name, cosine), ...], ...]. Identities added "
          "since the last save() are searched too (the index is refreshed in memory; save() writes it).")
      .def("save", &Gallery::save, "Writes a new generation atomically (the previous one stays until it is complete).")
      .def("__len__", &Gallery::size)
      .def("__contains__", &Gallery::contains)
      .def_property_readonly("names", &Gallery::names, "enrolled identities in storage order")
      .def_property_readonly("dim", &Gallery::dim)
      .def("images", &Gallery::images, pyb::arg("name"), "how many images `name` was enrolled from");
}

}  // namespace qface::py
