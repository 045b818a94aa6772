#include "qface/train/checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <regex>
#include <sstream>

#include "qface/core/error.h"
#include "qface/core/fs.h"

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
    torch::serialize::InputArchive archive, b, h, o;
    archive.load_from(path.string());
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

}  // namespace qface::train
