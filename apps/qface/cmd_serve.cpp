// qface serve: the HTTP JSON service (embed / align / verify / quality /
// search / enroll / remove) and its web page at / on --host:--port until
// SIGINT or SIGTERM. Endpoints and errors: deploy/service.h; the page: docs/web.md.
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <pthread.h>
#include <thread>

#include "apps/qface/command.h"
#include "apps/qface/deploy_options.h"
#include "qface/deploy/service.h"

namespace qface::cli {
namespace {

struct ServeArgs {
  PipelineArgs pipeline;
  deploy::ServiceOptions service;
  std::string gallery, calibration;
  double max_body_mb = 8;
};

int run(const ServeArgs& a) {
  deploy::ServiceOptions o = a.service;
  o.gallery = a.gallery;
  o.calibration = a.calibration;
  o.max_body_bytes = static_cast<std::size_t>(a.max_body_mb * (1 << 20));
  // SIGINT / SIGTERM stop the server from a waiting thread (not from a signal
  // handler). Blocked before the model is loaded: every thread started later
  // (OpenMP's, the HTTP pool's) inherits the mask, so no signal can reach one
  // of them and kill the process with its default action.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  auto pipeline = std::make_shared<const deploy::Pipeline>(a.pipeline.resolve());
  deploy::Service service(pipeline, o);
  const int port = service.bind();
  std::atomic<bool> signalled{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (signalled.exchange(true)) return;  // our own wake-up below
    spdlog::info("serve: signal {}, stopping", sig);
    service.stop();
  });
  spdlog::info("serve: http://{}:{} ({}; the page at /, JSON endpoints in docs/web.md; {})", o.host, port,
               pipeline->options().arch,
               o.admin_token.empty() ? "read-only: no admin token" : "enrolment and removal with the admin token");
  service.run();
  if (!signalled.exchange(true)) pthread_kill(waiter.native_handle(), SIGTERM);  // the server stopped on its own
  waiter.join();
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  add_pipeline_options(app, a->pipeline);
  app.add_option("--host", a->service.host, "address to listen on")->capture_default_str();
  app.add_option("--port", a->service.port, "TCP port (0: any free port, printed)")->capture_default_str();
  app.add_option("--gallery", a->gallery, "gallery folder for /search and /enroll (`qface search build`)")->check(CLI::ExistingDirectory);
  app.add_option("--calibration", a->calibration, "calibration.verify JSON for /verify match decisions (default: "
                 "<weights stem>.verify.json beside the weights, which `make run` writes)")
      ->check(CLI::ExistingFile);
  app.add_option("--far", a->service.far,
                 "default FAR of /verify and /search (default 1e-3, or the strictest the calibration resolves "
                 "above it; one it does not resolve refuses to start)");
  app.add_option("--min-quality", a->service.min_quality,
                 "quality gate: flag images below it for recapture and refuse to enrol them");
  app.add_option("--admin-token", a->service.admin_token,
                 "allow /enroll and /remove with `Authorization: Bearer <token>` (prefer the environment variable, "
                 "which `ps` does not show); without it the gallery is read-only")
      ->envname("QFACE_ADMIN_TOKEN");
  app.add_flag("--ofiq", a->service.ofiq,
               "also report OFIQ's 0-100 unified score of the norm (meaningful for MagFace models only)");
  app.add_option("--max-body-mb", a->max_body_mb, "request size limit (413 above)")->capture_default_str();
  app.add_option("--max-pixels", a->service.max_pixels, "decoded image size limit (400 above)")->capture_default_str();
  app.add_option("--http-threads", a->service.threads, "HTTP worker threads")->capture_default_str();
  app.add_option("--release-after-idle", a->service.release_after_idle_s,
                 "seconds without requests after which free memory goes back to the system (0: never)")
      ->capture_default_str();
  return [a] { return run(*a); };
}

const Registrar registrar{{"serve", "HTTP JSON service and web page: verify, search, enroll, quality (cpp-httplib)", setup}};

}  // namespace
}  // namespace qface::cli
