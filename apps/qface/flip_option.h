// The one flip-fusion switch of every command that embeds faces (embed,
// verify, quality, search, serve, eval verify): on by default, as in
// AdaFace's evaluation; --no-flip-fuse turns it off.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace qface::cli {

inline void add_flip_fuse_option(CLI::App& app, bool& flip_fuse, const std::string& what) {
  // Two flags, not CLI11's "--flip-fuse,!--no-flip-fuse", whose help line
  // reads "--no-flip-fuse{false}" as if fusion were off by default.
  auto* on = app.add_flag("--flip-fuse", flip_fuse, "flip fusion on (the default): " + what);
  app.add_flag_callback("--no-flip-fuse", [&flip_fuse] { flip_fuse = false; }, "flip fusion off")->excludes(on);
}

}  // namespace qface::cli
