#include "qface/infer/embed.h"

#include <ATen/autocast_mode.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <fstream>
#include <set>
#include <string_view>

#include "qface/backbones/winograd.h"
#include "qface/core/device.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/npy.h"
#include "qface/core/progress.h"
#include "qface/core/tensor_util.h"
#include "qface/core/torch_compat.h"
#include "qface/data/image.h"
#include "qface/infer/precision.h"
#include "qface/io/checkpoint.h"

namespace qface::infer {
namespace fs = std::filesystem;

void set_threads(int n) {
  require(n > 0, "threads must be positive, got {}", n);
  torch::set_num_threads(n);
}

void prepare_for_inference(backbones::BackboneImpl& model, const InferenceOptions& o) {
  if (o.threads() > 0) set_threads(o.threads());
  model.eval();
  if (o.fold_batchnorm()) model.fold_batchnorm();
  if (o.channels_last()) backbones::weights_to_channels_last(model);
}

Bf16Autocast::Bf16Autocast(bool on, c10::DeviceType type)
    : on_(on), was_(compat::autocast_enabled(type)), type_(type) {
  if (!on_) return;
  prev_dtype_ = static_cast<int>(compat::autocast_dtype(type_));
  compat::set_autocast_dtype(type_, at::kBFloat16);
  compat::set_autocast_enabled(type_, true);
}

Bf16Autocast::~Bf16Autocast() {
  if (!on_) return;
  compat::set_autocast_enabled(type_, was_);
  compat::set_autocast_dtype(type_, static_cast<at::ScalarType>(prev_dtype_));
  at::autocast::clear_cache();
}

Embeddings embed(backbones::BackboneImpl& model, const torch::Tensor& input, const InferenceOptions& o) {
  require(input.dim() == 4 && input.size(1) == 3, "embed: input must be N x 3 x H x W, got [{}]",
          fmt::join(input.sizes(), ", "));
  torch::NoGradGuard g;
  // The input goes where the model is (a model moved to CUDA, issue #38);
  // the features come back to the CPU, where every caller uses them.
  const torch::Device device = module_device(model);
  torch::Tensor x = input.to(device, torch::kFloat32);
  if (o.channels_last()) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  torch::Tensor f;
  {
    Bf16Autocast scope(o.bf16(), device.type());
    // oneDNN's Winograd kernels are a CPU path.
    backbones::WinogradInference winograd(o.winograd() && device.is_cpu());
    f = model.inference_features(x);
  }
  f = f.to(torch::kCPU, torch::kFloat32);
  torch::Tensor n = f.norm(2, 1, true);
  return {(f / n).contiguous(), n.squeeze(1).contiguous()};
}

Embeddings fuse_flip(const Embeddings& a, const Embeddings& b) {
  auto [e, n] = qface::fuse_flip(a.embeddings, a.norms, b.embeddings, b.norms);
  return {e, n};
}

Embeddings embed_flip_fused(backbones::BackboneImpl& model, const torch::Tensor& input, const InferenceOptions& o) {
  // One forward pass over [input; flipped] keeps the batch large.
  const int64_t n = input.size(0);
  Embeddings both = embed(model, torch::cat({input, input.flip({3})}), o);
  return fuse_flip({both.embeddings.slice(0, 0, n), both.norms.slice(0, 0, n)},
                   {both.embeddings.slice(0, n), both.norms.slice(0, n)});
}

PlainAndFlipped embed_encoded(backbones::BackboneImpl& model, const std::vector<std::string>& encoded,
                              const std::string& source, int batch, const InferenceOptions& o, bool flip) {
  require(batch > 0, "embed: batch must be positive, got {}", batch);
  std::vector<torch::Tensor> e, n, ef, nf;
  const std::size_t step = static_cast<std::size_t>(batch);
  for (std::size_t b0 = 0; b0 < encoded.size(); b0 += step) {
    std::vector<cv::Mat> imgs;
    for (std::size_t i = b0; i < std::min(encoded.size(), b0 + step); ++i) {
      const std::string& bytes = encoded[i];
      cv::Mat img = bytes.empty() ? cv::Mat()
                                  : cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U,
                                                         const_cast<char*>(bytes.data())),
                                                 cv::IMREAD_COLOR);
      require(!img.empty(), "{}: image {} does not decode", source, i);
      require(img.rows == 112 && img.cols == 112, "{}: image {} is {}x{}, expected aligned 112x112", source, i,
              img.cols, img.rows);
      imgs.push_back(img);
    }
    torch::Tensor x = preprocess(imgs, model.preprocessing());
    const int64_t k = x.size(0);
    Embeddings both = embed(model, flip ? torch::cat({x, x.flip({3})}) : x, o);
    e.push_back(both.embeddings.slice(0, 0, k));
    n.push_back(both.norms.slice(0, 0, k));
    if (!flip) continue;
    ef.push_back(both.embeddings.slice(0, k));
    nf.push_back(both.norms.slice(0, k));
  }
  require(!e.empty(), "{}: no images to embed", source);
  if (!flip) return {{torch::cat(e), torch::cat(n)}, {}};
  return {{torch::cat(e), torch::cat(n)}, {torch::cat(ef), torch::cat(nf)}};
}

