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

// This rank's device; Winograd training is switched on where it runs.
torch::Device training_device(const TrainConfig& c, const Dist& dist) {
  // Plain "cuda" gives each worker of a machine its own GPU.
  const torch::Device device = device_for_rank(parse_device(c.device, "device"), dist.local_rank());
  if (c.winograd && !device.is_cpu())
    spdlog::info("train: winograd is a CPU path (oneDNN); {} uses LibTorch's own convolutions", device.str());
  backbones::set_winograd_training(c.winograd && device.is_cpu());
  return device;
}

data::LoaderOptions loader_options(const TrainConfig& c, const Dist& dist, const torch::Device& device,
                                   const backbones::Preprocessing& pre) {
  data::LoaderOptions lo;
  lo.source = resolve_source(c.data.train);
  lo.batch_size = c.batch_size / dist.world_size();
  lo.num_threads = c.data.loader_threads;
  lo.seed = c.seed;
  lo.rank = dist.rank();
  lo.world_size = dist.world_size();
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
  return lo;
}

// The trained networks: the backbone and the margin head, which is either one
// head replicated on every rank or this rank's shard of a sharded classifier.
struct Networks {
  backbones::Backbone backbone;
  heads::Head head{nullptr};
  ShardedClassifier sharded{nullptr};
  std::shared_ptr<torch::nn::Module> head_module;  // whichever of the two is set
  torch::Tensor kernel;

  heads::HeadImpl* head_impl() { return sharded ? sharded->head.get() : head.get(); }
};

void add_head(Networks& n, const TrainConfig& c, const heads::HeadConfig& hc, const std::shared_ptr<Dist>& dist) {
  const int world = dist->world_size();
  if (c.head.sharded) {
    n.sharded = ShardedClassifier(
        ShardedClassifierOptions{.head = hc, .sample_rate = c.head.sample_rate, .seed = c.seed}, dist);
    n.head_module = n.sharded.ptr();
    n.kernel = n.sharded->head->kernel;
    return;
  }
  n.head = heads::make_head(hc);
  if (auto* ada = dynamic_cast<heads::AdaFaceImpl*>(n.head.get()); ada && world > 1)
    ada->set_norm_stats([d = dist](const torch::Tensor& x) { return global_mean_std(*d, x); });
  // CurricularFace's t follows the global batch's mean target cosine.
  if (auto* cf = dynamic_cast<heads::CurricularFaceImpl*>(n.head.get()); cf && world > 1)
    cf->set_mean_reducer([d = dist](const torch::Tensor& v) {
      torch::Tensor sum = v.contiguous().clone();
      d->all_reduce_sum(sum);
      return sum;
    });
  n.head_module = n.head.ptr();
  n.kernel = n.head->kernel;
}

// Every rank starts from rank 0's weights; a sharded head is rank-local.
// Returns the parameters whose gradients the ranks average.
std::vector<torch::Tensor> start_from_rank0(const Networks& n, Dist& dist) {
  std::vector<torch::Tensor> replicated = n.backbone->parameters();
  for (auto& b : n.backbone->buffers()) replicated.push_back(b);
  std::vector<torch::Tensor> averaged = n.backbone->parameters();
  if (n.head) {
    for (auto& p : n.head->parameters()) replicated.push_back(p), averaged.push_back(p);
    for (auto& b : n.head->buffers()) replicated.push_back(b);
  }
  dist.sync_from_main(replicated);
  return averaged;
}

// With a sharded head over several ranks, each rank saves (and resumes) its
// own checkpoints of its shard.
bool per_rank_checkpoints(const TrainConfig& c, int world) { return c.head.sharded && world > 1; }

// Every rank resumes at the same step: the newest one they all have.
TrainPosition resume_position(Dist& dist, const fs::path& ckpt_dir, bool per_rank, Networks& n,
                              torch::optim::Optimizer& optimizer) {
  const ResumePoint at = agree_resume_point(dist, ckpt_dir, per_rank);
  TrainPosition pos;
  std::exception_ptr error;
  try {
    pos = load_checkpoint(at.path, *n.backbone, *n.head_module, optimizer);
  } catch (...) {
    error = std::current_exception();
  }
  if (any_rank(dist, error != nullptr)) {
    if (error) std::rethrow_exception(error);
    fail("--resume: another rank could not load its checkpoint of step {} (see its error)", at.step);
  }
  if (n.sharded) n.sharded->set_step(pos.step);
  if (dist.world_size() > 1)
    spdlog::info("train: rank {} resumed from {} at step {} (epoch {}, batch {}), the newest step of every rank",
                 dist.rank(), at.path.string(), pos.step, pos.epoch, pos.batch);
  else
    spdlog::info("train: resumed from {} at step {} (epoch {}, batch {})", at.path.string(), pos.step, pos.epoch,
                 pos.batch);
  return pos;
}

