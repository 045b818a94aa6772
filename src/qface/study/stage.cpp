#include "qface/study/stage.h"

#include <fmt/format.h>

#include "qface/core/fs.h"

namespace qface::study {

std::string fingerprint_bytes(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return fmt::format("{:016x}", h);
}

std::string fingerprint(const nlohmann::json& j) { return fingerprint_bytes(j.dump()); }

std::string file_fingerprint(const std::filesystem::path& file) { return fingerprint_bytes(read_file(file)); }

bool has_fingerprint(const std::filesystem::path& json_file, const std::string& fp) {
  if (!std::filesystem::exists(json_file)) return false;
  try {
    const nlohmann::json j = nlohmann::json::parse(read_file(json_file));
    return j.is_object() && j.value("fingerprint", std::string()) == fp;
  } catch (const std::exception&) {
    return false;  // unreadable: redo the stage
  }
}

}  // namespace qface::study
