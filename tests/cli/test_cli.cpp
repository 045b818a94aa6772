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

TEST(Cli, EverySubcommandHasHelp) {
  auto names = subcommands();
  ASSERT_FALSE(names.empty());
  for (const auto& name : names) {
    auto r = run_qface({name, "--help"});
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << name;
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