// What the steps work with, set up by train().
struct TrainParts {
  const TrainConfig& c;
  std::shared_ptr<Dist> dist;
  torch::Device device;
  Networks& nets;
  torch::optim::Optimizer& optimizer;
  data::Loader& loader;
  const LrSchedule& schedule;
  std::vector<torch::Tensor> averaged;  // the tensors whose gradients the ranks average
  int64_t total = 0;                    // steps to reach: max_steps or the planned epochs
  fs::path ckpt_dir;
  std::ofstream& metrics;               // rank 0's metrics.jsonl
};

// One optimizer step's results, for the log line.
struct StepLoss {
  torch::Tensor loss, ce, reg, acc, norm;  // acc: undefined with a sharded head
};

// The steps of a run, from its start (or resumed) position to its last step
// or a stop the ranks agreed on, with the log window, the checkpoints and the
// validations along the way.
class TrainLoop {
 public:
  TrainLoop(TrainParts parts, TrainPosition start, bool resume);
  TrainSummary run();

 private:
  void step(const data::Batch& batch);
  StepLoss optimize(const data::Batch& batch, double lr);
  void log_step(double lr, const StepLoss& r, heads::AdaFaceImpl* ada);
  void end_epoch();
  void save();
  void validate();
  TrainSummary finish(bool stop);

  using Clock = std::chrono::steady_clock;
  TrainParts p_;
  const TrainConfig& c_;
  const int world_, rank_;
  const bool per_rank_;
  const int64_t keep_;
  TrainPosition pos_;
  const int64_t first_step_;
  int64_t last_saved_, last_validated_ = -1;
  TrainSummary summary_;
  Progress progress_;
  Clock::time_point t_window_;
  int64_t window_images_ = 0;
  // AdaFace's z of every sample of the log window (every step since the last
  // log line; rank 0's rows: its local batch, or the global batch with a
  // sharded head, which scores every rank's rows), summarized at each log step.
  std::vector<torch::Tensor> z_window_;
  double img_s_ = 0;
  // Every rank validates its share of each set (validation.h), at the same steps.
  std::unique_ptr<Validator> validator_;
};

TrainLoop::TrainLoop(TrainParts parts, TrainPosition start, bool resume)
    : p_(std::move(parts)),
      c_(p_.c),
      world_(p_.dist->world_size()),
      rank_(p_.dist->rank()),
      per_rank_(per_rank_checkpoints(c_, world_)),
      // Per-rank checkpoints keep at least two: ranks save the same steps, but a
      // crash can leave one rank a checkpoint ahead of another, and --resume
      // needs a step that every rank still has.
      keep_(per_rank_ ? std::max<int64_t>(c_.keep_checkpoints, 2) : c_.keep_checkpoints),
      pos_(start),
      first_step_(start.step),
      last_saved_(resume ? start.step : -1),
      progress_(p_.total, rank_ == 0) {
  progress_.set_batch(c_.batch_size);
  set_training(*p_.nets.backbone, c_.model.freeze_bn);
  p_.nets.head_module->train();
  t_window_ = Clock::now();
  if (!c_.validation.sets.empty())
    validator_ = std::make_unique<Validator>(c_.validation.sets, c_.validation.batch_size, p_.dist);
}

TrainSummary TrainLoop::run() {
  // SIGINT/SIGTERM set g_stop in the process that gets it; `stop` is what the
  // ranks agreed before each step (any rank's flag), so they all leave the
  // loop after the same step and each saves its checkpoint of that step.
  bool stop = false;
  while (pos_.step < p_.total && !stop) {
    p_.loader.start_epoch(pos_.epoch, pos_.batch);
    bool epoch_done = false;
    while (pos_.step < p_.total) {
      auto batch = p_.loader.next();
      if (!batch) {
        epoch_done = true;
        break;
      }
      stop = agree_before_step(*p_.dist, g_stop, batch->images.size(0), pos_.step + 1);
      if (stop) break;
      step(*batch);
    }
    if (epoch_done) end_epoch();
  }
  progress_.finish();
  return finish(stop);
}

