// The qface binary: version, help on every subcommand, one-line errors.
#include <gtest/gtest.h>

#include <regex>

#include "tests/support/testing.h"

using qface::testing::run_qface;

namespace {
std::vector<std::string> subcommands() {
  auto r = run_qface({"--help"});
  std::vector<std::string> names;
  const std::string marker = "Subcommands:";
  auto pos = r.out.find(marker);
  if (pos == std::string::npos) return names;
  std::istringstream lines(r.out.substr(pos + marker.size()));
  std::string line;
  std::regex row(R"(^\s+([a-z][a-z0-9-]*)\s)");
  while (std::getline(lines, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row)) names.push_back(m[1]);
  }
  return names;
}
}  // namespace

TEST(Cli, VersionAndHelp) {
  auto v = run_qface({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.out.find("qface 0."), std::string::npos) << v.out;
  auto h = run_qface({"--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("margin"), std::string::npos);
}

// `qface` is a launcher that must not load LibTorch (half a second per
// process) for --version, and hands everything else to qface-full.
TEST(Cli, LauncherAnswersVersionWithoutLibTorch) {
  auto launcher = run_qface({"--version"});
  auto full = qface::testing::run_program(QFACE_FULL_BIN, {"--version"});
  EXPECT_EQ(full.exit_code, 0);
  EXPECT_EQ(launcher.out, full.out);
  // The dynamic loader lists what an executable loads (what ldd does).
  auto libs = qface::testing::run_program("/usr/bin/env", {"LD_TRACE_LOADED_OBJECTS=1", QFACE_BIN});
  EXPECT_NE(libs.out.find("libc.so"), std::string::npos) << libs.out;
  EXPECT_EQ(libs.out.find("libtorch"), std::string::npos) << libs.out;
  auto full_libs = qface::testing::run_program("/usr/bin/env", {"LD_TRACE_LOADED_OBJECTS=1", QFACE_FULL_BIN});
  EXPECT_NE(full_libs.out.find("libtorch_cpu"), std::string::npos);
  // Global flags before --version go to the full program, same answer.
  auto flagged = run_qface({"--log-level", "warn", "--version"});
  EXPECT_EQ(flagged.exit_code, 0);
  EXPECT_EQ(flagged.out, full.out);
}

// qface-full's malloc is jemalloc with the settings of apps/qface/main.cpp
// (core/allocator.h), as jemalloc itself reports them back.
TEST(Cli, MallocIsJemallocKeepingFreedMemoryOnHugePages) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "sanitizer builds keep the sanitizer's malloc";
#endif
  qface::testing::TempDir dir;
  const std::string bad = (dir / "bad.npy").string();  // not an array: margin stops at reading it
  qface::testing::write_text(bad, "");
  auto r = run_qface({"--log-level", "debug", "margin", "--embeddings", bad, "--labels", bad, "--kernel", bad});
  EXPECT_EQ(r.exit_code, 1);
  const std::string all = r.out + r.err;
  EXPECT_NE(all.find("bad.npy"), std::string::npos) << all;
  EXPECT_NE(all.find("malloc: jemalloc 5."), std::string::npos) << all;
  EXPECT_NE(all.find("(thp always, dirty decay -1 ms, muzzy decay -1 ms, oversize threshold 0)"), std::string::npos)
      << all;
}

TEST(Cli, LauncherWithoutFullProgramSaysSo) {
  qface::testing::TempDir dir;
  const auto copy = dir.path() / "qface";
  std::filesystem::copy_file(QFACE_BIN, copy);
  std::filesystem::permissions(copy, std::filesystem::perms::owner_all);
  auto r = qface::testing::run_program(copy.string(), {"toy"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_EQ(r.err.rfind("qface: error: cannot run " + (dir.path() / "qface-full").string(), 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(run_qface({"toy", "--help"}).exit_code, 0);
}

TEST(Cli, EverySubcommandHasHelp) {
  auto names = subcommands();
  ASSERT_FALSE(names.empty());
  for (const auto& name : names) {
    auto r = run_qface({name, "--help"});
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << name;
    // Issue #39 item 7: the negated flag's value read as if fusion were off by default.
    EXPECT_EQ(r.out.find("--no-flip-fuse{false}"), std::string::npos) << name;
    // --arch is optional wherever it is offered: the checkpoint records it.
    EXPECT_EQ(r.out.find("--arch TEXT:{ir_18,ir_34,ir_50,ir_101,ir_se_50,iresnet18,iresnet34,iresnet50,iresnet100,"
                         "mobilefacenet} REQUIRED"),
              std::string::npos)
        << name;
  }
}

TEST(Cli, BadUsageGivesOneLineAndNonZeroExit) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{}, {"no-such-command"}, {"margin"}, {"margin", "--embeddings", "/nonexistent.npy"},
        {"margin", "--head", "sphereface"}, {"--log-level", "loud", "toy", "--n", "4"}}) {
    auto r = run_qface(args);
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    EXPECT_NE(r.exit_code, 0) << joined;
    if (r.exit_code == 0) continue;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << joined << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("qface: error: ", 0), 0u) << joined << "\n" << r.err;
  }
}
