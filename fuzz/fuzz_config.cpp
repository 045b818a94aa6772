// TOML training config text -> parse_config; lines of the input after a
// "\n#--set\n" line are --set overrides. What parses must survive
// to_toml + parse_config unchanged.
#include "fuzz/fuzz_util.h"
#include "qface/core/error.h"
#include "qface/train/config.h"

namespace qface::fuzz {
int one_config(const uint8_t* data, std::size_t size) {
  const auto parts = qface::fuzz::split(qface::fuzz::as_view(data, size), "\n#--set\n", 2);
  std::vector<std::string> overrides;
  if (parts.size() == 2)
    for (auto line : qface::fuzz::split(parts[1], "\n", 8)) overrides.emplace_back(line);
  try {
    qface::train::TrainConfig c = qface::train::parse_config(std::string(parts[0]), "fuzz.toml", overrides);
    const std::string text = qface::train::to_toml(c);
    qface::train::TrainConfig back = qface::train::parse_config(text, "fuzz-roundtrip.toml", {});
    if (qface::train::to_toml(back) != text) __builtin_trap();
  } catch (const qface::Error&) {
  }
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(config)
