#include "qface/infer/precision.h"

#include <spdlog/spdlog.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <set>
#include <sstream>

#include "qface/core/device.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/eval/quality.h"
#include "qface/version.h"

namespace qface::infer {
namespace fs = std::filesystem;

Precision parse_precision(const std::string& s) {
  if (s == "auto") return Precision::kAuto;
  if (s == "fp32") return Precision::kFp32;
  if (s == "bf16") return Precision::kBf16;
  if (s == "int8") return Precision::kInt8;
  fail("precision must be auto, fp32, bf16 or int8, got '{}'", s);
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kAuto: return "auto";
    case Precision::kFp32: return "fp32";
    case Precision::kBf16: return "bf16";
    case Precision::kInt8: return "int8";
  }
  return "?";
}

GuardResult accuracy_guard(const Embeddings& a, const Embeddings& b, const GuardLimits& l) {
  require(a.embeddings.sizes() == b.embeddings.sizes() && a.norms.numel() == b.norms.numel() && a.norms.numel() > 0,
          "accuracy guard: the two runs differ in shape");
  GuardResult g;
  g.images = a.norms.numel();
  const torch::Tensor cos = (a.embeddings * b.embeddings).sum(1).to(torch::kFloat64);
  const torch::Tensor na = a.norms.to(torch::kFloat64).contiguous(), nb = b.norms.to(torch::kFloat64).contiguous();
  const torch::Tensor rel = (nb - na) / na.clamp_min(1e-12), err = rel.abs();
  g.norm_bias = rel.mean().item<double>();
  g.min_cosine = cos.min().item<double>();
  g.mean_cosine = cos.mean().item<double>();
  g.worst_image = err.argmax().item<int64_t>();
  g.max_norm_error = err[g.worst_image].item<double>();
  g.mean_norm_error = err.mean().item<double>();
  // NaN passes every comparison, so a non-finite output fails first (and Spearman refuses NaN).
  const torch::Tensor bad = torch::isfinite(cos).logical_and(torch::isfinite(nb)).logical_not().nonzero();
  if (bad.numel() > 0) {
    g.failure = fmt::format("image {}: non-finite embedding or norm", bad[0][0].item<int64_t>());
    return g;
  }
  g.norm_spearman = g.images > 2 ? eval::spearman({na.data_ptr<double>(), static_cast<std::size_t>(g.images)},
                                                  {nb.data_ptr<double>(), static_cast<std::size_t>(g.images)})
                                 : 1.0;
  if (!std::isfinite(g.norm_spearman)) g.norm_spearman = 0;  // constant norms: no ranking kept
  if (g.min_cosine < l.min_cosine)
    g.failure = fmt::format("min cosine to fp32 {:.4f} < {}", g.min_cosine, l.min_cosine);
  else if (g.max_norm_error > l.max_norm_error)
    g.failure = fmt::format("image {}'s norm (fp32 {:.3g}) off by {:.2f} % > {:g} %", g.worst_image,
                            na[g.worst_image].item<double>(), 100 * g.max_norm_error, 100 * l.max_norm_error);
  else if (g.norm_spearman < l.min_spearman)
    g.failure = fmt::format("norm Spearman to fp32 {:.4f} < {}", g.norm_spearman, l.min_spearman);
  g.passed = g.failure.empty();
  return g;
}

nlohmann::json to_json(const GuardResult& g) {
  return {{"images", g.images},           {"min_cosine", g.min_cosine},
          {"mean_cosine", g.mean_cosine}, {"max_norm_error", g.max_norm_error}, {"worst_image", g.worst_image},
          {"mean_norm_error", g.mean_norm_error}, {"norm_bias", g.norm_bias}, {"norm_spearman", g.norm_spearman},
          {"passed", g.passed},           {"failure", g.failure}};
}

std::vector<QParams> qparams_of(const io::Int8Calibration& c) {
  std::vector<QParams> q;
  for (std::size_t i = 0; i < c.scale.size(); ++i) q.push_back({c.scale[i], c.zero_point[i]});
  return q;
}

