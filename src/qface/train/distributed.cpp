#include "qface/train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/torch.h>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "qface/core/error.h"

namespace qface::train {
namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    std::size_t used = 0;
    int x = std::stoi(v, &used);
    if (used != std::string(v).size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    fail("environment variable {}={} is not an integer", name, v);
  }
}

void wait(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(); }

}  // namespace

DistEnv DistEnv::from_env() {
  DistEnv e;
  e.rank = env_int("RANK", 0);
  e.world_size = env_int("WORLD_SIZE", 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  e.master_port = env_int("MASTER_PORT", e.master_port);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  const int timeout_s = env_int("QFACE_DIST_TIMEOUT_S", 300);
  require(timeout_s > 0, "QFACE_DIST_TIMEOUT_S must be a positive number of seconds, got {}", timeout_s);
  e.timeout = std::chrono::seconds(timeout_s);
  if (const char* b = std::getenv("QFACE_DIST_BACKEND"); b && *b) e.backend = b;
  check_backend_name(e.backend, "QFACE_DIST_BACKEND");
  require(e.world_size >= 1, "WORLD_SIZE must be at least 1, got {}", e.world_size);
  require(e.rank >= 0 && e.rank < e.world_size, "RANK must lie in [0, WORLD_SIZE = {}), got {}", e.world_size, e.rank);
  require(e.master_port > 0 && e.master_port < 65536, "MASTER_PORT must be a TCP port, got {}", e.master_port);
  return e;
}

Dist::Dist(int rank, int world_size, int local_rank, c10::intrusive_ptr<compat::CommGroup> group,
           c10::intrusive_ptr<c10d::Store> store, std::string backend, torch::Device device)
    : rank_(rank),
      world_size_(world_size),
      local_rank_(local_rank),
      backend_(std::move(backend)),
      device_(device),
      group_(std::move(group)),
      store_(std::move(store)) {}

std::shared_ptr<Dist> Dist::single() {
  return std::shared_ptr<Dist>(new Dist(0, 1, 0, {}, {}, "none", torch::kCPU));
}

bool nccl_built() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

const std::vector<std::string>& backend_names() {
  static const std::vector<std::string> names{"auto", "gloo", "nccl"};
  return names;
}

void check_backend_name(const std::string& requested, const std::string& what) {
  const auto& names = backend_names();
  require(std::find(names.begin(), names.end(), requested) != names.end(),
          "{}: the backend must be auto, gloo or nccl, got '{}'", what, requested);
}

void check_backend(const std::string& requested, const std::string& what) {
  check_backend_name(requested, what);
  require(requested != "nccl" || nccl_built(),
          "{}: this LibTorch has no NCCL backend (built without USE_C10D_NCCL); use gloo or a LibTorch built with "
          "NCCL (Debian 13's libtorch-cuda-dev, PyTorch's own)",
          what);
}

std::string pick_backend(const std::string& requested, const torch::Device& device) {
  check_backend_name(requested, "dist");
  const std::string b = requested != "auto" ? requested : device.is_cuda() ? "nccl" : "gloo";
  require(b != "nccl" || device.is_cuda(), "dist: the NCCL backend needs CUDA devices; this rank trains on {} (use gloo)",
          device.str());
  check_backend(b, "dist");
  return b;
}

std::shared_ptr<Dist> Dist::over_store(const c10::intrusive_ptr<c10d::Store>& store, int rank, int world_size,
                                       std::chrono::milliseconds timeout) {
  if (world_size == 1) return single();
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
  return std::shared_ptr<Dist>(new Dist(rank, world_size, rank, group, store, "gloo", torch::kCPU));
}

std::shared_ptr<Dist> Dist::init(const DistEnv& env, const torch::Device& device) {
  if (env.world_size == 1) return single();
  const std::string backend = pick_backend(env.backend, device);
  const std::chrono::milliseconds timeout = env.timeout;
  c10d::TCPStoreOptions opts;
  opts.port = static_cast<std::uint16_t>(env.master_port);
  opts.isServer = env.rank == 0;
  opts.numWorkers = env.world_size;
  opts.waitWorkers = true;
  opts.timeout = timeout;
  spdlog::info("dist: rank {}/{} rendezvous at {}:{} ({} on {})", env.rank, env.world_size, env.master_addr,
               env.master_port, backend, device.str());
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
  } catch (const std::exception& e) {
    fail("dist: rendezvous at {}:{} failed: {}", env.master_addr, env.master_port, e.what());
  }
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("qface", store);
  c10::intrusive_ptr<compat::CommGroup> group;
  if (backend == "nccl") {
#ifdef USE_C10D_NCCL
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, env.rank, env.world_size, options);
#endif
  } else {
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // Bind where the master is reachable: loopback for local runs, otherwise
    // this host's address (Gloo resolves the hostname).
    const bool local = env.master_addr == "127.0.0.1" || env.master_addr == "localhost";
    options->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                     : c10d::ProcessGroupGloo::createDefaultDevice());
    group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env.rank, env.world_size, options);
  }
  const torch::Device scratch = backend == "nccl" ? device : torch::Device(torch::kCPU);
  return std::shared_ptr<Dist>(new Dist(env.rank, env.world_size, env.local_rank, group, store, backend, scratch));
}

