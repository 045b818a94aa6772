// `qface serve`: an HTTP JSON service (cpp-httplib, Debian's libcpp-httplib-dev)
// over the deployment pipeline.
//   GET  /health                          {"status":"ok", ...}
//   POST /embed   {"image": base64}       embedding, norm, quality, face box
//   POST /quality {"image": base64}       norm, quality, recapture flag
//   POST /verify  {"a": b64, "b": b64, "far": 1e-3}   cosine, match, threshold, both qualities
//   POST /search  {"image": b64 | "embedding": [..], "k": 5}   top-k identities
// /embed, /quality and /search also take the raw image as the body
// (Content-Type image/* or application/octet-stream); images are JPEG, PNG,
// BMP or WebP, their header size checked against max_pixels before decoding
// (request.h). Errors are JSON
// {"error": "..."}: 400 bad JSON / base64 / image / fields, 404 unknown
// path, 413 body over the limit, 422 no face in the image, 503 no gallery.
// Requests run on a thread pool; the pipeline serializes model and detector
// calls internally and the gallery is read-only while serving.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "qface/deploy/calibration.h"
#include "qface/deploy/gallery.h"
#include "qface/deploy/pipeline.h"

namespace qface::deploy {

struct ServiceOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (see Service::bind)
  std::size_t max_body_bytes = 8 << 20;  // larger requests get 413
  int64_t max_pixels = 40'000'000;       // decoded image size limit
  int threads = 4;                       // HTTP worker threads
  double min_quality = -1;               // /quality recapture flag when >= 0
  double far = 1e-3;                     // /verify default FAR
  std::filesystem::path gallery;         // optional, for /search
  std::filesystem::path calibration;     // optional calibration.verify for /verify decisions
};

class Service {
 public:
  Service(std::shared_ptr<const Pipeline> pipeline, ServiceOptions options);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Binds the socket; returns the port (the chosen one when options.port is 0).
  int bind();
  // Serves until stop() (blocking). bind() first.
  void run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qface::deploy