BiasShift bias_shift_of(const io::Int8Calibration& c, const backbones::Graph& graph) {
  if (c.bias_steps.empty()) return {};
  BiasShift shift(graph.steps().size());
  std::size_t at = 0;
  for (const int64_t step : c.bias_steps) {
    const auto i = static_cast<std::size_t>(step);
    const int64_t n = i < shift.size() ? bias_channels(graph, i) : 0;
    require(n > 0, "int8 calibration: step {} cannot carry a bias shift", step);
    require(at + static_cast<std::size_t>(n) <= c.bias_shift.size(),
            "int8 calibration: {} bias shifts, fewer than the graph's steps need", c.bias_shift.size());
    shift[i] = torch::tensor(std::vector<float>(c.bias_shift.begin() + static_cast<std::ptrdiff_t>(at),
                                                c.bias_shift.begin() + static_cast<std::ptrdiff_t>(at) + n));
    at += static_cast<std::size_t>(n);
  }
  require(at == c.bias_shift.size(), "int8 calibration: {} bias shifts, the graph's steps take {}",
          c.bias_shift.size(), at);
  return shift;
}

io::Int8Calibration calibration_of(const std::vector<QParams>& q, int fp32_from, const std::string& info,
                                   const BiasShift& shift) {
  io::Int8Calibration c;
  c.fp32_from = fp32_from;
  for (const auto& p : q) {
    c.scale.push_back(p.scale);
    c.zero_point.push_back(p.zero_point);
  }
  for (std::size_t i = 0; i < shift.size(); ++i) {
    if (!shift[i].defined()) continue;
    c.bias_steps.push_back(static_cast<int64_t>(i));
    const torch::Tensor t = shift[i].to(torch::kFloat32).contiguous();
    c.bias_shift.insert(c.bias_shift.end(), t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
  c.info = info;
  return c;
}

void install_int8(backbones::BackboneImpl& model, const io::Int8Calibration& c) {
  const backbones::Graph graph = model.graph();
  install_int8(model, qparams_of(c), static_cast<int>(c.fp32_from), bias_shift_of(c, graph));
}

std::string cpu_signature() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU", flags;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1);
    if (key == "model name" && model == "unknown CPU") model = line.substr(colon + 2);
    if (key == "flags" && flags.empty()) flags = line.substr(colon + 1);
  }
  std::set<std::string> have;
  std::istringstream f(flags);
  for (std::string w; f >> w;) have.insert(w);
  std::string sig = model + " |";
  for (const char* w : {"avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni"})
    if (have.count(w)) sig += std::string(" ") + w;
  return sig;
}

fs::path cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "qface";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "qface";
  return fs::temp_directory_path() / "qface-cache";
}

