// The `qface` command users run. LibTorch's loading and static initialisation
// cost about half a second per process on our machines (an empty program
// linked to it takes as long), so this launcher links nothing but the C++
// runtime: it answers `qface --version` itself and hands every other command
// line to the full program, `qface-full` next to it, by exec (same process id,
// so signals, exit codes and `qface launch` behave as before).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "qface/version.h"

namespace {

// The directory of this executable, from /proc/self/exe ("" if unknown).
std::string self_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<std::size_t>(n));
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("qface %s\n", qface::kVersion);
    return 0;
  }
  const std::string dir = self_dir();
  if (dir.empty()) {
    std::fprintf(stderr, "qface: error: cannot find this program's directory (/proc/self/exe): %s\n",
                 std::strerror(errno));
    return 127;
  }
  const std::string full = dir + "/qface-full";
  ::execv(full.c_str(), argv);
  std::fprintf(stderr, "qface: error: cannot run %s: %s\n", full.c_str(), std::strerror(errno));
  return 127;
}
