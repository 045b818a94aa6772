// qface serve: the HTTP JSON service (embed / verify / quality / search) on
// --host:--port until SIGINT or SIGTERM. Endpoints and errors: deploy/service.h.
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
  auto pipeline = std::make_shared<const deploy::Pipeline>(a.pipeline.resolve());
  deploy::Service service(pipeline, o);
  // SIGINT / SIGTERM stop the server from a waiting thread (not from a signal handler).
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  const int port = service.bind();
  std::atomic<bool> signalled{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (signalled.exchange(true)) return;  // our own wake-up below
    spdlog::info("serve: signal {}, stopping", sig);
    service.stop();
  });
  spdlog::info("serve: http://{}:{} ({}; endpoints /health /embed /quality /verify /search)", o.host, port,
               a.pipeline.options.arch);
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
  app.add_option("--gallery", a->gallery, "gallery folder for /search (`qface search build`)")->check(CLI::ExistingDirectory);
  app.add_option("--calibration", a->calibration, "calibration.verify JSON for /verify match decisions")
      ->check(CLI::ExistingFile);
  app.add_option("--far", a->service.far, "default FAR of /verify")->capture_default_str();
  app.add_option("--min-quality", a->service.min_quality, "flag images below this quality for recapture");
  app.add_option("--max-body-mb", a->max_body_mb, "request size limit (413 above)")->capture_default_str();
  app.add_option("--max-pixels", a->service.max_pixels, "decoded image size limit (400 above)")->capture_default_str();
  app.add_option("--http-threads", a->service.threads, "HTTP worker threads")->capture_default_str();
  return [a] { return run(*a); };
}

const Registrar registrar{{"serve", "HTTP JSON service: /embed /verify /quality /search (cpp-httplib)", setup}};

}  // namespace
}  // namespace qface::cli
