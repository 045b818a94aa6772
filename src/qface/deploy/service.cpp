#include "qface/deploy/service.h"

#include <dlib/base64.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <thread>

#include "qface/core/allocator.h"
#include "qface/core/error.h"
#include "qface/data/alignment.h"
#include "qface/data/image.h"
#include "qface/deploy/enroll.h"
#include "qface/deploy/request.h"
#include "qface/deploy/web_files.h"

namespace qface::deploy {
using nlohmann::json;

namespace {

// Response bodies: a message quoting a file name that is not UTF-8 must not make dump() throw.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string encode_base64(const std::string& bytes) {
  std::istringstream in(bytes);
  std::ostringstream out;
  dlib::base64().encode(in, out);
  std::string s = out.str();
  std::erase_if(s, [](char c) { return c == '\r' || c == '\n'; });  // one line, for data: URLs
  return s;
}

// The JSON body, or none when the body is the raw image itself (Content-Type
// image/* or application/octet-stream).
std::optional<json> body_unless_raw(const httplib::Request& req) {
  const std::string type = req.get_header_value("Content-Type");
  if (type.rfind("image/", 0) == 0 || type.rfind("application/octet-stream", 0) == 0) return std::nullopt;
  return parse_json_body(req.body);
}

template <class T>
T field(const json& j, const std::string& name, T fallback) {
  if (!j.contains(name)) return fallback;
  try {
    return j.at(name).get<T>();
  } catch (const json::exception&) {
    throw HttpError(400, fmt::format("field '{}' has the wrong type", name));
  }
}

int64_t query_param(const httplib::Request& req, const std::string& name, int64_t fallback) {
  if (!req.has_param(name.c_str())) return fallback;
  const std::string v = req.get_param_value(name.c_str());
  try {
    std::size_t used = 0;
    const int64_t x = std::stoll(v, &used);
    if (used == v.size() && x >= 0) return x;
  } catch (const std::exception&) {
  }
  throw HttpError(400, fmt::format("query parameter '{}' must be a non-negative integer, got '{}'", name, v));
}

json vec(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

json points(const Points5& p) {
  json j = json::array();
  for (const auto& q : p) j.push_back({q.x, q.y});
  return j;
}

// Compares the admin token in a time that does not depend on where the
// strings first differ (a few lines; no library at hand provides it).
bool same_secret(std::string_view given, std::string_view secret) {
  unsigned char diff = given.size() != secret.size();
  for (std::size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i] ^ (secret.empty() ? 0 : secret[i % secret.size()]));
  return diff == 0;
}

std::string content_type(std::string_view path) {
  auto ends = [&](std::string_view ext) { return path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext; };
  if (ends(".html")) return "text/html; charset=utf-8";
  if (ends(".js")) return "text/javascript; charset=utf-8";
  if (ends(".css")) return "text/css; charset=utf-8";
  if (ends(".svg")) return "image/svg+xml";
  if (ends(".png")) return "image/png";
  return "application/octet-stream";
}

// The page loads nothing from elsewhere; images are data: (server crops) or blob: (the user's files).
constexpr const char* kPagePolicy =
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace

struct Service::Impl {
  std::shared_ptr<const Pipeline> pipeline;
  ServiceOptions o;
  double far = VerifyCalibration::kDefaultFar;  // the default FAR, resolved against the calibration
  bool has_gallery = false;
  std::optional<Gallery> gallery;           // guarded by gallery_mutex
  mutable std::shared_mutex gallery_mutex;  // shared: searches and listings; exclusive: enrol / remove + save
  std::optional<VerifyCalibration> calibration;
  httplib::Server server;
  // Idle memory release: work requests (POSTs; health checks and page loads
  // do not keep a server busy) bump `requests` as they start and end; the
  // releaser thread hands free memory back once none ran for a whole
  // o.release_after_idle_s.
  std::atomic<int64_t> requests{0};
  std::atomic<int> in_flight{0};
  std::atomic<int64_t> releases{0};
  struct Work {
    Impl& m;
    const bool on;
    Work(Impl& impl, const httplib::Request& req) : m(impl), on(req.method == "POST") {
      if (!on) return;
      ++m.in_flight;
      ++m.requests;
    }
    ~Work() {
      if (!on) return;
      --m.in_flight;
      ++m.requests;
    }
  };
  std::mutex release_mutex;
  std::condition_variable release_wake;
  bool stopping = false;  // guarded by release_mutex

