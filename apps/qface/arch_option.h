// The one --arch of every command that loads a model (embed, verify, quality,
// search, serve, quantize, export, eval verify): optional, because qface's
// own files, AdaFace's .ckpt and MagFace's .pth record their architecture
// (infer::checkpoint_arch); needed for plain state dicts and to override.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "qface/backbones/backbone.h"

namespace qface::cli {

inline CLI::Option* add_arch_option(CLI::App& app, std::string& arch,
                                    const std::string& what = "backbone") {
  return app
      .add_option("--arch", arch,
                  what + " (default: the one the weights file records; needed for files that record none)")
      ->check(CLI::IsMember(backbones::backbone_names()));
}

}  // namespace qface::cli
