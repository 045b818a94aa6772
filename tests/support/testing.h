// Shared helpers for the test suites: scratch folders, running the qface
// binary, and the optional Python reference interpreter.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace qface::testing {

// A fresh, empty folder under the build tree, unique per test, removed at exit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs a program with arguments (no shell), capturing stdout and stderr.
RunResult run_program(const std::string& program, const std::vector<std::string>& args);

// Runs the built `qface` binary.
RunResult run_qface(const std::vector<std::string>& args);

// /usr/bin/python3 when it can import torch (the side-by-side reference), else "".
const std::string& python_with_torch();

std::string source_dir();

// The executable `name` on $PATH, or "" (tests that need node, chromium, ...).
std::string in_path(const std::string& name);

// node (or nodejs) when it is at least `major`, else "" (tests that run a
// JavaScript reference skip, saying why).
std::string node_at_least(int major);

// Writes `text` to `path`, creating its folders (test fixtures).
void write_text(const std::filesystem::path& path, const std::string& text);

}  // namespace qface::testing
