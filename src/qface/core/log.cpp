#include "qface/core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "qface/core/error.h"

namespace qface {

void setup_logging(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    fail("--log-level: unknown level '{}' (trace, debug, info, warn, error, off)", level);
  auto logger = spdlog::get("qface");
  if (!logger) logger = spdlog::stderr_color_mt("qface");
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
}

}  // namespace qface