namespace {

double seconds_per_batch(const std::function<void()>& fn) {
  fn();  // warm-up: creates the oneDNN primitives
  double best = 1e30;
  for (int i = 0; i < 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// The cache entry's identity: everything that changes which precision is fastest or accurate.
nlohmann::json cache_identity(const backbones::BackboneImpl& model, const fs::path& weights) {
  std::error_code ec;
  const fs::path canon = fs::weakly_canonical(weights, ec);
  const auto mtime = fs::last_write_time(weights, ec).time_since_epoch().count();
  return {{"weights", canon.string()},
          {"size", static_cast<int64_t>(fs::file_size(weights, ec))},
          {"mtime", static_cast<int64_t>(mtime)},
          {"arch", model.arch()},
          {"cpu", cpu_signature()},
          {"threads", torch::get_num_threads()},
          {"qface", kVersion}};
}

fs::path cache_file(const nlohmann::json& identity) {
  return cache_dir() / fmt::format("precision-{:016x}.json", std::hash<std::string>{}(identity.dump()));
}

void apply(backbones::BackboneImpl& model, InferenceOptions& o, Precision p,
           const std::optional<io::Int8Calibration>& int8) {
  model.set_engine(nullptr);
  o.bf16(false);
  if (p == Precision::kBf16) o.bf16(true);
  if (p == Precision::kInt8) install_int8(model, *int8);
}

PrecisionChoice measure(backbones::BackboneImpl& model, InferenceOptions& o,
                        const std::optional<io::Int8Calibration>& int8, const std::vector<cv::Mat>& sample) {
  const torch::Tensor x = preprocess(sample.empty() ? builtin_precision_sample() : sample, model.preprocessing());
  const int64_t n = x.size(0);
  PrecisionChoice c;
  apply(model, o, Precision::kFp32, int8);
  Embeddings ref;
  const double fp32 = n / seconds_per_batch([&] { ref = embed(model, x, o); });
  c.measurements["fp32"] = {{"img_per_s", fp32}};
  double best = fp32;
  std::vector<Precision> candidates = {Precision::kBf16};
  if (int8 && int8_supported()) candidates.push_back(Precision::kInt8);
  else c.measurements["int8"] = {{"skipped", int8 ? "no oneDNN quantized engine" : "the weights have no int8 calibration (qface quantize)"}};
  for (Precision p : candidates) {
    const char* name = precision_name(p);
    try {
      apply(model, o, p, int8);
      Embeddings e;
      const double ips = n / seconds_per_batch([&] { e = embed(model, x, o); });
      const GuardResult g = accuracy_guard(ref, e);
      c.measurements[name] = {{"img_per_s", ips}, {"guard", to_json(g)}};
      if (g.passed && ips > best) {
        best = ips;
        c.precision = p;
      }
    } catch (const std::exception& ex) {
      c.measurements[name] = {{"failed", ex.what()}};
    }
  }
  std::vector<std::string> parts;
  for (const char* n : {"fp32", "bf16", "int8"}) {
    const auto& m = c.measurements.value(n, nlohmann::json::object());
    if (m.contains("img_per_s"))
      parts.push_back(fmt::format("{} {:.1f} img/s{}", n, m["img_per_s"].get<double>(),
                                  m.contains("guard") && !m["guard"]["passed"].get<bool>()
                                      ? " (fails the guard: " + m["guard"]["failure"].get<std::string>() + ")"
                                      : ""));
    else if (m.contains("skipped")) parts.push_back(fmt::format("{} skipped: {}", n, m["skipped"].get<std::string>()));
    else if (m.contains("failed")) parts.push_back(fmt::format("{} failed: {}", n, m["failed"].get<std::string>()));
  }
  c.reason = fmt::format("fastest that passes the guard: {}", fmt::join(parts, ", "));
  return c;
}

}  // namespace

std::vector<cv::Mat> builtin_precision_sample() {
  // Smooth random images (noise at 7 x 7, bicubic to 112 x 112, light noise on
  // top): the input statistics of aligned crops without a face renderer in
  // this library. Fixed seed, so the choice is reproducible.
  cv::RNG rng(7);
  std::vector<cv::Mat> out;
  for (int i = 0; i < 32; ++i) {
    cv::Mat coarse(7, 7, CV_32FC3), fine(112, 112, CV_32FC3), noise(112, 112, CV_32FC3);
    rng.fill(coarse, cv::RNG::UNIFORM, cv::Scalar::all(30), cv::Scalar::all(225));
    cv::resize(coarse, fine, fine.size(), 0, 0, cv::INTER_CUBIC);
    rng.fill(noise, cv::RNG::NORMAL, cv::Scalar::all(0), cv::Scalar::all(4));
    cv::Mat img;
    cv::Mat(fine + noise).convertTo(img, CV_8UC3);  // saturating
    out.push_back(img);
  }
  return out;
}

PrecisionChoice apply_precision(backbones::BackboneImpl& model, InferenceOptions& o, Precision precision,
                                const fs::path& weights, const std::optional<io::Int8Calibration>& int8,
                                const std::vector<cv::Mat>& sample) {
  PrecisionChoice c;
  if (precision != Precision::kAuto) {
    if (precision == Precision::kInt8) {
      require(int8.has_value(), "{}: no int8 calibration in this file: make an int8 model with `qface quantize "
              "--weights {} --calibrate DIR --out model.int8.pt`", weights.empty() ? "random weights" : weights.string(),
              weights.empty() ? "W" : weights.string());
      require(int8_supported(), "int8: this LibTorch has no oneDNN quantized engine");
    }
    apply(model, o, precision, int8);
    c.precision = precision;
    c.reason = "asked for";
    return c;
  }
  const nlohmann::json id = weights.empty() ? nlohmann::json() : cache_identity(model, weights);
  const fs::path file = weights.empty() ? fs::path() : cache_file(id);
  if (!file.empty() && fs::exists(file)) {
    try {
      const auto j = nlohmann::json::parse(read_file(file));
      if (j.at("identity") == id) {
        c.precision = parse_precision(j.at("precision").get<std::string>());
        if (c.precision == Precision::kInt8 && !int8) throw Error("int8 without calibration");
        apply(model, o, c.precision, int8);
        c.from_cache = true;
        c.measurements = j.at("measurements");
        c.reason = j.at("reason").get<std::string>() + " (cached in " + file.string() + ")";
        spdlog::info("precision auto: {} ({})", precision_name(c.precision), c.reason);
        return c;
      }
    } catch (const std::exception& e) {
      spdlog::warn("precision auto: ignoring the cache {}: {}", file.string(), e.what());
    }
  }
  c = measure(model, o, int8, sample);
  apply(model, o, c.precision, int8);
  spdlog::info("precision auto: {} on {} ({})", precision_name(c.precision), cpu_signature(), c.reason);
  if (!file.empty()) {
    try {
      fs::create_directories(file.parent_path());
      write_file_atomic(file, nlohmann::json{{"identity", id},
                                             {"precision", precision_name(c.precision)},
                                             {"reason", c.reason},
                                             {"measurements", c.measurements}}
                                  .dump(2) +
                                  "\n");
    } catch (const std::exception& e) {
      spdlog::warn("precision auto: could not cache the choice in {}: {}", file.string(), e.what());
    }
  }
  return c;
}

std::string checkpoint_arch(const io::Checkpoint& c, const std::filesystem::path& path) {
  const auto& known = backbones::backbone_names();
  require(!c.arch.empty(), "{}: the file does not record its architecture: give --arch (one of {})", path.string(),
          fmt::join(known, ", "));
  require(std::find(known.begin(), known.end(), c.arch) != known.end(),
          "{}: the file records arch '{}', which qface does not build: give --arch (one of {})", path.string(), c.arch,
          fmt::join(known, ", "));
  return c.arch;
}

LoadedModel load_for_inference(const ModelSpec& s) {
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [&t0] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  const torch::Device device = parse_device(s.device);  // before the file is read: the cheaper error first
  LoadedModel m;
  std::string arch = s.arch;
  // The file is read on a second thread while the network is built, without
  // the random initialisation the weights would replace (0.1 s of IR-50);
  // first, when the architecture is the one the file records.
  std::future<io::Checkpoint> file;
  std::optional<io::Checkpoint> read_first;
  if (arch.empty()) {
    require(!s.weights.empty(), "{}: give --arch: random weights record no architecture", s.what);
    read_first = io::read_checkpoint(s.weights);
    arch = checkpoint_arch(*read_first, s.weights);
    spdlog::debug("{}: {} records arch {}", s.what, s.weights.string(), arch);
  } else if (!s.weights.empty()) {
    file = std::async(std::launch::async, [&s] { return io::read_checkpoint(s.weights); });
  }
  m.model = s.weights.empty() ? backbones::make_backbone(arch) : backbones::make_backbone_for_weights(arch);
  spdlog::debug("{}: {} built in {:.3f} s", s.what, arch, since());
  if (s.weights.empty()) {
    require(s.random_weights, "{}: no --weights: give the model's checkpoint (or --random-weights for pipeline tests)",
            s.what);
    spdlog::warn("{}: --random-weights: the results mean nothing (pipeline checks only)", s.what);
  } else {
    io::Checkpoint c = read_first ? std::move(*read_first) : file.get();
    const io::LoadReport r = io::load_state_dict(*m.model, std::move(c.tensors), s.weights.string(), c.arch);
    m.int8 = std::move(c.int8);
    spdlog::debug("{}: {} tensors loaded at {:.3f} s (prefix '{}', {} other entries ignored)", s.weights.string(),
                  r.loaded, since(), r.prefix, r.ignored.size());
  }
  m.options.threads(s.threads);
  prepare_for_inference(*m.model, m.options);
  if (!device.is_cpu()) {
    require(s.precision == Precision::kFp32 || s.precision == Precision::kAuto,
            "{}: --precision {} is a CPU path; on {} give fp32 (or auto)", s.what, precision_name(s.precision),
            device.str());
    m.model->to(device);
    m.precision.precision = Precision::kFp32;
    spdlog::info("{}: fp32 inference on {}", s.what, device.str());
    return m;
  }
  spdlog::debug("{}: ready for inference at {:.3f} s", s.what, since());
  m.precision = apply_precision(*m.model, m.options, s.precision, s.weights, m.int8);
  if (s.precision != Precision::kAuto && s.precision != Precision::kFp32)
    spdlog::info("{}: {} inference", s.what, precision_name(m.precision.precision));
  return m;
}

}  // namespace qface::infer
