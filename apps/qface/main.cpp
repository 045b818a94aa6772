// qface: quality-aware face recognition. One binary, one subcommand per job.
#include <spdlog/spdlog.h>

#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/log.h"
#include "qface/version.h"

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
  for (const auto& command : cli::commands()) {
    CLI::App* sub = app.add_subcommand(command.name, command.description);
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
    for (CLI::App* sub : app.get_subcommands()) return runners.at(sub)();
    return 2;
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
