// Helpers of the `qface train` end-to-end tests: the tiny synthetic set,
// the common arguments, checkpoint contents, and ranks started as separate
// processes on 127.0.0.1 (torchrun variables), each with its own pid.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "qface/backbones/backbone.h"
#include "qface/core/fs.h"
#include "tests/support/testing.h"

extern char** environ;

namespace qface::testing::train {
// One tiny synthetic set shared by the tests of one process.
inline const std::filesystem::path& tiny_data() {
  static TempDir* dir = new TempDir();  // kept for the whole run
  static const std::filesystem::path data = [] {
    auto r = run_qface({"synth", "--preset", "tiny", "--out", (*dir / "data").string()});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return *dir / "data";
  }();
  return data;
}

inline std::vector<std::string> train_args(const std::filesystem::path& out, int64_t max_steps) {
  return {"train",
          "--config",
          source_dir() + "/configs/synth_tiny.toml",
          "--set",
          "data.train=" + (tiny_data() / "train.rec").string(),
          "--set",
          "out_dir=" + out.string(),
          "--set",
          "max_steps=" + std::to_string(max_steps),
          "--set",
          "checkpoint_every=1",
          "--set",
          "keep_checkpoints=10"};
}

inline void add_sets(std::vector<std::string>& args, const std::vector<std::string>& kvs) {
  for (const auto& kv : kvs) {
    args.push_back("--set");
    args.push_back(kv);
  }
}

inline std::vector<torch::Tensor> backbone_weights(const std::filesystem::path& ckpt) {
  auto backbone = qface::backbones::make_backbone("mobilefacenet");
  torch::serialize::InputArchive archive, b;
  archive.load_from(ckpt.string());
  archive.read("backbone", b);
  backbone->load(b);
  std::vector<torch::Tensor> out = backbone->parameters();
  for (auto& t : backbone->buffers()) out.push_back(t);
  return out;
}

// Every tensor of the checkpoint's backbone and head (parameters and
// buffers), by path, without building the modules.
inline void collect_tensors(torch::serialize::InputArchive& a, const std::string& prefix,
                            std::map<std::string, torch::Tensor>& out) {
  for (const auto& key : a.keys()) {
    torch::Tensor t;
    torch::serialize::InputArchive sub;
    if (a.try_read(key, t)) out[prefix + key] = t;
    else if (a.try_read(key, sub)) collect_tensors(sub, prefix + key + ".", out);
  }
}
inline std::map<std::string, torch::Tensor> model_tensors(const std::filesystem::path& ckpt) {
  torch::serialize::InputArchive archive;
  archive.load_from(ckpt.string());
  std::map<std::string, torch::Tensor> out;
  for (const char* part : {"backbone", "head"}) {
    torch::serialize::InputArchive sub;
    archive.read(part, sub);
    collect_tensors(sub, std::string(part) + ".", out);
  }
  return out;
}

// (step, epoch, batch) recorded in a checkpoint.
inline std::vector<int64_t> checkpoint_position(const std::filesystem::path& ckpt) {
  torch::serialize::InputArchive archive;
  archive.load_from(ckpt.string());
  torch::Tensor p;
  archive.read("position", p);
  return std::vector<int64_t>(p.data_ptr<int64_t>(), p.data_ptr<int64_t>() + p.numel());
}

// A TCP port that was free a moment ago (for the TCPStore rendezvous).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Polls for `path` until `timeout`; true when it exists.
inline bool wait_for_file(const std::filesystem::path& path, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!std::filesystem::exists(path) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return std::filesystem::exists(path);
}

// `world` processes of `qface <args>` with RANK = 0 .. world - 1 (as `qface
// launch` starts them, but each pid at hand), stderr of rank r in log_dir/rank<r>.log.
class Ranks {
 public:
  Ranks(int world, const std::vector<std::string>& args, const std::filesystem::path& log_dir,
        const std::vector<std::string>& extra_env = {})
      : Ranks(world, [&args](int) { return args; }, log_dir, extra_env) {}
  // Process r runs `qface <args_of(r)>`.
  Ranks(int world, const std::function<std::vector<std::string>(int)>& args_of, const std::filesystem::path& log_dir,
        const std::vector<std::string>& extra_env = {})
      : log_dir_(log_dir) {
    const int port = free_port();
    std::filesystem::create_directories(log_dir);
    for (int r = 0; r < world; ++r) {
      std::vector<std::string> env;
      for (char** e = environ; *e; ++e) {
        std::string kv(*e);
        bool ours = false;
        for (const char* k : {"MASTER_ADDR=", "MASTER_PORT=", "RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE="})
          ours = ours || kv.rfind(k, 0) == 0;
        if (!ours) env.push_back(kv);
      }
      for (const std::string& kv : std::vector<std::string>{
               "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port), "RANK=" + std::to_string(r),
               "WORLD_SIZE=" + std::to_string(world), "LOCAL_RANK=" + std::to_string(r),
               "LOCAL_WORLD_SIZE=" + std::to_string(world)})
        env.push_back(kv);
      env.insert(env.end(), extra_env.begin(), extra_env.end());
      std::vector<char*> envp, argv = {const_cast<char*>(QFACE_BIN)};
      for (auto& s : env) envp.push_back(s.data());
      envp.push_back(nullptr);
      std::vector<std::string> a = args_of(r);
      for (auto& s : a) argv.push_back(s.data());
      argv.push_back(nullptr);
      const std::string log = log_path(r).string();
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&actions, 2, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      pid_t pid = 0;
      const int rc = posix_spawn(&pid, QFACE_BIN, &actions, nullptr, argv.data(), envp.data());
      posix_spawn_file_actions_destroy(&actions);
      EXPECT_EQ(rc, 0) << "cannot start rank " << r;
      pids_.push_back(rc == 0 ? pid : -1);
      codes_.push_back(-1);
    }
  }
  ~Ranks() {
    for (std::size_t r = 0; r < pids_.size(); ++r)
      if (pids_[r] > 0 && codes_[r] < 0) {
        ::kill(pids_[r], SIGKILL);
        ::waitpid(pids_[r], nullptr, 0);
      }
  }
  Ranks(const Ranks&) = delete;
  Ranks& operator=(const Ranks&) = delete;

  void signal(int rank, int sig) { ::kill(pids_[rank], sig); }
  // Exit code of `rank` (128 + signal when killed), SIGKILLing it after `timeout`: -1 then.
  int wait(int rank, std::chrono::seconds timeout) {
    if (codes_[rank] >= 0 || pids_[rank] <= 0) return codes_[rank];
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pids_[rank], &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pids_[rank], SIGKILL);
        ::waitpid(pids_[rank], &status, 0);
        codes_[rank] = 128 + SIGKILL;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    codes_[rank] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return codes_[rank];
  }
  std::filesystem::path log_path(int rank) const { return log_dir_ / ("rank" + std::to_string(rank) + ".log"); }
  std::string log(int rank) const { return qface::read_file(log_path(rank)); }

 private:
  std::filesystem::path log_dir_;
  std::vector<pid_t> pids_;
  std::vector<int> codes_;
};

}  // namespace qface::testing::train