torch::Tensor preprocess(const std::vector<cv::Mat>& images, const backbones::Preprocessing& p) {
  const int64_t n = static_cast<int64_t>(images.size());
  torch::Tensor out = torch::empty({n, 112, 112, 3}, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const cv::Mat& m = images[static_cast<std::size_t>(i)];
    require(m.type() == CV_8UC3 && m.rows == 112 && m.cols == 112, "preprocess: image {} is {}x{} type {}, expected 112x112 BGR",
            i, m.cols, m.rows, m.type());
    cv::Mat dst(112, 112, CV_8UC3, out[i].data_ptr<uint8_t>());
    if (p.bgr) {
      m.copyTo(dst);
    } else {
      cv::cvtColor(m, dst, cv::COLOR_BGR2RGB);
    }
  }
  // (x / 255 - mean) / std, NHWC -> NCHW.
  return out.permute({0, 3, 1, 2}).to(torch::kFloat32).mul_(1.0f / (255.0f * p.std)).sub_(p.mean / p.std).contiguous();
}

namespace {
// Whether a file is one image rather than a list of paths, by its first
// bytes: what a person passes first is one photo, whatever its name. ("BM"
// may also begin a path; a BMP header has NUL bytes where a text has none.)
bool is_image_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  char b[16] = {};
  in.read(b, sizeof b);
  const std::string_view h(b, static_cast<std::size_t>(in.gcount()));
  const data::ImageFormat f = data::sniff_format(h);
  return f != data::ImageFormat::kUnknown && (f != data::ImageFormat::kBmp || h.find('\0') != std::string_view::npos);
}
}  // namespace

std::vector<std::string> list_images(const fs::path& images) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(images, ec)) {
    static const std::set<std::string> ext = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif",
                                              ".tiff", ".ppm", ".pgm", ".jp2"};
    for (const auto& e : fs::directory_iterator(images, ec)) {
      if (!e.is_regular_file()) continue;
      std::string x = e.path().extension().string();
      std::transform(x.begin(), x.end(), x.begin(), [](unsigned char c) { return std::tolower(c); });
      if (ext.count(x)) files.push_back(e.path().string());
    }
    if (ec) fail("{}: cannot list: {}", images.string(), ec.message());
    std::sort(files.begin(), files.end());
    require(!files.empty(), "{}: no image files in this folder", images.string());
    return files;
  }
  require(fs::is_regular_file(images, ec), "{}: no such folder, image or list file", images.string());
  if (is_image_file(images)) return {images.string()};
  std::ifstream in(images, std::ios::binary);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    // A path has no control bytes: anything else is a binary file, not a list.
    const bool text = line.size() <= 4096 && std::none_of(line.begin(), line.end(), [](char c) {
                        return static_cast<unsigned char>(c) < 0x20 && c != '\t';
                      });
    require(text, "{}: line {} is not a path: expected a folder of images, one image, or a text file with one path "
                  "per line",
            images.string(), n);
    if (!line.empty()) files.push_back(line);
  }
  require(!files.empty(), "{}: the list is empty", images.string());
  return files;
}

