// qface launch: start N local data-parallel workers of `qface <command>`, the
// way torchrun does (MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE/LOCAL_RANK).
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>

#include <torch/cuda.h>

#include "apps/qface/command.h"
#include "qface/core/device.h"
#include "qface/core/error.h"
#include "qface/train/distributed.h"

extern char** environ;

namespace qface::cli {
namespace {

constexpr int kInterrupted = 130;  // the exit code of an interrupted `qface train`

struct LaunchArgs {
  int nproc = 2;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int node_rank = 0;
  int nnodes = 1;
  std::string device;
  std::string backend = "auto";
  std::vector<std::string> command;
};

std::string self_path() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  require(n > 0, "launch: cannot find the qface binary");
  return std::string(buf, static_cast<std::size_t>(n));
}

int run_launch(const LaunchArgs& a) {
  require(!a.command.empty(), "launch: give the command after --, e.g. qface launch --nproc 2 -- train --config c.toml");
  require(a.node_rank >= 0 && a.node_rank < a.nnodes, "launch: --node-rank {} is outside [0, --nnodes {})",
          a.node_rank, a.nnodes);
  const int world = a.nproc * a.nnodes;
  // The backend follows the device (NCCL for CUDA, Gloo for the CPU) unless
  // forced; both are checked here, before any worker starts.
  std::string backend = a.backend;
  if (!a.device.empty()) {
    const torch::Device device = device_for_rank(parse_device(a.device), 0);
    if (device.is_cuda() && !device.has_index())
      require(static_cast<int64_t>(torch::cuda::device_count()) >= a.nproc,
              "launch: --device cuda with --nproc {} needs a GPU per worker; {} visible", a.nproc,
              torch::cuda::device_count());
    backend = train::pick_backend(a.backend, device);
  } else {
    train::check_backend(backend, "launch --backend");  // the device is each worker's own choice
  }
  const std::string exe = self_path();
  std::vector<pid_t> pids;
  for (int local = 0; local < a.nproc; ++local) {
    const int rank = a.node_rank * a.nproc + local;
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) {
      std::string kv(*e);
      for (const char* k : {"MASTER_ADDR=", "MASTER_PORT=", "RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=",
                            "QFACE_DIST_BACKEND=", "QFACE_DEVICE="})
        if (kv.rfind(k, 0) == 0) kv.clear();
      if (!kv.empty()) env_store.push_back(kv);
    }
    env_store.push_back("MASTER_ADDR=" + a.master_addr);
    env_store.push_back("MASTER_PORT=" + std::to_string(a.master_port));
    env_store.push_back("RANK=" + std::to_string(rank));
    env_store.push_back("WORLD_SIZE=" + std::to_string(world));
    env_store.push_back("LOCAL_RANK=" + std::to_string(local));
    env_store.push_back("LOCAL_WORLD_SIZE=" + std::to_string(a.nproc));
    env_store.push_back("QFACE_DIST_BACKEND=" + backend);
    if (!a.device.empty()) env_store.push_back("QFACE_DEVICE=" + a.device);
    std::vector<char*> envp;
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = {exe};
    args.insert(args.end(), a.command.begin(), a.command.end());
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), envp.data());
    require(rc == 0, "launch: cannot start worker {}: {}", rank, std::strerror(rc));
    pids.push_back(pid);
  }
  spdlog::info("launch: {} worker(s) of `{}` (world size {}, node {} of {}, master {}:{}, backend {})", a.nproc,
               fmt::join(a.command, " "), world, a.node_rank, a.nnodes, a.master_addr, a.master_port, backend);
  int result = 0;
  for (std::size_t left = pids.size(); left > 0; --left) {
    int status = 0;
    pid_t done = ::wait(&status);
    if (done < 0) break;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code == kInterrupted && WIFEXITED(status)) {
      // `qface train` stopped by SIGINT/SIGTERM: the ranks agree to stop after
      // the same step, so the others are finishing their checkpoints of it.
      if (result == 0) result = code;
      spdlog::warn("launch: worker pid {} was interrupted; the others stop after the same step", done);
    } else if (code != 0 && (result == 0 || result == kInterrupted)) {
      result = code;
      spdlog::error("launch: worker pid {} exited with {}; stopping the others", done, code);
      for (pid_t p : pids)
        if (p != done) ::kill(p, SIGTERM);
    }
  }
  return result;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<LaunchArgs>();
  app.add_option("--nproc", a->nproc, "workers on this machine")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--nnodes", a->nnodes, "machines in the job")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--node-rank", a->node_rank, "this machine's index")->capture_default_str();
  app.add_option("--master-addr", a->master_addr, "address of rank 0's machine")->capture_default_str();
  app.add_option("--master-port", a->master_port, "TCPStore port")->capture_default_str()->check(CLI::Range(1, 65535));
  app.add_option("--device", a->device,
                 "cpu, cuda or cuda:N for the workers (QFACE_DEVICE; `qface train` takes it unless given --device); "
                 "plain cuda gives each worker its own GPU");
  app.add_option("--backend", a->backend, "collectives: auto (NCCL for CUDA devices, Gloo for the CPU), gloo or nccl")
      ->capture_default_str()
      ->check(CLI::IsMember(train::backend_names()));
  app.add_option("command", a->command, "the qface command to run, after --")->required();
  app.prefix_command();
  return [a] { return run_launch(*a); };
}

const Registrar registrar{{"launch", "Start N local data-parallel workers (like torchrun)", setup}};

}  // namespace
}  // namespace qface::cli
