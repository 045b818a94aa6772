#include "apps/qface/bench/util.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

namespace qface::cli {
namespace fs = std::filesystem;

double best_seconds(const std::function<void()>& f, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) f();
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::debug("bench: run {} of {}: {:.3f} s", i + 1, iters, s);
    best = std::min(best, s);
  }
  return best;
}

std::string python_script_dir(const std::string& script, const std::string& given) {
  if (!given.empty()) return given;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates = {fs::current_path() / "bench/python"};
  if (!ec)
    candidates.insert(candidates.begin(),
                      {exe.parent_path().parent_path() / "bench/python", exe.parent_path() / "bench/python"});
  for (const auto& c : candidates)
    if (fs::exists(c / script, ec)) return c.string();
  return "";
}

nlohmann::json run_python_script(const fs::path& file, const std::string& args, int threads, std::string& note) {
  if (!fs::exists("/usr/bin/python3")) return note = "no /usr/bin/python3", nullptr;
  const std::string env = threads > 0 ? fmt::format("OMP_NUM_THREADS={0} OPENBLAS_NUM_THREADS={0} ", threads) : "";
  const std::string cmd = fmt::format("{}/usr/bin/python3 '{}' {} 2>/dev/null", env, file.string(), args);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return note = "cannot start python", nullptr;
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  if (const int status = pclose(p); status != 0)
    return note = fmt::format("{} failed (status {}; it needs /usr/bin/python3 with torch or numpy: run it by hand "
                              "to see why)",
                              file.filename().string(), status),
           nullptr;
  try {
    auto j = nlohmann::json::parse(out.substr(out.rfind("\n{") == std::string::npos ? out.find('{') : out.rfind("\n{") + 1));
    note = "torch " + j.value("torch", std::string("?"));
    return j;
  } catch (const std::exception& e) {
    return note = std::string("unreadable python output: ") + e.what(), nullptr;
  }
}

nlohmann::json run_python_reference(const std::string& script, const std::string& args, const std::string& dir_hint,
                                    std::string& note, int threads) {
  if (!fs::exists("/usr/bin/python3")) return note = "no /usr/bin/python3", nullptr;
  const std::string dir = python_script_dir(script, dir_hint);
  if (dir.empty()) return note = "bench/python/" + script + " not found (--python-dir)", nullptr;
  return run_python_script(dir + "/" + script, args, threads, note);
}

}  // namespace qface::cli
