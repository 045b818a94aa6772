// Data- and model-parallel communication on PyTorch's own engine: c10d with
// the Gloo backend (CPU) or NCCL (CUDA devices, where LibTorch has it),
// rendezvous through a TCPStore configured by the torchrun environment
// variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK). A world
// of one needs no store and no process group.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "qface/core/torch_compat.h"

namespace c10d {
class Store;
}  // namespace c10d

namespace qface::train {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // How long a rank waits for the others in a collective (Gloo) and at the
  // rendezvous: QFACE_DIST_TIMEOUT_S seconds, 300 by default.
  std::chrono::milliseconds timeout = std::chrono::seconds(300);
  // auto (NCCL for CUDA devices, Gloo for the CPU), gloo or nccl:
  // QFACE_DIST_BACKEND, which `qface launch --backend` sets.
  std::string backend = "auto";
  // Reads the torchrun variables (and QFACE_DIST_TIMEOUT_S, QFACE_DIST_BACKEND); absent ones keep
  // the defaults above (a single process). Throws qface::Error on malformed or
  // inconsistent values.
  static DistEnv from_env();
};

class Dist {
 public:
  // World of one: every collective is the identity.
  static std::shared_ptr<Dist> single();
  // Rendezvous through a TCPStore at master_addr:master_port (rank 0 hosts
  // it) and a process group, both waiting up to env.timeout: Gloo on the
  // loopback or the master's interface, or NCCL among the ranks' GPUs
  // (env.backend, resolved for `device` by pick_backend). `device` is this
  // rank's training device.
  static std::shared_ptr<Dist> init(const DistEnv& env, const torch::Device& device = torch::kCPU);
  // A Gloo group over an existing store (tests run several ranks in one process).
  static std::shared_ptr<Dist> over_store(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                                          std::chrono::milliseconds timeout = std::chrono::seconds(300));

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // This process's index among the workers of its machine (LOCAL_RANK).
  int local_rank() const { return local_rank_; }
  bool is_main() const { return rank_ == 0; }
  // "gloo", "nccl", or "none" for a world of one.
  const std::string& backend() const { return backend_; }
  // Where the tensors of a collective must live: this rank's GPU with NCCL,
  // the CPU otherwise (the helpers below put their small tensors there).
  const torch::Device& device() const { return device_; }

  void all_reduce_sum(std::vector<torch::Tensor>& tensors);
  void all_reduce_sum(torch::Tensor& tensor);
  void all_reduce_max(torch::Tensor& tensor);
  // Concatenation along dim 0 of every rank's tensor (all of the same shape).
  torch::Tensor all_gather(const torch::Tensor& tensor);
  // Sum over ranks of `tensor`, left on `root` (other ranks' tensors are unspecified).
  void reduce_sum(torch::Tensor& tensor, int root);
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  void barrier();

  // Averages the gradients of `params` over the ranks, packed into flat
  // buckets of about `bucket_bytes` (one all-reduce per bucket).
  void average_gradients(const std::vector<torch::Tensor>& params, std::size_t bucket_bytes = 25u << 20);
  // Copies rank 0's values of `tensors` (parameters, buffers) to every rank.
  void sync_from_main(const std::vector<torch::Tensor>& tensors);

 private:
  Dist(int rank, int world_size, int local_rank, c10::intrusive_ptr<compat::CommGroup> group,
       c10::intrusive_ptr<c10d::Store> store, std::string backend, torch::Device device);
  int rank_ = 0, world_size_ = 1, local_rank_ = 0;
  std::string backend_;
  torch::Device device_;
  c10::intrusive_ptr<compat::CommGroup> group_;
  c10::intrusive_ptr<c10d::Store> store_;
};

// The backend names `launch --backend` and QFACE_DIST_BACKEND take: auto
// (by the device), gloo, nccl.
const std::vector<std::string>& backend_names();
// An unknown name throws qface::Error (`what` names where it came from).
void check_backend_name(const std::string& requested, const std::string& what);
// The same, and nccl where this LibTorch has no NCCL throws too: what
// `launch` checks before any worker starts.
void check_backend(const std::string& requested, const std::string& what);
// The backend for `requested` on `device`: auto picks NCCL for CUDA and Gloo
// for the CPU. Throws as check_backend does, and for nccl on the CPU.
std::string pick_backend(const std::string& requested, const torch::Device& device);

// Whether this LibTorch has c10d's NCCL backend.
bool nccl_built();

// True on every rank when `flag` is true on any rank (an all-reduce MAX):
// ranks that must take the same branch (stop, fail) decide with it.
bool any_rank(Dist& dist, bool flag);

// The agreement every rank makes before each training step, in one
// all-gather of (stop flag, local batch rows) per rank: returns true on every
// rank when any rank wants to stop (SIGINT/SIGTERM), so that all ranks stop
// after the same step; throws qface::Error on every rank, naming each rank's
// rows and `step` (the step about to be taken), when the local batches differ in size (the collectives of
// the step need equal shapes on every rank).
bool agree_before_step(Dist& dist, bool local_stop, int64_t local_rows, int64_t step);

// Mean and unbiased std of `values` over every rank's values (two passes:
// the global mean first, then the global sum of squared deviations).
std::pair<torch::Tensor, torch::Tensor> global_mean_std(Dist& dist, const torch::Tensor& values);

// all_gather that back-propagates: the gradient of the gathered tensor is
// summed over ranks and each rank keeps the slice of its own rows. (The
// arcface_torch convention multiplies it by the world size to undo the
// averaging of data-parallel gradients; `scale` carries that factor.)
torch::Tensor all_gather_with_grad(const std::shared_ptr<Dist>& dist, const torch::Tensor& tensor, double scale);

}  // namespace qface::train