namespace {
// NCCL only takes tensors on the rank's GPU: a collective on tensors that
// live elsewhere (small CPU tensors of the agreements, validation features)
// runs on copies there, copied back after.
template <class Collective>
void on_device(std::vector<torch::Tensor>& tensors, const torch::Device& device, Collective collective) {
  bool moved = false;
  for (const auto& t : tensors) moved = moved || t.device() != device;
  if (!moved) return collective(tensors);
  std::vector<torch::Tensor> there;
  for (const auto& t : tensors) there.push_back(t.to(device));
  collective(there);
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < tensors.size(); ++i) tensors[i].copy_(there[i]);
}
}  // namespace

void Dist::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  if (world_size_ == 1 || tensors.empty()) return;
  on_device(tensors, device_, [&](std::vector<torch::Tensor>& v) { wait(group_->allreduce(v)); });
}

void Dist::all_reduce_sum(torch::Tensor& tensor) {
  std::vector<torch::Tensor> v{tensor};
  all_reduce_sum(v);
}

void Dist::all_reduce_max(torch::Tensor& tensor) {
  if (world_size_ == 1) return;
  std::vector<torch::Tensor> v{tensor};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  on_device(v, device_, [&](std::vector<torch::Tensor>& t) { wait(group_->allreduce(t, o)); });
}

torch::Tensor Dist::all_gather(const torch::Tensor& tensor) {
  if (world_size_ == 1) return tensor;
  torch::Tensor input = tensor.contiguous().to(device_);
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < world_size_; ++r) out[0].push_back(torch::empty_like(input));
  std::vector<torch::Tensor> in{input};
  wait(group_->allgather(out, in));
  return torch::cat(out[0], 0).to(tensor.device());
}

void Dist::reduce_sum(torch::Tensor& tensor, int root) {
  if (world_size_ == 1) return;
  std::vector<torch::Tensor> v{tensor};
  c10d::ReduceOptions o;
  o.rootRank = root;
  on_device(v, device_, [&](std::vector<torch::Tensor>& t) { wait(group_->reduce(t, o)); });
}

void Dist::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  if (world_size_ == 1 || tensors.empty()) return;
  c10d::BroadcastOptions o;
  o.rootRank = root;
  on_device(tensors, device_, [&](std::vector<torch::Tensor>& t) { wait(group_->broadcast(t, o)); });
}

void Dist::barrier() {
  if (world_size_ == 1) return;
  wait(group_->barrier());
}

