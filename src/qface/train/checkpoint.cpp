#include "qface/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include "qface/core/device.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/io/checkpoint.h"

namespace qface::train {
namespace fs = std::filesystem;

fs::path checkpoint_path(const fs::path& dir, int64_t step, int rank, bool per_rank) {
  return dir / (per_rank ? fmt::format("ckpt-{:09d}.rank{}.pt", step, rank) : fmt::format("ckpt-{:09d}.pt", step));
}

void save_checkpoint(const fs::path& path, torch::nn::Module& backbone, torch::nn::Module& head,
                     torch::optim::Optimizer& optimizer, const TrainPosition& pos) {
  torch::serialize::OutputArchive archive, b, h, o;
  backbone.save(b);
  head.save(h);
  optimizer.save(o);
  archive.write("backbone", b);
  archive.write("head", h);
  archive.write("optimizer", o);
  archive.write("position", torch::tensor({pos.step, pos.epoch, pos.batch}, torch::kInt64));
  archive.write("rng", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomic(path, bytes.str());
}

TrainPosition load_checkpoint(const fs::path& path, torch::nn::Module& backbone, torch::nn::Module& head,
                              torch::optim::Optimizer& optimizer) {
  require(fs::exists(path), "{}: checkpoint not found", path.string());
  try {
    // qface's own reader first: it checks every length and size against the
    // file, which LibTorch's loader trusts (io/checkpoint.cpp, read_qface).
    (void)io::load_torch_pickle(path);
    torch::serialize::InputArchive archive, b, h, o;
    // Tensors go where the model is: a checkpoint written on a GPU resumes
    // on the CPU and the other way round.
    archive.load_from(path.string(), module_device(backbone));
    archive.read("backbone", b);
    archive.read("head", h);
    archive.read("optimizer", o);
    backbone.load(b);
    head.load(h);
    optimizer.load(o);
    torch::Tensor p, rng;
    archive.read("position", p);
    archive.read("rng", rng);
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(rng);
    require(p.numel() == 3, "{}: bad position record", path.string());
    return {p[0].item<int64_t>(), p[1].item<int64_t>(), p[2].item<int64_t>()};
  } catch (const qface::Error&) {
    throw;
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    fail("{}: cannot load checkpoint: {}", path.string(), msg.substr(0, msg.find('\n')));
  } catch (const std::exception& e) {
    fail("{}: cannot load checkpoint: {}", path.string(), e.what());
  }
}

std::vector<fs::path> list_checkpoints(const fs::path& dir, int rank, bool per_rank) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  const std::regex pattern(per_rank ? fmt::format(R"(ckpt-\d{{9}}\.rank{}\.pt)", rank) : R"(ckpt-\d{9}\.pt)");
  for (const auto& e : fs::directory_iterator(dir))
    if (std::regex_match(e.path().filename().string(), pattern)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

void prune_checkpoints(const fs::path& dir, int rank, bool per_rank, int64_t keep) {
  auto all = list_checkpoints(dir, rank, per_rank);
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep) < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i], ec);
  }
}

int64_t checkpoint_step(const fs::path& path) {
  static const std::regex pattern(R"(ckpt-(\d{9})(\.rank\d+)?\.pt)");
  std::smatch m;
  const std::string name = path.filename().string();
  require(std::regex_match(name, m, pattern), "{}: not a checkpoint file name", path.string());
  return std::stoll(m[1].str());
}

int64_t newest_common_step(const std::vector<std::vector<int64_t>>& steps) {
  if (steps.empty()) return -1;
  std::set<int64_t> common(steps[0].begin(), steps[0].end());
  for (std::size_t r = 1; r < steps.size(); ++r) {
    const std::set<int64_t> mine(steps[r].begin(), steps[r].end());
    std::erase_if(common, [&](int64_t s) { return !mine.count(s); });
  }
  return common.empty() ? -1 : *common.rbegin();
}

ResumePoint agree_resume_point(Dist& dist, const fs::path& dir, bool per_rank) {
  const int rank = dist.rank(), world = dist.world_size();
  const std::vector<fs::path> mine = list_checkpoints(dir, rank, per_rank);
  std::vector<int64_t> steps;
  for (const auto& p : mine) steps.push_back(checkpoint_step(p));

  ResumePoint rp;
  if (world == 1) {
    rp.steps = {steps};
  } else {
    // Every rank's steps: padded with -1 to the longest list, all-gathered.
    torch::Tensor longest = torch::tensor({static_cast<int64_t>(steps.size())}, torch::kInt64);
    dist.all_reduce_max(longest);
    const int64_t width = std::max<int64_t>(longest.item<int64_t>(), 1);
    torch::Tensor row = torch::full({1, width}, int64_t{-1}, torch::kInt64);
    for (std::size_t i = 0; i < steps.size(); ++i) row[0][static_cast<int64_t>(i)] = steps[i];
    torch::Tensor all = dist.all_gather(row);
    auto a = all.accessor<int64_t, 2>();
    for (int r = 0; r < world; ++r) {
      std::vector<int64_t> theirs;
      for (int64_t i = 0; i < width; ++i)
        if (a[r][i] >= 0) theirs.push_back(a[r][i]);
      rp.steps.push_back(std::move(theirs));
    }
  }
  rp.step = newest_common_step(rp.steps);
  if (rp.step < 0) {
    const bool none = std::all_of(rp.steps.begin(), rp.steps.end(), [](const auto& s) { return s.empty(); });
    require(!none, "--resume: no checkpoint in {}", dir.string());
    std::vector<std::string> listed;
    for (int r = 0; r < world; ++r) listed.push_back(fmt::format("rank {}: [{}]", r, fmt::join(rp.steps[r], ", ")));
    fail("--resume: no checkpoint step in {} is there for every rank ({}){}", dir.string(), fmt::join(listed, "; "),
         per_rank ? "" : "; only rank 0 writes checkpoints without a sharded head, so out_dir must be shared");
  }
  rp.path = checkpoint_path(dir, rp.step, rank, per_rank);
  // The crashed run's checkpoints past the common step are of a future this
  // run will redo; they would otherwise survive pruning by name and make a
  // later --resume pick a step that the other ranks never reach again.
  if (per_rank || rank == 0)
    for (const auto& p : mine)
      if (checkpoint_step(p) > rp.step) {
        spdlog::warn("train: removing {}: newer than step {}, the newest one every rank has", p.string(), rp.step);
        std::error_code ec;
        fs::remove(p, ec);
      }
  return rp;
}

}  // namespace qface::train