  void release_when_idle() {
    const auto idle = std::chrono::duration<double>(o.release_after_idle_s);
    int64_t released_at = 0;  // the request count at the last release
    std::unique_lock<std::mutex> lock(release_mutex);
    while (!stopping) {
      const int64_t seen = requests.load();
      if (release_wake.wait_for(lock, idle, [this] { return stopping; })) break;
      if (in_flight.load() > 0 || requests.load() != seen || seen == released_at) continue;  // busy, or nothing since
      release_free_memory();
      released_at = seen;
      ++releases;
      spdlog::debug("serve: idle for {:.0f} s, free memory released ({})", o.release_after_idle_s,
                    allocator_description());
    }
  }

  bool writable() const { return has_gallery && !o.admin_token.empty(); }

  void need_gallery() const {
    if (!has_gallery) throw HttpError(503, "no gallery loaded (start qface serve with --gallery)");
  }

  // /enroll and /remove: 403 on a read-only server, 401 without the right token.
  void authorize(const httplib::Request& req) const {
    if (o.admin_token.empty())
      throw HttpError(403, "this server is read-only: enrolment and removal need an admin token at start "
                           "(qface serve --admin-token, or QFACE_ADMIN_TOKEN)");
    const std::string header = req.get_header_value("Authorization");
    const std::string_view prefix = "Bearer ";
    if (header.rfind(prefix, 0) != 0 || !same_secret(std::string_view(header).substr(prefix.size()), o.admin_token))
      throw HttpError(401, "enrolment and removal need the admin token (Authorization: Bearer <token>); the one "
                           "given is missing or wrong");
  }

  cv::Mat image_of(const httplib::Request& req, const json* body, const std::string& name) const {
    return request_image(body, req.body, name, o.max_pixels);
  }

  Probe probe_of(const cv::Mat& img, const std::string& name) const {
    Probe p = pipeline->probe(img);
    if (!p.found)  // ("image" is the field of single-image requests: not repeated as a name)
      throw HttpError(422, name == "image" ? std::string("no face found in the image")
                                           : fmt::format("no face found in image '{}'", name));
    return p;
  }

  // The quality the gate compares: calibrated [0, 1] when loaded, else the norm.
  static double gated_quality(const Probe& p) { return p.quality.value_or(p.norm); }

  json quality_json(const Probe& p) const {
    json j{{"norm", p.norm}, {"faces", p.faces}};  // faces in the photo: the largest is the one used
    if (p.quality) j["quality"] = *p.quality;
    if (o.ofiq) j["ofiq"] = ofiq_unified_score(p.norm);
    if (o.min_quality >= 0) j["recapture"] = gated_quality(p) < o.min_quality;
    if (p.face) {
      j["box"] = {p.face->box.x, p.face->box.y, p.face->box.width, p.face->box.height};
      j["landmarks"] = points(p.face->landmarks);
    }
    return j;
  }

  // quality_json plus the aligned crop (base64 PNG) and where it came from in
  // `image`: an input taken as an aligned crop reports the template's points.
  json crop_json(const Probe& p, const cv::Mat& image) const {
    json j = quality_json(p);
    j["width"] = image.cols;
    j["height"] = image.rows;
    j["aligned_input"] = !p.face.has_value();
    if (!p.face) {
      j["box"] = {0, 0, image.cols, image.rows};
      j["landmarks"] = points(data::face_template());
    }
    j["crop"] = encode_base64(data::encode_image(p.crop, ".png", "crop"));
    return j;
  }

  // Runs a handler, answering errors as JSON.
  void guarded(const httplib::Request& req, httplib::Response& res,
               const std::function<void(const httplib::Request&, httplib::Response&)>& handler) {
    auto error = [&](int status, const std::string& what, json details = json::object()) {
      res.status = status;
      details["error"] = what;
      res.set_content(dump(details), "application/json");
    };
    const Work work(*this, req);
    try {
      res.status = 200;
      handler(req, res);
    } catch (const HttpError& e) {
      if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
      error(e.status, e.what(), e.details);
    } catch (const Error& e) {
      error(400, e.what());
    } catch (const std::exception& e) {
      spdlog::error("serve {}: {}", req.path, e.what());
      error(500, std::string("internal error: ") + e.what());
    }
  }