EmbedSummary run_embed(const EmbedOptions& o) {
  require(o.batch > 0, "--batch must be positive, got {}", o.batch);
  LoadedModel m = load_for_inference({o.arch, o.weights, o.random_weights, o.precision, o.threads, "embed", o.device});
  auto model = m.model;
  InferenceOptions io = m.options;
  const std::vector<std::string> files = list_images(o.images);

  EmbedSummary summary;
  std::vector<std::string> kept;
  std::vector<torch::Tensor> embs, norms;
  std::vector<cv::Mat> batch;
  std::vector<std::string> batch_files;
  auto flush = [&] {
    if (batch.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    torch::Tensor x = preprocess(batch, model->preprocessing());
    const auto t1 = std::chrono::steady_clock::now();
    Embeddings e = o.flip_fuse ? embed_flip_fused(*model, x, io) : embed(*model, x, io);
    spdlog::debug("embed: {} images, preprocess {:.3f} s, forward {:.3f} s", batch.size(),
                  std::chrono::duration<double>(t1 - t0).count(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
    embs.push_back(e.embeddings);
    norms.push_back(e.norms);
    kept.insert(kept.end(), batch_files.begin(), batch_files.end());
    batch.clear();
    batch_files.clear();
  };
  Progress progress("embed", static_cast<int64_t>(files.size()), "img");
  int64_t seen = 0;
  for (const auto& f : files) {
    progress.update(seen++);
    cv::Mat img;
    try {
      img = cv::imread(f, cv::IMREAD_COLOR);
    } catch (const cv::Exception&) {
      img.release();
    }
    if (img.empty()) {
      require(!o.strict, "{}: cannot read this image (--strict)", f);
      spdlog::warn("embed: skipping unreadable image {}", f);
      summary.skipped.push_back(f);
      continue;
    }
    if (img.rows != 112 || img.cols != 112) {
      require(o.resize,
              "{}: image is {}x{}, expected an aligned 112x112 crop: align photos first (`qface align --images "
              "photos/ --out crops/`), or give --resize for crops of another size",
              f, img.cols, img.rows);
      cv::resize(img, img, cv::Size(112, 112), 0, 0, cv::INTER_AREA);
    }
    batch.push_back(img);
    batch_files.push_back(f);
    if (static_cast<int>(batch.size()) == o.batch) flush();
  }
  flush();
  progress.update(seen);
  require(!kept.empty(), "{}: none of the {} images could be read", o.images.string(), files.size());

  ensure_dir(o.out);
  std::string list;
  for (const auto& f : kept) list += f + "\n";
  std::string skipped;
  for (const auto& f : summary.skipped) skipped += f + "\n";
  write_npy(o.out / "embeddings.npy", torch::cat(embs));
  write_npy(o.out / "norms.npy", torch::cat(norms));
  write_file_atomic(o.out / "files.txt", list);
  write_file_atomic(o.out / "features.json",
                    nlohmann::json{{"kind", "features"},
                                   {"mode", o.flip_fuse ? "flip_fused" : "plain"},
                                   {"arch", o.arch},
                                   {"precision", precision_name(m.precision.precision)}}
                            .dump(1) +
                        "\n");
  if (!summary.skipped.empty()) {
    write_file_atomic(o.out / "skipped.txt", skipped);
  } else {
    std::error_code ec;
    fs::remove(o.out / "skipped.txt", ec);
  }
  summary.embedded = kept.size();
  return summary;
}

}  // namespace qface::infer
