#include "qface/deploy/service.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <sstream>

#include "qface/core/error.h"
#include "qface/deploy/request.h"

namespace qface::deploy {
using nlohmann::json;

namespace {

bool raw_image(const httplib::Request& req) {
  const std::string type = req.get_header_value("Content-Type");
  return type.rfind("image/", 0) == 0 || type.rfind("application/octet-stream", 0) == 0;
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

json vec(const torch::Tensor& t) {
  torch::Tensor c = t.to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

struct Service::Impl {
  std::shared_ptr<const Pipeline> pipeline;
  ServiceOptions o;
  std::optional<Gallery> gallery;
  std::optional<VerifyCalibration> calibration;
  httplib::Server server;

  cv::Mat image_of(const httplib::Request& req, const json* body, const std::string& name) const {
    return request_image(body, req.body, name, o.max_pixels);
  }

  Probe probe_of(const cv::Mat& img, const std::string& name) const {
    Probe p = pipeline->probe(img);
    if (!p.found) throw HttpError(422, fmt::format("image '{}': no face found", name));
    return p;
  }

  json quality_json(const Probe& p) const {
    json j{{"norm", p.norm}};
    if (p.quality) j["quality"] = *p.quality;
    if (o.min_quality >= 0) j["recapture"] = p.quality.value_or(p.norm) < o.min_quality;
    if (p.face) j["box"] = {p.face->box.x, p.face->box.y, p.face->box.width, p.face->box.height};
    return j;
  }

  // Runs a handler with JSON errors.
  void guarded(const httplib::Request& req, httplib::Response& res,
               const std::function<json(const httplib::Request&)>& handler) const {
    try {
      res.set_content(handler(req).dump(), "application/json");
      res.status = 200;
    } catch (const HttpError& e) {
      res.status = e.status;
      res.set_content(json{{"error", e.what()}}.dump(), "application/json");
    } catch (const Error& e) {
      res.status = 400;
      res.set_content(json{{"error", e.what()}}.dump(), "application/json");
    } catch (const std::exception& e) {
      spdlog::error("serve {}: {}", req.path, e.what());
      res.status = 500;
      res.set_content(json{{"error", std::string("internal error: ") + e.what()}}.dump(), "application/json");
    }
  }

  json embed(const httplib::Request& req) const {
    std::optional<json> body;
    if (!raw_image(req)) body = parse_json_body(req.body);
    const Probe p = probe_of(image_of(req, body ? &*body : nullptr, "image"), "image");
    json j = quality_json(p);
    j["embedding"] = vec(p.embedding);
    return j;
  }

  json quality(const httplib::Request& req) const {
    std::optional<json> body;
    if (!raw_image(req)) body = parse_json_body(req.body);
    return quality_json(probe_of(image_of(req, body ? &*body : nullptr, "image"), "image"));
  }

  json verify(const httplib::Request& req) const {
    const json body = parse_json_body(req.body);
    const double far = field<double>(body, "far", o.far);
    std::optional<double> threshold;
    if (calibration) threshold = calibration->threshold_for(far);  // Error -> 400 naming the listed FARs
    const Probe a = probe_of(image_of(req, &body, "a"), "a"), b = probe_of(image_of(req, &body, "b"), "b");
    const double cosine = (a.embedding * b.embedding).sum().item<double>();
    json j{{"cosine", cosine}, {"a", quality_json(a)}, {"b", quality_json(b)}};
    if (threshold) {
      j["far"] = far;
      j["threshold"] = *threshold;
      j["match"] = cosine > *threshold;
    }
    return j;
  }

  json search(const httplib::Request& req) const {
    if (!gallery) throw HttpError(503, "no gallery loaded (start qface serve with --gallery)");
    std::optional<json> body;
    if (!raw_image(req)) body = parse_json_body(req.body);
    const int k = body ? field<int>(*body, "k", 5) : 5;
    if (k < 1 || k > 1000) throw HttpError(400, fmt::format("field 'k' must be 1..1000, got {}", k));
    torch::Tensor q;
    json j = json::object();
    if (body && body->contains("embedding")) {
      const auto v = field<std::vector<float>>(*body, "embedding", {});
      if (static_cast<int64_t>(v.size()) != gallery->dim())
        throw HttpError(400, fmt::format("field 'embedding' must have {} numbers, got {}", gallery->dim(), v.size()));
      q = torch::tensor(v).reshape({1, -1});
      q = q / q.norm().clamp_min(1e-12);
    } else {
      const Probe p = probe_of(image_of(req, body ? &*body : nullptr, "image"), "image");
      j = quality_json(p);
      q = p.embedding.reshape({1, -1});
    }
    json hits = json::array();
    const auto found = gallery->query(q, k);  // (not range-for over a temporary's element)
    for (const Hit& h : found[0]) hits.push_back({{"name", h.name}, {"score", h.score}});
    j["hits"] = hits;
    return j;
  }
};

Service::Service(std::shared_ptr<const Pipeline> pipeline, ServiceOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.pipeline = std::move(pipeline);
  m.o = std::move(options);
  require(m.o.threads > 0, "serve: --threads must be positive");
  if (!m.o.gallery.empty()) {
    m.gallery = Gallery::open(m.o.gallery);
    require(m.gallery->dim() == m.pipeline->dim(), "{}: gallery embeddings have {} dims, the model gives {}",
            m.o.gallery.string(), m.gallery->dim(), m.pipeline->dim());
  }
  if (!m.o.calibration.empty()) m.calibration = read_verify_calibration(m.o.calibration);
  m.server.set_payload_max_length(m.o.max_body_bytes);
  const int threads = m.o.threads;
  m.server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  auto route = [&m](json (Impl::*h)(const httplib::Request&) const) {
    return [&m, h](const httplib::Request& req, httplib::Response& res) {
      m.guarded(req, res, [&m, h](const httplib::Request& r) { return (m.*h)(r); });
    };
  };
  m.server.Post("/embed", route(&Impl::embed));
  m.server.Post("/quality", route(&Impl::quality));
  m.server.Post("/verify", route(&Impl::verify));
  m.server.Post("/search", route(&Impl::search));
  m.server.Get("/health", [&m](const httplib::Request&, httplib::Response& res) {
    json j{{"status", "ok"},
           {"arch", m.pipeline->options().arch},
           {"dim", m.pipeline->dim()},
           {"flip_fused", m.pipeline->options().flip_fuse},
           {"gallery_size", m.gallery ? m.gallery->size() : 0},
           {"calibrated_fars", json::array()}};
    if (m.calibration)
      for (const auto& [far, t] : m.calibration->thresholds) j["calibrated_fars"].push_back(far);
    res.set_content(j.dump(), "application/json");
  });
  // JSON bodies for httplib's own errors (404 unknown path, 413 too large, ...).
  m.server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string what = res.status == 404   ? "no such endpoint: " + req.method + " " + req.path
                       : res.status == 413 ? "request body too large"
                                           : "HTTP " + std::to_string(res.status);
    res.set_content(json{{"error", what}}.dump(), "application/json");
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

void Service::run() { impl_->server.listen_after_bind(); }

void Service::stop() {
  if (impl_) impl_->server.stop();
}

}  // namespace qface::deploy
