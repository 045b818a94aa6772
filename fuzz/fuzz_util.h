// Helpers shared by the fuzz targets.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace qface::fuzz {

// A scratch folder per fuzzing process (in /dev/shm when there is one), for
// the readers that take paths. Files are rewritten on every input.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    auto d = base / ("qface-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

inline std::filesystem::path put_file(const std::string& name, std::string_view bytes) {
  const auto p = scratch_dir() / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

// Splits the input at each occurrence of `sep` (at most `parts` pieces).
inline std::vector<std::string_view> split(std::string_view in, std::string_view sep, std::size_t parts) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < parts) {
    const auto k = in.find(sep);
    if (k == std::string_view::npos) break;
    out.push_back(in.substr(0, k));
    in.remove_prefix(k + sep.size());
  }
  out.push_back(in);
  return out;
}

inline std::string_view as_view(const uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace qface::fuzz

// Each target is a function qface::fuzz::one_<name>(data, size); the libFuzzer
// build gives it libFuzzer's entry point, the test build (QFACE_FUZZ_REPLAY)
// calls it on the seed corpus and the regression inputs (tests/fuzz).
#ifdef QFACE_FUZZ_REPLAY
#define QFACE_FUZZ_ENTRY(name)
#else
#define QFACE_FUZZ_ENTRY(name) \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) { return qface::fuzz::one_##name(data, size); }
#endif