// One step, then its log line, and the checkpoint and validation due after it.
void TrainLoop::step(const data::Batch& batch) {
  const double lr = p_.schedule.at(pos_.step);
  const StepLoss r = optimize(batch, lr);
  ++pos_.step;
  pos_.batch = batch.batch + 1;
  summary_.last_loss = r.loss.item<double>();
  window_images_ += batch.images.size(0) * world_;
  auto* ada = rank_ == 0 ? dynamic_cast<heads::AdaFaceImpl*>(p_.nets.head_impl()) : nullptr;
  if (ada) z_window_.push_back(ada->last_terms().at("z"));
  if (pos_.step % c_.log_every == 0 || pos_.step == p_.total) log_step(lr, r, ada);
  progress_.update(pos_.step, pos_.epoch, summary_.last_loss, lr, img_s_, c_.log_every);
  if (c_.checkpoint_every > 0 && pos_.step % c_.checkpoint_every == 0) save();
  if (c_.validation.every > 0 && pos_.step % c_.validation.every == 0) validate();
}

// Forward, loss, backward (gradients averaged over the ranks) and the SGD update.
StepLoss TrainLoop::optimize(const data::Batch& batch, double lr) {
  Networks& n = p_.nets;
  set_lr(p_.optimizer, lr);
  const torch::Tensor images = batch.images.to(p_.device, /*non_blocking=*/true);
  const torch::Tensor labels = batch.labels.to(p_.device, /*non_blocking=*/true);
  auto [x_hat, norm] = forward_backbone(*n.backbone, images, c_.bf16);
  StepLoss r{.norm = norm};
  if (c_.head.sharded) {
    ShardedLoss s = n.sharded(x_hat, norm, labels);
    r.loss = s.loss, r.ce = s.ce, r.reg = s.reg;
  } else {
    heads::LossOutput s = n.head->loss(x_hat, norm, labels);
    r.loss = s.loss, r.ce = s.ce, r.reg = s.reg;
    r.acc = s.logits.argmax(1).eq(labels).to(torch::kFloat32).mean();
  }
  p_.optimizer.zero_grad();
  r.loss.backward();
  p_.dist->average_gradients(p_.averaged);
  if (c_.grad_clip > 0) torch::nn::utils::clip_grad_norm_(n.backbone->parameters(), c_.grad_clip);
  p_.optimizer.step();
  return r;
}

// Closes the log window (img/s on every rank); rank 0 appends its metrics line.
void TrainLoop::log_step(double lr, const StepLoss& r, heads::AdaFaceImpl* ada) {
  const double secs = std::chrono::duration<double>(Clock::now() - t_window_).count();
  img_s_ = secs > 0 ? static_cast<double>(window_images_) / secs : 0;
  t_window_ = Clock::now();
  window_images_ = 0;
  if (rank_ != 0) return;
  torch::Tensor n = r.norm.detach().reshape({-1});
  nlohmann::json m = {{"step", pos_.step},
                      {"epoch", pos_.epoch},
                      {"loss", summary_.last_loss},
                      {"ce", r.ce.item<double>()},
                      {"reg", r.reg.item<double>()},
                      {"lr", lr},
                      {"norm_mean", n.mean().item<double>()},
                      {"norm_std", n.numel() > 1 ? n.std().item<double>() : 0.0},
                      {"img_s", img_s_}};
  m["acc"] = r.acc.defined() ? nlohmann::json(r.acc.item<double>()) : nlohmann::json();
  if (ada) {
    m["batch_mean"] = ada->batch_mean.item<double>();
    m["batch_std"] = ada->batch_std.item<double>();
    for (const auto& [key, value] : heads::z_distribution(torch::cat(z_window_))) m[key] = value;
    z_window_.clear();
  }
  p_.metrics << m.dump() << "\n" << std::flush;
}

void TrainLoop::end_epoch() {
  ++pos_.epoch;
  pos_.batch = 0;
  if (last_saved_ != pos_.step) save();
  if (c_.validation.every == 0) validate();
}

void TrainLoop::save() {
  last_saved_ = pos_.step;
  if (rank_ != 0 && !per_rank_) return;
  fs::path path = checkpoint_path(p_.ckpt_dir, pos_.step, rank_, per_rank_);
  save_checkpoint(path, *p_.nets.backbone, *p_.nets.head_module, p_.optimizer, pos_);
  prune_checkpoints(p_.ckpt_dir, rank_, per_rank_, keep_);
  summary_.checkpoint = path;
}

