// Structured logging on spdlog: human-readable lines on stderr.
#pragma once

#include <string>

namespace qface {

// level: trace, debug, info, warn, error, off. Throws qface::Error on anything else.
void setup_logging(const std::string& level);

}  // namespace qface
