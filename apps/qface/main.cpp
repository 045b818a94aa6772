// qface: quality-aware face recognition. One binary, one subcommand per job.
#include <spdlog/spdlog.h>

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>

#include "apps/qface/command.h"
#include "qface/core/allocator.h"
#include "qface/core/error.h"
#include "qface/core/log.h"
#include "qface/core/threads.h"
#include "qface/version.h"

// jemalloc serves this executable's malloc (core/allocator.h says why).
// - dirty/muzzy decay -1: freed pages stay mapped for reuse. Any decay at all
//   was as slow as glibc's default here (IR-50 embed batches 1.4-2 s instead
//   of 0.6 s on the AMD VM: purged pages fault in again);
// - thp:always: its mappings use transparent huge pages (the system default
//   "madvise" gives none to malloc otherwise): 410k first-touch faults of an
//   IR-50 embed became 11k, and loading took 0.2 s instead of 1.1;
// - oversize_threshold:0: no separate arena for blocks over 8 MB, which
//   jemalloc would purge at once.
// MALLOC_CONF in the environment overrides any of these.
extern "C" __attribute__((visibility("default"), used)) const char* malloc_conf =
    "thp:always,dirty_decay_ms:-1,muzzy_decay_ms:-1,oversize_threshold:0";

namespace qface::cli {
namespace {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace

const std::vector<Command>& commands() {
  auto& r = registry();
  std::sort(r.begin(), r.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  return r;
}

Registrar::Registrar(Command command) { registry().push_back(std::move(command)); }

}  // namespace qface::cli

int main(int argc, char** argv) {
  using namespace qface;
  CLI::App app{"qface: quality-aware face recognition (AdaFace, MagFace, ArcFace, CosFace) in C++", "qface"};
  app.set_version_flag("--version", std::string("qface ") + kVersion);
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "log verbosity")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();

  std::map<CLI::App*, cli::Runner> runners;
  std::map<std::string, CLI::App*> top;
  for (const auto& command : cli::commands()) {
    if (!command.parent.empty()) continue;
    CLI::App* sub = app.add_subcommand(command.name, command.description);
    runners[sub] = command.setup(*sub);
    top[command.name] = sub;
  }
  for (const auto& command : cli::commands()) {
    if (command.parent.empty()) continue;
    CLI::App*& parent = top[command.parent];
    if (!parent) {
      parent = app.add_subcommand(command.parent, "Group: " + command.parent + " <verb>");
      parent->require_subcommand(1);
    }
    CLI::App* sub = parent->add_subcommand(command.name, command.description);
    runners[sub] = command.setup(*sub);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "qface: error: " << e.what() << " (see --help)\n";
    return e.get_exit_code() == 0 ? 2 : e.get_exit_code();
  } catch (const std::exception& e) {
    std::cerr << "qface: error: " << e.what() << "\n";
    return 2;
  }

  try {
    setup_logging(log_level);
    spdlog::debug("malloc: {}", allocator_description());
    use_threads(0);  // every logical core unless OMP_NUM_THREADS says otherwise; --threads options override
    // The deepest parsed verb runs (`qface bench infer` runs infer).
    CLI::App* chosen = app.get_subcommands().at(0);
    while (!chosen->get_subcommands().empty()) {
      CLI::App* next = chosen->get_subcommands().at(0);
      if (!runners.count(next)) break;
      chosen = next;
    }
    auto it = runners.find(chosen);
    if (it == runners.end() || !it->second) {
      std::cerr << "qface: error: " << chosen->get_name() << " needs a verb (see --help)\n";
      return 2;
    }
    const int rc = it->second();
    // The command's own objects are gone and its outputs written (atomically)
    // by now; what `return` would add is tearing down LibTorch's operator
    // registry and ~300 libraries: ~55 ms of every run (IR-50 embed: 70 ->
    // 17 ms from the last log line to the shell, AMD EPYC VM). Flush and go.
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
    std::_Exit(rc);
  } catch (const qface::Error& e) {
    std::cerr << "qface: error: " << e.what() << "\n";
    return 1;
  } catch (const c10::Error& e) {
    // LibTorch messages can span lines; the first one says what went wrong.
    std::string msg = e.what_without_backtrace();
    std::cerr << "qface: error: " << msg.substr(0, msg.find('\n')) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "qface: error: " << e.what() << "\n";
    return 1;
  }
}