void TrainLoop::validate() {
  if (!validator_ || last_validated_ == pos_.step) return;
  last_validated_ = pos_.step;
  auto t0 = Clock::now();
  backbones::BackboneImpl& backbone = *p_.nets.backbone;
  // Each rank's BatchNorm statistics follow its own batches: the shares are
  // embedded with rank 0's (the model that rank 0 saves), and each rank's
  // own are put back afterwards so that validating changes no training state.
  std::vector<torch::Tensor> buffers = backbone.buffers(), own;
  if (world_ > 1) {
    for (const auto& b : buffers) own.push_back(b.clone());
    p_.dist->sync_from_main(buffers);
  }
  nlohmann::json v = validator_->run(backbone);
  if (world_ > 1) {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(own[i]);
  }
  set_training(backbone, c_.model.freeze_bn);
  if (rank_ == 0) {
    for (const auto& [set, r] : v.items())
      spdlog::info("validate step {}: {} accuracy {:.2f} % (flip-fused {:.2f} %), mean norm {:.2f}", pos_.step, set,
                   100 * r["acc"].get<double>(), 100 * r["acc_flip"].get<double>(), r["norm_mean"].get<double>());
    p_.metrics << nlohmann::json{{"step", pos_.step}, {"epoch", pos_.epoch}, {"val", v}}.dump() << "\n" << std::flush;
  }
  summary_.validation = v;
  t_window_ += Clock::now() - t0;  // keep img/s about training
}

TrainSummary TrainLoop::finish(bool stop) {
  // A signal after the last step counts too, agreed like the others.
  stop = any_rank(*p_.dist, stop || g_stop);
  if (last_saved_ != pos_.step) save();
  if (!stop) validate();  // the final model, when the last step was not validated
  if (rank_ == 0 && !stop) {
    // The trained backbone alone, in the format `qface embed/eval --weights` read.
    const fs::path model = fs::path(c_.out_dir) / "model.pt";
    io::save_checkpoint(model, *p_.nets.backbone, c_.model.backbone);
    summary_.model = model;
  }
  summary_.steps = pos_.step;
  summary_.steps_this_run = pos_.step - first_step_;
  summary_.images_per_second = img_s_;
  summary_.interrupted = stop;
  return summary_;
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
  const int world = dist->world_size(), rank = dist->rank();
  require(c.batch_size % world == 0, "batch_size {} is not divisible by the world size {}", c.batch_size, world);
  use_threads(c.threads);
  const torch::Device device = training_device(c, *dist);
  torch::manual_seed(c.seed);
  const fs::path out = c.out_dir, ckpt_dir = out / "checkpoints", metrics_path = out / "metrics.jsonl";

  Networks nets{.backbone = backbones::make_backbone(c.model.backbone, c.model.embedding_size)};
  const data::LoaderOptions lo = loader_options(c, *dist, device, nets.backbone->preprocessing());
  data::Loader loader(lo);
  const int64_t classes = loader.num_classes();
  require(classes > 1, "{}: needs at least 2 identities, found {}", lo.source.string(), classes);
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  require(steps_per_epoch > 0, "{}: {} images are too few for one batch of {} per rank", lo.source.string(),
          loader.num_images(), lo.batch_size);

  heads::HeadConfig hc = c.head.head;
  hc.embedding_size = c.model.embedding_size;
  hc.num_classes = classes;
  add_head(nets, c, hc, dist);
  // Module::to replaces each parameter's data in place, so `kernel` follows.
  nets.backbone->to(device);
  nets.head_module->to(device);
  backbones::weights_to_channels_last(*nets.backbone);
  auto optimizer = make_sgd(*nets.backbone, {nets.kernel}, c.optimizer);
  std::vector<torch::Tensor> averaged = start_from_rank0(nets, *dist);

  const int64_t planned = c.epochs * steps_per_epoch;
  const int64_t total = c.max_steps > 0 ? std::min(c.max_steps, planned) : planned;
  const LrSchedule schedule(c.schedule, c.optimizer.lr, steps_per_epoch, planned);
  const TrainPosition pos =
      resume ? resume_position(*dist, ckpt_dir, per_rank_checkpoints(c, world), nets, *optimizer) : TrainPosition{};
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
  TrainLoop loop({.c = c,
                  .dist = dist,
                  .device = device,
                  .nets = nets,
                  .optimizer = *optimizer,
                  .loader = loader,
                  .schedule = schedule,
                  .averaged = std::move(averaged),
                  .total = total,
                  .ckpt_dir = ckpt_dir,
                  .metrics = metrics},
                 pos, resume);
  const TrainSummary summary = loop.run();
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  if (summary.interrupted) spdlog::warn("train: interrupted at step {}; resume with --resume", summary.steps);
  return summary;
}

}  // namespace qface::train