  json embed(const httplib::Request& req) {
    const std::optional<json> body = body_unless_raw(req);
    const Probe p = probe_of(image_of(req, body ? &*body : nullptr, "image"), "image");
    json j = quality_json(p);
    j["embedding"] = vec(p.embedding);
    return j;
  }

  json quality(const httplib::Request& req) {
    const std::optional<json> body = body_unless_raw(req);
    return quality_json(probe_of(image_of(req, body ? &*body : nullptr, "image"), "image"));
  }

  json align(const httplib::Request& req) {
    const std::optional<json> body = body_unless_raw(req);
    const cv::Mat img = image_of(req, body ? &*body : nullptr, "image");
    return crop_json(probe_of(img, "image"), img);
  }

  json verify(const httplib::Request& req) {
    const json body = parse_json_body(req.body);
    const double far = field<double>(body, "far", this->far);
    const bool crops = field<bool>(body, "crops", false);
    std::optional<double> threshold;
    if (calibration) threshold = calibration->threshold_for(far);  // Error -> 400 naming the listed FARs
    const cv::Mat ia = image_of(req, &body, "a"), ib = image_of(req, &body, "b");
    const Probe a = probe_of(ia, "a"), b = probe_of(ib, "b");
    const double cosine = (a.embedding * b.embedding).sum().item<double>();
    json j{{"cosine", cosine},
           {"a", crops ? crop_json(a, ia) : quality_json(a)},
           {"b", crops ? crop_json(b, ib) : quality_json(b)}};
    if (threshold) {
      j["far"] = far;
      j["threshold"] = *threshold;
      j["match"] = cosine > *threshold;
    }
    return j;
  }

  json search(const httplib::Request& req) {
    need_gallery();
    const std::optional<json> body = body_unless_raw(req);
    const int k = body ? field<int>(*body, "k", 5) : 5;
    if (k < 1 || k > 1000) throw HttpError(400, fmt::format("field 'k' must be 1..1000, got {}", k));
    const double far = body ? field<double>(*body, "far", this->far) : this->far;
    std::optional<double> threshold;
    if (calibration) threshold = calibration->threshold_for(far);
    torch::Tensor q;
    json j = json::object();
    if (body && body->contains("embedding")) {
      const auto v = field<std::vector<float>>(*body, "embedding", {});
      if (static_cast<int64_t>(v.size()) != pipeline->dim())  // the gallery's too (checked at start)
        throw HttpError(400, fmt::format("field 'embedding' must have {} numbers, got {}", pipeline->dim(), v.size()));
      q = torch::tensor(v).reshape({1, -1});
      q = q / q.norm().clamp_min(1e-12);
    } else {
      const Probe p = probe_of(image_of(req, body ? &*body : nullptr, "image"), "image");
      j = quality_json(p);
      q = p.embedding.reshape({1, -1});
    }
    json hits = json::array();
    {
      std::shared_lock lock(gallery_mutex);
      const auto found = gallery->query(q, k);  // (not range-for over a temporary's element)
      for (const Hit& h : found[0])
        hits.push_back({{"name", h.name},
                        {"score", h.score},
                        {"images", gallery->images(h.name)},
                        {"thumbnails", gallery->thumbnails(h.name).size()}});
      j["generation"] = gallery->generation();
    }
    if (threshold) {
      for (json& h : hits) h["match"] = h["score"].get<double>() > *threshold;
      j["far"] = far;
      j["threshold"] = *threshold;
      j["match"] = !hits.empty() && hits[0]["match"].get<bool>();
    }
    j["hits"] = hits;
    return j;
  }

