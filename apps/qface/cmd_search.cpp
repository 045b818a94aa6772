// qface search <build|add|remove|query>: a persistent face gallery on faiss
// (exact flat inner product; ivf / hnsw for large galleries), one fused
// template per identity, enrolment gated by --min-quality, atomic writes.
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <iostream>
#include <map>
#include <optional>

#include "apps/qface/command.h"
#include "apps/qface/deploy_options.h"
#include "qface/core/error.h"
#include "qface/deploy/calibration.h"
#include "qface/deploy/enroll.h"
#include "qface/deploy/gallery.h"
#include "qface/eval/features.h"

namespace qface::cli {
namespace {
using nlohmann::json;

struct SearchArgs {
  PipelineArgs pipeline;
  std::string gallery, images, features, name, out;
  std::vector<std::string> remove;
  deploy::IndexOptions index;
  double min_quality = -1e30;
  bool overwrite = false, no_thumbnails = false;
  bool largest = false;  // enrolment: a photo with several faces gives its largest (else it is refused)
  int k = 5;
  std::string calibration;   // query: match decisions at a FAR
  std::optional<double> far;
};

deploy::EmbeddedSet inputs(const SearchArgs& a) {
  require(a.images.empty() != a.features.empty(), "search: give --images or --features (one of them)");
  if (!a.features.empty()) {
    std::optional<deploy::QualityCalibration> cal;
    if (!a.pipeline.quality_calibration.empty()) cal = deploy::read_quality_calibration(a.pipeline.quality_calibration);
    return deploy::load_embedded_features(a.features, a.name, cal);
  }
  const deploy::Pipeline p(a.pipeline.resolve());
  return deploy::embed_images(p, deploy::list_labeled_images(a.images, a.name),
                              {.thumbnails = !a.no_thumbnails, .largest = a.largest});
}

int run_enroll(const SearchArgs& a, bool create) {
  deploy::EmbeddedSet s = inputs(a);
  if (!a.largest && !s.several_faces.empty()) {
    std::string list;
    for (const auto& [f, n] : s.several_faces) list += fmt::format("\n  {} ({} faces)", f, n);
    fail("search: {} of the photos show several faces, and a photo to enrol must show one person:{}\nCrop them first (`qface "
         "align --all`, then one sub-folder per person), or give --largest to enrol each photo's largest face",
         s.several_faces.size(), list);
  }
  require(s.embeddings.size(0) > 0, "search: no embeddable image in the input");
  deploy::Gallery g = create ? deploy::Gallery::create(a.gallery, s.embeddings.size(1), a.index, a.overwrite)
                             : deploy::Gallery::open(a.gallery);
  json j = deploy::enroll(g, s, a.min_quality);
  require(g.size() > 0, "search: nothing enrolled (all {} images below --min-quality {})", s.files.size(), a.min_quality);
  g.save();
  j["kind"] = "deploy.search.enroll";
  j["gallery"] = a.gallery;
  j["index"] = deploy::to_json(g.options());
  spdlog::info("search: {} images into {} identities; gallery {} has {} identities ({} rejected for quality, {} without a face)",
               j["images_enrolled"].get<int64_t>(), j["identities_enrolled"].get<int64_t>(), a.gallery, g.size(),
               j["rejected_low_quality"].size(), s.no_face.size());
  eval::write_json(a.out.empty() ? "-" : a.out, j);
  return 0;
}

int run_remove(const SearchArgs& a) {
  deploy::Gallery g = deploy::Gallery::open(a.gallery);
  json removed = json::array(), missing = json::array();
  for (const auto& n : a.remove) (g.remove(n) ? removed : missing).push_back(n);
  g.save();
  eval::write_json(a.out.empty() ? "-" : a.out,
                   {{"kind", "deploy.search.remove"}, {"removed", removed}, {"not_enrolled", missing}, {"gallery_size", g.size()}});
  return 0;
}

int run_query(const SearchArgs& a) {
  deploy::Gallery g = deploy::Gallery::open(a.gallery);
  g.set_search_options(a.index.nprobe, a.index.ef_search);
  SearchArgs in = a;
  if (in.name.empty()) in.name = "?";  // probes carry no identity
  in.no_thumbnails = true;
  in.largest = true;  // a probe photo is searched by its largest face, and says so
  const deploy::EmbeddedSet s = inputs(in);
  const std::map<std::string, int> several(s.several_faces.begin(), s.several_faces.end());
  // Match decisions as `qface verify` makes them: the calibration given, else the one beside the weights.
  const std::optional<deploy::VerifyCalibration> cal =
      deploy::find_verify_calibration(a.calibration, a.pipeline.weights, "search");
  if (cal && (cal->mode == "flip_fused") != a.pipeline.flip_fuse)
    spdlog::warn("search: {} was made with {} features, the probes are {}", cal->source, cal->mode,
                 a.pipeline.flip_fuse ? "flip-fused" : "plain");
  const double far = deploy::decision_far(cal ? &*cal : nullptr, a.far, "--far");
  const std::optional<double> threshold = cal ? std::optional<double>(cal->threshold_for(far)) : std::nullopt;
  const auto hits = g.query(s.embeddings, a.k);
  json results = json::array();
  for (std::size_t i = 0; i < s.files.size(); ++i) {
    json h = json::array();
    std::cout << s.files[i];
    for (const auto& x : hits[i]) {
      h.push_back({{"name", x.name}, {"score", x.score}});
      std::cout << fmt::format("	{} {:.4f}", x.name, x.score);
    }
    const auto many = several.find(s.files[i]);
    const int faces = many == several.end() ? 1 : many->second;
    if (faces > 1) std::cout << fmt::format("\t(the largest of {} faces)", faces);
    json row{{"image", s.files[i]}, {"norm", s.norms[static_cast<int64_t>(i)].item<double>()}, {"faces", faces}};
    if (threshold) {
      const bool match = !hits[i].empty() && hits[i][0].score > *threshold;
      row["match"] = match ? json(hits[i][0].name) : json(nullptr);
      std::cout << (match ? "\tMATCH " + hits[i][0].name : std::string("\tno match"));
    }
    std::cout << "\n";
    row["hits"] = h;
    results.push_back(std::move(row));
  }
  for (const auto& f : s.no_face) std::cout << f << "\tno face\n";
  if (!a.out.empty())
    eval::write_json(a.out, {{"kind", "deploy.search.query"},
                             {"gallery", a.gallery},
                             {"k", a.k},
                             {"far", threshold ? json(far) : json(nullptr)},
                             {"threshold", threshold ? json(*threshold) : json(nullptr)},
                             {"results", results},
                             {"no_face", s.no_face},
                             {"unreadable", s.unreadable}});
  return 0;
}

void add_inputs(CLI::App& app, SearchArgs& a, bool model) {
  app.add_option("--gallery", a.gallery, "gallery folder")->required();
  app.add_option("--images", a.images,
                 "photos or crops: a folder of identity sub-folders, or a folder / list whose file names start with "
                 "the identity (before '_')");
  app.add_option("--features", a.features, "a `qface embed` output folder instead of images")
      ->check(CLI::ExistingDirectory);
  add_pipeline_options(app, a.pipeline);
  (void)model;
}

void add_enroll_options(CLI::App& app, SearchArgs& a) {
  add_inputs(app, a, true);
  app.add_option("--name", a.name, "enrol every image as this one identity");
  app.add_option("--min-quality", a.min_quality,
                 "reject images below this quality (calibrated [0,1] when a quality calibration is loaded: "
                 "--quality-calibration or the one beside the weights; else the norm)");
  app.add_option("--out", a.out, "summary JSON (default: stdout)");
  app.add_flag("--largest", a.largest,
               "enrol the largest face of a photo with several (by default such a photo is refused: it is not one person)");
  app.add_flag("--no-thumbnails", a.no_thumbnails,
               "keep no JPEG thumbnails of the enrolled crops (the web page shows up to 3 per identity)");
}

const Registrar r_search{{"search", "Persistent face gallery on faiss: build, add, remove, query",
                          [](CLI::App& app) -> Runner {
                            app.require_subcommand(1);
                            return nullptr;
                          }}};
const Registrar r_build{{"build", "Create a gallery from labelled images (one fused template per identity)",
                         [](CLI::App& app) -> Runner {
                           auto a = std::make_shared<SearchArgs>();
                           add_enroll_options(app, *a);
                           app.add_option("--index", a->index.type, "flat (exact) | ivf | hnsw")
                               ->capture_default_str()->check(CLI::IsMember({"flat", "ivf", "hnsw"}));
                           app.add_option("--nlist", a->index.nlist, "ivf lists (0: ~4 sqrt(n))")->capture_default_str();
                           app.add_option("--hnsw-m", a->index.hnsw_m, "hnsw links per node")->capture_default_str();
                           app.add_option("--ef-construction", a->index.ef_construction, "hnsw build breadth")
                               ->capture_default_str();
                           app.add_option("--nprobe", a->index.nprobe, "ivf lists searched (saved default)")
                               ->capture_default_str();
                           app.add_option("--ef-search", a->index.ef_search, "hnsw search breadth (saved default)")
                               ->capture_default_str();
                           app.add_flag("--overwrite", a->overwrite, "replace an existing gallery in the folder");
                           return [a] { return run_enroll(*a, true); };
                         },
                         "search"}};
const Registrar r_add{{"add", "Enrol more images (new identities, or fused into existing templates)",
                       [](CLI::App& app) -> Runner {
                         auto a = std::make_shared<SearchArgs>();
                         add_enroll_options(app, *a);
                         return [a] { return run_enroll(*a, false); };
                       },
                       "search"}};
const Registrar r_remove{{"remove", "Remove identities from a gallery",
                          [](CLI::App& app) -> Runner {
                            auto a = std::make_shared<SearchArgs>();
                            app.add_option("--gallery", a->gallery, "gallery folder")->required();
                            app.add_option("--name", a->remove, "identity to remove (repeatable)")->required();
                            app.add_option("--out", a->out, "summary JSON (default: stdout)");
                            return [a] { return run_remove(*a); };
                          },
                          "search"}};
const Registrar r_query{{"query", "Top-k identities for probe images",
                         [](CLI::App& app) -> Runner {
                           auto a = std::make_shared<SearchArgs>();
                           add_inputs(app, *a, true);
                           app.add_option("--k", a->k, "identities per probe")->capture_default_str();
                           a->index.nprobe = a->index.ef_search = 0;  // 0: the gallery's saved values
                           app.add_option("--nprobe", a->index.nprobe, "ivf lists searched (default: the gallery's saved value)");
                           app.add_option("--ef-search", a->index.ef_search, "hnsw search breadth (default: the gallery's saved value)");
                           app.add_option("--out", a->out, "results JSON");
                           app.add_option("--calibration", a->calibration,
                                          "calibration.verify JSON: a match decision per probe at --far (default: "
                                          "<weights stem>.verify.json beside the weights, which `make run` writes)")
                               ->check(CLI::ExistingFile);
                           app.add_option("--far", a->far,
                                          "false-accept rate of the decision (default 1e-3, or the strictest the "
                                          "calibration resolves above it)");
                           return [a] { return run_query(*a); };
                         },
                         "search"}};

}  // namespace
}  // namespace qface::cli