void Dist::average_gradients(const std::vector<torch::Tensor>& params, std::size_t bucket_bytes) {
  if (world_size_ == 1) return;
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> bucket;
  std::size_t bytes = 0;
  auto flush = [&] {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat{torch::cat(
        [&] {
          std::vector<torch::Tensor> views;
          for (auto& g : bucket) views.push_back(g.reshape({-1}));
          return views;
        }(),
        0)};
    wait(group_->allreduce(flat));
    flat[0].div_(world_size_);
    int64_t offset = 0;
    for (auto& g : bucket) {
      g.copy_(flat[0].slice(0, offset, offset + g.numel()).view_as(g));
      offset += g.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& p : params) {
    torch::Tensor g = p.grad();
    if (!g.defined()) {
      // Every rank must take part in every bucket: a missing gradient counts as zero.
      p.mutable_grad() = torch::zeros_like(p);
      g = p.grad();
    }
    bucket.push_back(g);
    bytes += static_cast<std::size_t>(g.numel()) * g.element_size();
    if (bytes >= bucket_bytes) flush();
  }
  flush();
}

void Dist::sync_from_main(const std::vector<torch::Tensor>& tensors) {
  if (world_size_ == 1) return;
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    std::vector<torch::Tensor> v{t.data()};
    broadcast(v, 0);
  }
}

bool any_rank(Dist& dist, bool flag) {
  if (dist.world_size() == 1) return flag;
  torch::Tensor t = torch::tensor({static_cast<int64_t>(flag)}, torch::kInt64);
  dist.all_reduce_max(t);
  return t.item<int64_t>() != 0;
}

bool agree_before_step(Dist& dist, bool local_stop, int64_t local_rows, int64_t step) {
  if (dist.world_size() == 1) return local_stop;
  torch::Tensor mine = torch::tensor({static_cast<int64_t>(local_stop), local_rows}, torch::kInt64).reshape({1, 2});
  torch::Tensor all = dist.all_gather(mine);  // [world, 2]
  auto a = all.accessor<int64_t, 2>();
  bool stop = false, equal = true;
  std::vector<std::string> rows;
  for (int64_t r = 0; r < all.size(0); ++r) {
    stop = stop || a[r][0] != 0;
    equal = equal && a[r][1] == a[0][1];
    rows.push_back(fmt::format("rank {}: {}", r, a[r][1]));
  }
  require(equal,
          "train: step {}: the ranks' local batches differ in size ({}); the collectives of a step need equal "
          "shapes on every rank (data.skip_bad left out samples that could not be replaced?)",
          step, fmt::join(rows, ", "));
  return stop;
}

std::pair<torch::Tensor, torch::Tensor> global_mean_std(Dist& dist, const torch::Tensor& values) {
  torch::NoGradGuard no_grad;
  torch::Tensor v = values.detach().to(torch::kFloat64).reshape({-1});
  torch::Tensor sum_count = torch::stack({v.sum(), torch::tensor(static_cast<double>(v.numel()), v.options())});
  dist.all_reduce_sum(sum_count);
  const double n = sum_count[1].item<double>();
  torch::Tensor mean = sum_count[0] / n;
  torch::Tensor ss = (v - mean).pow(2).sum();
  dist.all_reduce_sum(ss);
  torch::Tensor std = n > 1 ? (ss / (n - 1)).sqrt() : torch::full({}, std::nan(""), v.options());
  return {mean.to(values.scalar_type()), std.to(values.scalar_type())};
}

namespace {
// The Dist outlives every graph built with it; the context keeps its address.
struct AllGatherFn : public torch::autograd::Function<AllGatherFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor input, Dist* dist,
                               double scale) {
    ctx->saved_data["rows"] = input.size(0);
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["dist"] = static_cast<int64_t>(reinterpret_cast<std::intptr_t>(dist));
    return dist->all_gather(input.detach());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* dist = reinterpret_cast<Dist*>(static_cast<std::intptr_t>(ctx->saved_data["dist"].toInt()));
    const int64_t rows = ctx->saved_data["rows"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    torch::Tensor g = grads[0].contiguous().clone();
    dist->all_reduce_sum(g);
    const int64_t r = dist->rank();
    return {g.slice(0, r * rows, (r + 1) * rows) * scale, torch::Tensor(), torch::Tensor()};
  }
};
}  // namespace

torch::Tensor all_gather_with_grad(const std::shared_ptr<Dist>& dist, const torch::Tensor& tensor, double scale) {
  if (dist->world_size() == 1) return scale == 1.0 ? tensor : tensor * 1.0;
  return AllGatherFn::apply(tensor, dist.get(), scale);
}

}  // namespace qface::train