  json health(const httplib::Request&) {
    json j{{"status", "ok"},
           {"arch", pipeline->options().arch},
           {"dim", pipeline->dim()},
           {"flip_fused", pipeline->options().flip_fuse},
           {"detector", detector_kind_name(pipeline->options().detector.kind)},
           {"gallery_size", 0},
           {"writable", writable()},
           {"max_body_bytes", o.max_body_bytes},
           {"malloc", allocator_description()},
           {"idle_memory_releases", releases.load()},
           {"calibrated_fars", json::array()}};
    if (pipeline->options().detector.kind == DetectorKind::kSsd) j["detect_scan"] = pipeline->options().detector.ssd.scan;
    if (calibration)
      for (const auto& [far, t] : calibration->thresholds) j["calibrated_fars"].push_back(far);
    if (has_gallery) {
      std::shared_lock lock(gallery_mutex);
      j["gallery_size"] = gallery->size();
    }
    return j;
  }

  json calibration_info(const httplib::Request&) {
    json verify = nullptr;
    if (calibration) {
      json th = json::array(), fars = json::array();
      for (const auto& [far, t] : calibration->thresholds) {
        fars.push_back(far);
        th.push_back({{"far", far}, {"threshold", t}});
      }
      verify = {{"fars", fars},
                {"thresholds", th},
                {"default_far", far},
                {"mode", calibration->mode},
                {"impostors", calibration->impostors}};
    }
    const bool calibrated = pipeline->has_quality_calibration();
    json quality{{"scale", calibrated ? "calibrated" : "norm"},
                 {"description", calibrated ? "calibrated quality in [0, 1] (0.5 = a median image of the calibration "
                                              "set); the feature norm alongside"
                                            : "the feature norm (no quality calibration loaded)"},
                 {"ofiq", o.ofiq},
                 {"min_quality", o.min_quality >= 0 ? json(o.min_quality) : json(nullptr)}};
    return {{"verify", verify}, {"quality", quality}};
  }

  json gallery_list(const httplib::Request& req) {
    need_gallery();
    const int64_t offset = query_param(req, "offset", 0), limit = query_param(req, "limit", 1000);
    std::shared_lock lock(gallery_mutex);
    std::vector<std::string> names = gallery->names();
    std::sort(names.begin(), names.end());
    json ids = json::array();
    const auto n = static_cast<int64_t>(names.size());
    const int64_t first = std::min(offset, n), end = first + std::min(limit, n - first);  // no offset + limit overflow
    for (int64_t i = first; i < end; ++i) {
      const std::string& name = names[static_cast<std::size_t>(i)];
      ids.push_back({{"name", name}, {"images", gallery->images(name)}, {"thumbnails", gallery->thumbnails(name).size()}});
    }
    return {{"size", n}, {"offset", offset}, {"generation", gallery->generation()}, {"writable", writable()},
            {"identities", ids}};
  }

  void thumbnail(const httplib::Request& req, httplib::Response& res) {
    need_gallery();
    if (!req.has_param("name")) throw HttpError(400, "missing query parameter 'name'");
    const std::string name = req.get_param_value("name");
    const auto index = static_cast<std::size_t>(query_param(req, "index", 0));
    std::string jpeg;
    {
      std::shared_lock lock(gallery_mutex);
      const auto& t = gallery->thumbnails(name);
      if (index >= t.size())
        throw HttpError(404, fmt::format("identity '{}' has no thumbnail {} ({} kept)", name, index, t.size()));
      jpeg = t[index].jpeg;
    }
    res.set_content(jpeg, "image/jpeg");
    res.set_header("Cache-Control", "no-cache");
  }

