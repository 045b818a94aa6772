// Resumable stages of the main job and the study: a stage's result is reused
// only when the fingerprint of everything that determines it (resolved
// config, data options, model file) equals the one stored with the result;
// otherwise it is redone. Fingerprints are FNV-1a 64 of canonical JSON text
// (nlohmann's dump sorts keys) or of file bytes: a change detector, not a
// security hash.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace qface::study {

std::string fingerprint_bytes(std::string_view bytes);
std::string fingerprint(const nlohmann::json& j);
std::string file_fingerprint(const std::filesystem::path& file);

// The JSON file's "fingerprint" field equals `fp` (false when missing or unreadable).
bool has_fingerprint(const std::filesystem::path& json_file, const std::string& fp);

}  // namespace qface::study
