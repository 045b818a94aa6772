// The web page of `qface serve` (src/qface/deploy/web/): its files compiled
// into the library at build time (cmake/embed_files.cmake), so the binary
// serves the page with no file, CDN or network access.
#pragma once

#include <span>
#include <string_view>

namespace qface::deploy {

struct EmbeddedFile {
  std::string_view path;   // relative to web/, e.g. "app.js"
  std::string_view bytes;  // the file's content
};

std::span<const EmbeddedFile> web_files();

}  // namespace qface::deploy