  static std::string identity_name(const json& body) {
    const std::string name = field<std::string>(body, "name", "");
    if (name.empty() || name.size() > 200) throw HttpError(400, "field 'name' must be 1 to 200 characters");
    if (std::any_of(name.begin(), name.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
      throw HttpError(400, "field 'name' must not contain control characters");
    return name;
  }

  // Under the exclusive lock: saves; on failure the gallery on disk (the
  // previous generation) is read back, so memory and disk agree.
  void save_gallery() {
    try {
      gallery->save();
    } catch (...) {
      try {
        gallery = Gallery::open(o.gallery);
      } catch (const std::exception& e) {
        spdlog::error("serve: gallery {} cannot be read back after a failed save: {}", o.gallery.string(), e.what());
      }
      throw;
    }
  }

  json enroll_images(const httplib::Request& req) {
    authorize(req);
    need_gallery();
    const json body = parse_json_body(req.body);
    const std::string name = identity_name(body);
    if (!body.contains("images") || !body["images"].is_array() || body["images"].empty())
      throw HttpError(400, "field 'images' must be a non-empty array of base64-encoded images");
    const json& images = body["images"];
    const auto files = field<std::vector<std::string>>(body, "files", {});
    const bool largest = field<bool>(body, "largest", false);  // enrol a group photo's largest face
    if (!files.empty() && files.size() != images.size())
      throw HttpError(400, fmt::format("field 'files' names {} images, 'images' has {}", files.size(), images.size()));
    LabeledImages in;
    for (std::size_t i = 0; i < images.size(); ++i) {
      in.files.push_back(files.empty() ? fmt::format("image {}", i + 1) : files[i]);
      in.labels.push_back(name);
    }
    // The photos are embedded before the gallery is locked; unreadable ones are set aside with the reason.
    json rejected = json::array();
    const EmbeddedSet s = embed_images(
        *pipeline, in,
        [&](std::size_t i) -> cv::Mat {
          try {
            if (!images[i].is_string()) throw HttpError(400, "not a base64 string");
            return data::decode_image(decode_base64(images[i].get<std::string>(), "images"), in.files[i], o.max_pixels);
          } catch (const Error& e) {
            std::string reason = e.what();  // "<file>: not a decodable image ...": the file is named beside it
            if (reason.rfind(in.files[i] + ": ", 0) == 0) reason.erase(0, in.files[i].size() + 2);
            rejected.push_back({{"image", in.files[i]}, {"reason", reason}});
            return {};
          }
        },
        {.thumbnails = true, .largest = largest});
    for (const auto& f : s.no_face) rejected.push_back({{"image", f}, {"reason", "no face found"}});
    if (!largest)
      for (const auto& [f, n] : s.several_faces)
        rejected.push_back({{"image", f},
                            {"reason", fmt::format("{} faces: a photo to enrol must show one person (send \"largest\": "
                                                   "true to enrol its largest face)", n)}});
    const bool gated = o.min_quality >= 0;
    json summary;
    {
      std::unique_lock lock(gallery_mutex);
      summary = enroll(*gallery, s, gated ? o.min_quality : -std::numeric_limits<double>::infinity());
      if (summary["images_enrolled"].get<int64_t>() > 0) save_gallery();
      summary["gallery_size"] = gallery->size();
      summary["generation"] = gallery->generation();
    }
    summary["min_quality"] = gated ? json(o.min_quality) : json(nullptr);
    for (const auto& r : summary["rejected_low_quality"])
      rejected.push_back({{"image", r["image"]},
                          {"quality", r["quality"]},
                          {"reason", fmt::format("quality {:.3f} is below the gate {:.3f}", r["quality"].get<double>(),
                                                 o.min_quality)}});
    summary["name"] = name;
    summary["rejected"] = rejected;
    if (summary["images_enrolled"].get<int64_t>() == 0)
      throw HttpError(422, fmt::format("nothing enrolled for '{}': none of the {} images passed ({})", name,
                                       images.size(), rejected.empty() ? "" : rejected[0]["reason"].get<std::string>()),
                      summary);
    spdlog::info("serve: enrolled {} images as '{}' ({} rejected); gallery has {} identities",
                 summary["images_enrolled"].get<int64_t>(), name, rejected.size(), summary["gallery_size"].get<int64_t>());
    return summary;
  }

  json remove_identity(const httplib::Request& req) {
    authorize(req);
    need_gallery();
    const std::string name = identity_name(parse_json_body(req.body));
    std::unique_lock lock(gallery_mutex);
    if (!gallery->remove(name)) throw HttpError(404, fmt::format("identity '{}' is not enrolled", name));
    save_gallery();
    spdlog::info("serve: removed '{}'; gallery has {} identities", name, gallery->size());
    return {{"removed", name}, {"gallery_size", gallery->size()}, {"generation", gallery->generation()}};
  }
};

Service::Service(std::shared_ptr<const Pipeline> pipeline, ServiceOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.pipeline = std::move(pipeline);
  m.o = std::move(options);
  require(m.o.threads > 0, "serve: --threads must be positive");
  if (!m.o.gallery.empty()) {
    m.gallery = Gallery::open(m.o.gallery);
    m.has_gallery = true;
    require(m.gallery->dim() == m.pipeline->dim(), "{}: gallery embeddings have {} dims, the model gives {}",
            m.o.gallery.string(), m.gallery->dim(), m.pipeline->dim());
  }
  m.calibration = find_verify_calibration(m.o.calibration, m.pipeline->options().weights, "serve");
  // Decided once, at start: a default the calibration cannot resolve would
  // leave /verify without a decision (issue #39 item 3).
  m.far = decision_far(m.calibration ? &*m.calibration : nullptr, m.o.far, "serve --far");
  m.server.set_payload_max_length(m.o.max_body_bytes);
  const int threads = m.o.threads;
  m.server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  auto route = [&m](json (Impl::*h)(const httplib::Request&)) {
    return [&m, h](const httplib::Request& req, httplib::Response& res) {
      m.guarded(req, res, [&m, h](const httplib::Request& r, httplib::Response& s) {
        s.set_content(dump((m.*h)(r)), "application/json");
      });
    };
  };
  m.server.Post("/embed", route(&Impl::embed));
  m.server.Post("/quality", route(&Impl::quality));
  m.server.Post("/align", route(&Impl::align));
  m.server.Post("/verify", route(&Impl::verify));
  m.server.Post("/search", route(&Impl::search));
  m.server.Post("/enroll", route(&Impl::enroll_images));
  m.server.Post("/remove", route(&Impl::remove_identity));
  m.server.Get("/health", route(&Impl::health));
  m.server.Get("/calibration", route(&Impl::calibration_info));
  m.server.Get("/gallery", route(&Impl::gallery_list));
  m.server.Get("/thumbnail", [&m](const httplib::Request& req, httplib::Response& res) {
    m.guarded(req, res, [&m](const httplib::Request& r, httplib::Response& s) { m.thumbnail(r, s); });
  });
  // The page: files compiled into the binary; index.html also at /.
  for (const EmbeddedFile& f : web_files()) {
    std::string pattern = "/" + std::string(f.path);
    std::string escaped;  // routes are regular expressions
    for (char c : pattern) escaped += (c == '.' ? std::string("\\.") : std::string(1, c));
    if (f.path == "index.html") escaped = "/|" + escaped;
    m.server.Get(escaped, [f](const httplib::Request&, httplib::Response& res) {
      res.set_content(f.bytes.data(), f.bytes.size(), content_type(f.path).c_str());
      res.set_header("Cache-Control", "no-cache");
      res.set_header("X-Content-Type-Options", "nosniff");
      if (content_type(f.path).rfind("text/html", 0) == 0) res.set_header("Content-Security-Policy", kPagePolicy);
    });
  }
  // JSON bodies for httplib's own errors (404 unknown path, 413 too large, ...).
  m.server.set_error_handler([&m](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string what = res.status == 404 ? "no such endpoint: " + req.method + " " + req.path
                       : res.status == 413
                           ? fmt::format("request body too large (the limit is {:.1f} MiB: qface serve --max-body-mb)",
                                         static_cast<double>(m.o.max_body_bytes) / (1 << 20))
                           : "HTTP " + std::to_string(res.status);
    res.set_content(dump(json{{"error", what}}), "application/json");
  });
}

Service::~Service() { stop(); }

int Service::bind() {
  Impl& m = *impl_;
  if (m.o.port == 0) {
    const int port = m.server.bind_to_any_port(m.o.host);
    require(port > 0, "serve: cannot bind {}", m.o.host);
    return port;
  }
  require(m.server.bind_to_port(m.o.host.c_str(), m.o.port), "serve: cannot bind {}:{}", m.o.host, m.o.port);
  return m.o.port;
}

void Service::run() {
  Impl& m = *impl_;
  std::thread releaser;
  m.stopping = false;
  if (m.o.release_after_idle_s > 0) releaser = std::thread([&m] { m.release_when_idle(); });
  struct StopReleaser {  // also when listening throws
    Impl& m;
    std::thread& t;
    ~StopReleaser() {
      if (!t.joinable()) return;
      {
        std::lock_guard<std::mutex> lock(m.release_mutex);
        m.stopping = true;
      }
      m.release_wake.notify_all();
      t.join();
    }
  } stop_releaser{m, releaser};
  m.server.listen_after_bind();
}

void Service::stop() {
  if (impl_) impl_->server.stop();
}

}  // namespace qface::deploy
