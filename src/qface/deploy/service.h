// `qface serve`: an HTTP JSON service (cpp-httplib, Debian's libcpp-httplib-dev)
// over the deployment pipeline, and the web page that drives it.
//   GET  /                                 the page (index.html, app.js, style.css compiled
//                                          into the binary: no file or network needed)
//   GET  /health                           {"status":"ok", "writable", "gallery_size", ...}
//   GET  /calibration                      the verification FARs and thresholds, the quality scale and gate
//   GET  /gallery                          identities with image and thumbnail counts
//   GET  /thumbnail?name=N&index=K         an enrolled crop's JPEG thumbnail
//   POST /embed   {"image": base64}        embedding, norm, quality, face box and landmarks
//   POST /quality {"image": base64}        norm, quality, recapture flag
//   POST /align   {"image": base64}        the aligned crop (base64 PNG), box, landmarks, quality
//   POST /verify  {"a": b64, "b": b64, "far": 1e-3, "crops": false}   cosine, match, threshold, both qualities
//   POST /search  {"image": b64 | "embedding": [..], "k": 5, "far": 1e-3}   top-k identities, match at the FAR
//   POST /enroll  {"name": s, "images": [b64, ..], "files": [s, ..], "largest": false}   admin: quality-gated,
//                 fused enrolment; a photo with several faces is rejected unless "largest" is true
//   POST /remove  {"name": s}                                         admin: removes an identity
// /embed, /quality, /align and /search also take the raw image as the body
// (Content-Type image/* or application/octet-stream); images are JPEG, PNG,
// BMP or WebP, their header size checked against max_pixels before decoding
// (request.h). Errors are JSON
// {"error": "..."}: 400 bad JSON / base64 / image / fields, 401 missing or
// wrong admin token, 403 read-only server, 404 unknown path or identity, 413
// body over the limit, 422 no face in the image (or nothing to enrol), 503 no
// gallery. /enroll and /remove need `Authorization: Bearer <admin token>`;
// without an admin token configured the server is read-only (403).
// Requests run on a thread pool; the pipeline serializes model and detector
// calls internally. The gallery is guarded by a reader-writer lock: searches
// share it, an enrolment or removal takes it alone while it changes the
// gallery and saves it (atomically, as `qface search add`); the photos are
// embedded before the lock is taken. The process keeps freed memory for reuse
// while busy (core/allocator.h) and hands it back once idle.
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
  double min_quality = -1;               // quality gate when >= 0: recapture flag, enrolment
  std::optional<double> far;             // default FAR of /verify and /search (unset: deploy::decision_far);
                                         // one the calibration does not resolve refuses to start
  std::filesystem::path gallery;         // optional, for /search
  std::filesystem::path calibration;     // calibration.verify for /verify and /search decisions; empty: the one
                                         // beside the weights (verify_calibration_beside), if any
  std::string admin_token;               // enables /enroll and /remove; empty: read-only
  bool ofiq = false;                     // also report OFIQ's 0-100 unified score of the norm (MagFace models)
  double release_after_idle_s = 30;      // free memory goes back to the system after this long without requests (<= 0: never)
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
