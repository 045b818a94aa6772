// Subcommand registry of the `qface` binary. Each cmd_*.cpp registers itself
// with a static Registrar, so adding a command touches no shared file.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace qface::cli {

// Runs a parsed command and returns the process exit code.
using Runner = std::function<int()>;

struct Command {
  std::string name;
  std::string description;
  // Declares the options on `app` and returns what runs once parsing succeeded.
  std::function<Runner(CLI::App& app)> setup;
  // Nests the command under another verb: {"infer", ..., setup, "bench"} is
  // `qface bench infer`. A parent that no file registers is created as a
  // plain group that requires one of its verbs.
  std::string parent = "";
};

const std::vector<Command>& commands();  // sorted by name

struct Registrar {
  explicit Registrar(Command command);
};

}  // namespace qface::cli
