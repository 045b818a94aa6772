// The one flip-fusion switch of every command that embeds faces (embed,
// verify, quality, search, serve, eval verify): on by default, as in
// AdaFace's evaluation; --no-flip-fuse turns it off.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace qface::cli {

inline void add_flip_fuse_option(CLI::App& app, bool& flip_fuse, const std::string& what) {
  app.add_flag("--flip-fuse,!--no-flip-fuse", flip_fuse, "flip fusion on (the default) or off: " + what)
      ->capture_default_str();
}

}  // namespace qface::cli
