#include "qface/train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qface/backbones/backbone.h"
#include "qface/backbones/winograd.h"
#include "qface/core/device.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/threads.h"
#include "qface/data/loader.h"
#include "qface/heads/adaface.h"
#include "qface/heads/curricularface.h"
#include "qface/infer/embed.h"
#include "qface/io/checkpoint.h"
#include "qface/train/checkpoint.h"
#include "qface/train/optim.h"
#include "qface/train/schedule.h"
#include "qface/train/sharded_classifier.h"
#include "qface/train/validation.h"

namespace qface::train {
namespace fs = std::filesystem;
namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop = true; }

// A progress bar on a terminal; plain log lines otherwise.
class Progress {
 public:
  Progress(int64_t total, bool enabled) : total_(total), tty_(enabled && ::isatty(2)), enabled_(enabled) {}
  void update(int64_t step, int64_t epoch, double loss, double lr, double img_s, int64_t log_every) {
    if (!enabled_) return;
    const double eta = img_s > 0 ? static_cast<double>(total_ - step) * seconds_per_step_(img_s) : 0;
    const std::string text = fmt::format("epoch {} step {}/{} loss {:.4f} lr {:.4g} {:.1f} img/s ETA {}", epoch, step,
                                         total_, loss, lr, img_s, clock(eta));
    if (tty_) {
      const int width = 24;
      const int fill = static_cast<int>(width * static_cast<double>(step) / static_cast<double>(total_));
      fmt::print(stderr, "\r[{}{}] {}\x1b[K", std::string(fill, '#'), std::string(width - fill, '.'), text);
      if (step == total_) fmt::print(stderr, "\n");
    } else if (step % log_every == 0 || step == total_) {
      spdlog::info("train: {}", text);
    }
  }
  void set_batch(int64_t images) { batch_ = images; }
  void finish() {
    if (tty_) fmt::print(stderr, "\n");
  }

 private:
  double seconds_per_step_(double img_s) const { return static_cast<double>(batch_) / img_s; }
  static std::string clock(double seconds) {
    const int64_t s = static_cast<int64_t>(seconds);
    return fmt::format("{:02d}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  }
  int64_t total_;
  bool tty_, enabled_;
  int64_t batch_ = 1;
};

// metrics.jsonl: on resume, lines past the resumed step (written before the
// crash) are dropped so the file describes one consistent run.
void truncate_metrics(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const std::exception&) {
      break;  // a torn last line
    }
  }
  write_file_atomic(path, kept);
}

fs::path resolve_source(const std::string& train) {
  require(!train.empty(), "config: data.train (a RecordIO prefix, .rec file or image folder) is required");
  fs::path p(train);
  if (fs::is_directory(p) || p.extension() == ".rec") return p;
  fs::path rec = p;
  rec += ".rec";
  require(fs::exists(rec), "data.train: neither {} nor {} exists", p.string(), rec.string());
  return rec;
}

