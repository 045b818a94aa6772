// File helpers: whole-file reads with clear errors, and atomic writes
// (temporary file in the same folder + fsync + rename), so that an interrupted
// run never leaves a half-written output behind.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

namespace qface {

// Reads a whole file; throws qface::Error naming the path when it cannot.
std::string read_file(const std::filesystem::path& path);

// Writes `bytes` to `path` atomically.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// Streams data into `path` atomically: bytes go to a hidden temporary file in
// the same folder; commit() fsyncs it and renames it over `path`. Destroying an
// uncommitted AtomicFile removes the temporary file.
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  std::filesystem::path path_;
  std::filesystem::path temp_;
  int fd_ = -1;
};

// Flushes a folder's entries (after a rename into it) to disk. Throws
// qface::Error naming the folder when it cannot be opened or fsync fails;
// a filesystem that cannot sync folders at all (EINVAL) is not an error.
void fsync_dir(const std::filesystem::path& dir);

// Creates `dir` (and parents); throws qface::Error naming it when that fails.
void ensure_dir(const std::filesystem::path& dir);

}  // namespace qface