// Training mode, with BatchNorm layers kept in eval mode when frozen.
void set_training(torch::nn::Module& m, bool freeze_bn) {
  m.train();
  if (!freeze_bn) return;
  for (auto& sub : m.modules(/*include_self=*/false))
    if (dynamic_cast<torch::nn::BatchNorm1dImpl*>(sub.get()) || dynamic_cast<torch::nn::BatchNorm2dImpl*>(sub.get()))
      sub->eval();
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> forward_backbone(backbones::BackboneImpl& model, const torch::Tensor& images,
                                                         bool bf16) {
  torch::Tensor x_hat, norm;
  {
    infer::Bf16Autocast autocast(bf16, images.device().type());
    std::tie(x_hat, norm) = model.forward(images);
  }
  if (bf16) x_hat = x_hat.to(torch::kFloat32), norm = norm.to(torch::kFloat32);
  return {x_hat, norm};
}

TrainSummary train(const TrainConfig& c, const std::shared_ptr<Dist>& dist, bool resume) {
  using clock = std::chrono::steady_clock;
  const int world = dist->world_size(), rank = dist->rank();
  require(c.batch_size % world == 0, "batch_size {} is not divisible by the world size {}", c.batch_size, world);
  use_threads(c.threads);
  // Plain "cuda" gives each worker of a machine its own GPU.
  const torch::Device device = device_for_rank(parse_device(c.device, "device"), dist->local_rank());
  if (c.winograd && !device.is_cpu())
    spdlog::info("train: winograd is a CPU path (oneDNN); {} uses LibTorch's own convolutions", device.str());
  backbones::set_winograd_training(c.winograd && device.is_cpu());
  torch::manual_seed(c.seed);
  const fs::path out = c.out_dir, ckpt_dir = out / "checkpoints", metrics_path = out / "metrics.jsonl";
  const bool per_rank = c.head.sharded && world > 1;

  auto backbone = backbones::make_backbone(c.model.backbone, c.model.embedding_size);
  const auto& pre = backbone->preprocessing();

  data::LoaderOptions lo;
  lo.source = resolve_source(c.data.train);
  lo.batch_size = c.batch_size / world;
  lo.num_threads = c.data.loader_threads;
  lo.seed = c.seed;
  lo.rank = rank;
  lo.world_size = world;
  lo.drop_last = c.data.drop_last;
  lo.skip_bad = c.data.skip_bad;
  // A skipped sample is replaced from this rank's stream, so that every
  // rank's batch keeps its size: the step's collectives need equal shapes.
  lo.refill_skipped = true;
  // Batches for a GPU are assembled in page-locked memory by the loader's
  // threads, so that their copies to the device do not block the step.
  lo.pin_memory = device.is_cuda();
  lo.augmentations.crop_prob = c.data.crop_p;
  lo.augmentations.low_res_prob = c.data.low_res_p;
  lo.augmentations.photometric_prob = c.data.photometric_p;
  lo.augmentations.flip_prob = c.data.flip_p;
  lo.normalization = data::Normalization{.rgb = !pre.bgr, .mean = pre.mean, .std = pre.std};
  data::Loader loader(lo);
  const int64_t classes = loader.num_classes();
  require(classes > 1, "{}: needs at least 2 identities, found {}", lo.source.string(), classes);
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  require(steps_per_epoch > 0, "{}: {} images are too few for one batch of {} per rank", lo.source.string(),
          loader.num_images(), lo.batch_size);

  heads::HeadConfig hc = c.head.head;
  hc.embedding_size = c.model.embedding_size;
  hc.num_classes = classes;
  heads::Head head{nullptr};
  ShardedClassifier sharded{nullptr};
  std::shared_ptr<torch::nn::Module> head_module;
  torch::Tensor kernel;
  if (c.head.sharded) {
    sharded = ShardedClassifier(ShardedClassifierOptions{.head = hc, .sample_rate = c.head.sample_rate, .seed = c.seed},
                                dist);
    head_module = sharded.ptr();
    kernel = sharded->head->kernel;
  } else {
    head = heads::make_head(hc);
    if (auto* ada = dynamic_cast<heads::AdaFaceImpl*>(head.get()); ada && world > 1)
      ada->set_norm_stats([d = dist](const torch::Tensor& n) { return global_mean_std(*d, n); });
    // CurricularFace's t follows the global batch's mean target cosine.
    if (auto* cf = dynamic_cast<heads::CurricularFaceImpl*>(head.get()); cf && world > 1)
      cf->set_mean_reducer([d = dist](const torch::Tensor& v) {
        torch::Tensor sum = v.contiguous().clone();
        d->all_reduce_sum(sum);
        return sum;
      });
    head_module = head.ptr();
    kernel = head->kernel;
  }
  // Module::to replaces each parameter's data in place, so `kernel` follows.
  backbone->to(device);
  head_module->to(device);
  backbones::weights_to_channels_last(*backbone);
  auto optimizer = make_sgd(*backbone, {kernel}, c.optimizer);

  // Every rank starts from rank 0's weights; a sharded head is rank-local.
  std::vector<torch::Tensor> replicated = backbone->parameters();
  for (auto& b : backbone->buffers()) replicated.push_back(b);
  std::vector<torch::Tensor> averaged = backbone->parameters();
  if (!c.head.sharded) {
    for (auto& p : head->parameters()) replicated.push_back(p), averaged.push_back(p);
    for (auto& b : head->buffers()) replicated.push_back(b);
  }
  dist->sync_from_main(replicated);

  const int64_t planned = c.epochs * steps_per_epoch;
  const int64_t total = c.max_steps > 0 ? std::min(c.max_steps, planned) : planned;
  LrSchedule schedule(c.schedule, c.optimizer.lr, steps_per_epoch, planned);

  TrainPosition pos;
  if (resume) {
    // Every rank resumes at the same step: the newest one they all have.
    const ResumePoint at = agree_resume_point(*dist, ckpt_dir, per_rank);
    std::exception_ptr error;
    try {
      pos = load_checkpoint(at.path, *backbone, *head_module, *optimizer);
    } catch (...) {
      error = std::current_exception();
    }
    if (any_rank(*dist, error != nullptr)) {
      if (error) std::rethrow_exception(error);
      fail("--resume: another rank could not load its checkpoint of step {} (see its error)", at.step);
    }
    if (c.head.sharded) sharded->set_step(pos.step);
    if (world > 1)
      spdlog::info("train: rank {} resumed from {} at step {} (epoch {}, batch {}), the newest step of every rank",
                   rank, at.path.string(), pos.step, pos.epoch, pos.batch);
    else
      spdlog::info("train: resumed from {} at step {} (epoch {}, batch {})", at.path.string(), pos.step, pos.epoch,
                   pos.batch);
  }
  if (rank == 0) {
    ensure_dir(out);
    write_file_atomic(out / "config.toml", to_toml(c));
    if (resume) truncate_metrics(metrics_path, pos.step);
    else write_file_atomic(metrics_path, "");
  }
  std::ofstream metrics;
  if (rank == 0) metrics.open(metrics_path, std::ios::app);

  spdlog::info("train: {} + {} on {} ({} images, {} identities), {} steps/epoch, {} steps, global batch {}, {} rank(s){}",
               c.model.backbone, hc.name, lo.source.string(), loader.num_images(), classes, steps_per_epoch, total,
               c.batch_size, world, device.is_cpu() ? "" : fmt::format(", device {}", device.str()));

  g_stop = false;
  auto old_int = std::signal(SIGINT, on_stop_signal);
  auto old_term = std::signal(SIGTERM, on_stop_signal);

  TrainSummary summary;
  Progress progress(total, rank == 0);
  progress.set_batch(c.batch_size);
  set_training(*backbone, c.model.freeze_bn);
  head_module->train();
  auto t_window = clock::now();
  int64_t window_images = 0;
  // AdaFace's z of every sample of the log window (every step since the last
  // log line; rank 0's rows: its local batch, or the global batch with a
  // sharded head, which scores every rank's rows), summarized at each log step.
  std::vector<torch::Tensor> z_window;
  double img_s = 0;
  // Every rank validates its share of each set (validation.h), at the same steps.
  std::unique_ptr<Validator> validator;
  if (!c.validation.sets.empty())
    validator = std::make_unique<Validator>(c.validation.sets, c.validation.batch_size, dist);
  int64_t last_validated = -1;
  auto validate = [&] {
    if (!validator || last_validated == pos.step) return;
    last_validated = pos.step;
    auto t0 = clock::now();
    // Each rank's BatchNorm statistics follow its own batches: the shares are
    // embedded with rank 0's (the model that rank 0 saves), and each rank's
    // own are put back afterwards so that validating changes no training state.
    std::vector<torch::Tensor> buffers = backbone->buffers(), own;
    if (world > 1) {
      for (const auto& b : buffers) own.push_back(b.clone());
      dist->sync_from_main(buffers);
    }
    nlohmann::json v = validator->run(*backbone);
    if (world > 1) {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(own[i]);
    }
    set_training(*backbone, c.model.freeze_bn);
    if (rank == 0) {
      for (const auto& [set, r] : v.items())
        spdlog::info("validate step {}: {} accuracy {:.2f} % (flip-fused {:.2f} %), mean norm {:.2f}", pos.step, set,
                     100 * r["acc"].get<double>(), 100 * r["acc_flip"].get<double>(), r["norm_mean"].get<double>());
      metrics << nlohmann::json{{"step", pos.step}, {"epoch", pos.epoch}, {"val", v}}.dump() << "\n" << std::flush;
    }
    summary.validation = v;
    t_window += clock::now() - t0;  // keep img/s about training
  };
  // Per-rank checkpoints keep at least two: ranks save the same steps, but a
  // crash can leave one rank a checkpoint ahead of another, and --resume
  // needs a step that every rank still has.
  const int64_t keep = per_rank ? std::max<int64_t>(c.keep_checkpoints, 2) : c.keep_checkpoints;
  auto save = [&] {
    if (rank != 0 && !per_rank) return;
    fs::path path = checkpoint_path(ckpt_dir, pos.step, rank, per_rank);
    save_checkpoint(path, *backbone, *head_module, *optimizer, pos);
    prune_checkpoints(ckpt_dir, rank, per_rank, keep);
    summary.checkpoint = path;
  };
  int64_t last_saved = resume ? pos.step : -1;
  const int64_t first_step = pos.step;

  // SIGINT/SIGTERM set g_stop in the process that gets it; `stop` is what the
  // ranks agreed before each step (any rank's flag), so they all leave the
  // loop after the same step and each saves its checkpoint of that step.
  bool stop = false;
  while (pos.step < total && !stop) {
    loader.start_epoch(pos.epoch, pos.batch);
    bool epoch_done = false;
    while (pos.step < total) {
      auto batch = loader.next();
      if (!batch) {
        epoch_done = true;
        break;
      }
      stop = agree_before_step(*dist, g_stop, batch->images.size(0), pos.step + 1);
      if (stop) break;
      const double lr = schedule.at(pos.step);
      set_lr(*optimizer, lr);
      const torch::Tensor images = batch->images.to(device, /*non_blocking=*/true);
      const torch::Tensor labels = batch->labels.to(device, /*non_blocking=*/true);
      auto [x_hat, norm] = forward_backbone(*backbone, images, c.bf16);
      torch::Tensor loss, ce, reg, acc;
      if (c.head.sharded) {
        ShardedLoss r = sharded(x_hat, norm, labels);
        loss = r.loss, ce = r.ce, reg = r.reg;
      } else {
        heads::LossOutput r = head->loss(x_hat, norm, labels);
        loss = r.loss, ce = r.ce, reg = r.reg;
        acc = r.logits.argmax(1).eq(labels).to(torch::kFloat32).mean();
      }
      optimizer->zero_grad();
      loss.backward();
      dist->average_gradients(averaged);
      if (c.grad_clip > 0) torch::nn::utils::clip_grad_norm_(backbone->parameters(), c.grad_clip);
      optimizer->step();
      ++pos.step;
      pos.batch = batch->batch + 1;
      summary.last_loss = loss.item<double>();
      window_images += batch->images.size(0) * world;
      heads::HeadImpl* head_impl = c.head.sharded ? sharded->head.get() : head.get();
      auto* ada = rank == 0 ? dynamic_cast<heads::AdaFaceImpl*>(head_impl) : nullptr;
      if (ada) z_window.push_back(ada->last_terms().at("z"));

      if (pos.step % c.log_every == 0 || pos.step == total) {
        const double secs = std::chrono::duration<double>(clock::now() - t_window).count();
        img_s = secs > 0 ? static_cast<double>(window_images) / secs : 0;
        t_window = clock::now();
        window_images = 0;
        if (rank == 0) {
          torch::Tensor n = norm.detach().reshape({-1});
          nlohmann::json m = {{"step", pos.step},
                              {"epoch", pos.epoch},
                              {"loss", summary.last_loss},
                              {"ce", ce.item<double>()},
                              {"reg", reg.item<double>()},
                              {"lr", lr},
                              {"norm_mean", n.mean().item<double>()},
                              {"norm_std", n.numel() > 1 ? n.std().item<double>() : 0.0},
                              {"img_s", img_s}};
          m["acc"] = acc.defined() ? nlohmann::json(acc.item<double>()) : nlohmann::json();
          if (ada) {
            m["batch_mean"] = ada->batch_mean.item<double>();
            m["batch_std"] = ada->batch_std.item<double>();
            for (const auto& [key, value] : heads::z_distribution(torch::cat(z_window))) m[key] = value;
            z_window.clear();
          }
          metrics << m.dump() << "\n" << std::flush;
        }
      }
      progress.update(pos.step, pos.epoch, summary.last_loss, lr, img_s, c.log_every);
      if (c.checkpoint_every > 0 && pos.step % c.checkpoint_every == 0) {
        save();
        last_saved = pos.step;
      }
      if (c.validation.every > 0 && pos.step % c.validation.every == 0) validate();
    }
    if (epoch_done) {
      ++pos.epoch;
      pos.batch = 0;
      if (last_saved != pos.step) {
        save();
        last_saved = pos.step;
      }
      if (c.validation.every == 0) validate();
    }
  }
  progress.finish();
  // A signal after the last step counts too, agreed like the others.
  stop = any_rank(*dist, stop || g_stop);
  if (last_saved != pos.step) save();
  if (!stop) validate();  // the final model, when the last step was not validated
  if (rank == 0 && !stop) {
    // The trained backbone alone, in the format `qface embed/eval --weights` read.
    io::save_checkpoint(out / "model.pt", *backbone, c.model.backbone);
    summary.model = out / "model.pt";
  }
  summary.steps = pos.step;
  summary.steps_this_run = pos.step - first_step;
  summary.images_per_second = img_s;
  summary.interrupted = stop;
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  if (summary.interrupted) spdlog::warn("train: interrupted at step {}; resume with --resume", pos.step);
  return summary;
}

}  // namespace qface::train
