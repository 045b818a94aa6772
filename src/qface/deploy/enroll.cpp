#include "qface/deploy/enroll.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <map>

#include "qface/core/error.h"
#include "qface/data/image.h"
#include "qface/deploy/align.h"
#include "qface/eval/features.h"
#include "qface/infer/embed.h"

namespace qface::deploy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// `qface align --all` crops (<photo>_face<k>.png) of one photo are different
// people, yet their names share the prefix that labels them: filing two under
// one identity would merge people silently.
void refuse_faces_of_one_photo(const LabeledImages& in) {
  std::map<std::pair<std::string, std::string>, std::string> seen;  // (label, photo) -> first file
  for (std::size_t i = 0; i < in.files.size(); ++i) {
    const std::string stem = fs::path(in.files[i]).stem().string();
    const std::size_t at = stem.rfind(kFaceSuffix);
    if (at == std::string::npos || at == 0) continue;
    const std::string k = stem.substr(at + kFaceSuffix.size());
    if (k.empty() || !std::all_of(k.begin(), k.end(), [](unsigned char c) { return std::isdigit(c); })) continue;
    const auto [it, fresh] = seen.try_emplace({in.labels[i], stem.substr(0, at)}, in.files[i]);
    require(fresh,
            "{} and {} are two faces of one photo ('{}', from `qface align --all`) but would both be enrolled as "
            "'{}': put the crops in one sub-folder per person (the folder names the identity), or give --name",
            it->second, in.files[i], stem.substr(0, at), in.labels[i]);
  }
}

}  // namespace

LabeledImages list_labeled_images(const fs::path& images, const std::string& fixed_name) {
  LabeledImages out;
  std::error_code ec;
  std::vector<fs::path> subdirs;
  if (fs::is_directory(images, ec))
    for (const auto& e : fs::directory_iterator(images, ec))
      if (e.is_directory()) subdirs.push_back(e.path());
  std::sort(subdirs.begin(), subdirs.end());
  if (!subdirs.empty()) {
    for (const auto& d : subdirs) {
      std::vector<std::string> files;
      try {
        files = infer::list_images(d);
      } catch (const Error&) {
        continue;  // an empty sub-folder
      }
      for (auto& f : files) {
        out.labels.push_back(fixed_name.empty() ? d.filename().string() : fixed_name);
        out.files.push_back(std::move(f));
      }
    }
    require(!out.files.empty(), "{}: no images in its sub-folders", images.string());
    return out;
  }
  out.files = infer::list_images(images);
  for (const auto& f : out.files) out.labels.push_back(fixed_name.empty() ? eval::label_from_name(f) : fixed_name);
  if (fixed_name.empty()) refuse_faces_of_one_photo(out);
  return out;
}

std::string thumbnail_jpeg(const cv::Mat& crop) {
  cv::Mat small;
  cv::resize(crop, small, cv::Size(64, 64), 0, 0, cv::INTER_AREA);
  return data::encode_image(small, ".jpg", "thumbnail", 85);
}

EmbeddedSet embed_images(const Pipeline& p, const LabeledImages& in, const EmbedImagesOptions& o) {
  return embed_images(p, in, [&in](std::size_t i) { return read_image(in.files[i]); }, o);
}

EmbeddedSet embed_images(const Pipeline& p, const LabeledImages& in, const std::function<cv::Mat(std::size_t)>& load,
                         const EmbedImagesOptions& o) {
  constexpr int batch = 16;
  EmbeddedSet s;
  s.calibrated = p.has_quality_calibration();
  std::vector<cv::Mat> crops;
  std::vector<torch::Tensor> e, n;
  auto flush = [&] {
    if (crops.empty()) return;
    auto [emb, norms] = p.embed_crops(crops);
    e.push_back(emb);
    n.push_back(norms);
    crops.clear();
  };
  for (std::size_t i = 0; i < in.files.size(); ++i) {
    const cv::Mat img = load(i);
    if (img.empty()) {
      spdlog::warn("{}: unreadable image, skipped", in.files[i]);
      s.unreadable.push_back(in.files[i]);
      continue;
    }
    int faces = 0;
    std::optional<cv::Mat> c = p.crop(img, nullptr, &faces);
    if (!c) {
      s.no_face.push_back(in.files[i]);
      continue;
    }
    if (faces > 1) {
      s.several_faces.push_back({in.files[i], faces});
      if (!o.largest) continue;
    }
    crops.push_back(*c);
    if (o.thumbnails) s.thumbnails.push_back(thumbnail_jpeg(*c));
    s.files.push_back(in.files[i]);
    s.labels.push_back(in.labels[i]);
    if (static_cast<int>(crops.size()) >= batch) flush();
  }
  flush();
  s.embeddings = e.empty() ? torch::zeros({0, p.dim()}) : torch::cat(e);
  s.norms = n.empty() ? torch::zeros({0}) : torch::cat(n);
  for (int64_t i = 0; i < s.norms.numel(); ++i) {
    const double norm = s.norms[i].item<double>();
    s.quality.push_back(p.quality(norm).value_or(norm));
  }
  return s;
}

EmbeddedSet load_embedded_features(const fs::path& features, const std::string& fixed_name,
                                   const std::optional<QualityCalibration>& cal) {
  eval::Features f = eval::load_features(features);
  EmbeddedSet s;
  s.embeddings = f.embeddings;
  s.norms = f.norms;
  s.files = f.files;
  s.calibrated = cal.has_value();
  for (int64_t i = 0; i < f.size(); ++i) {
    s.labels.push_back(fixed_name.empty() ? eval::label_from_name(f.files[static_cast<std::size_t>(i)]) : fixed_name);
    const double norm = f.norms[i].item<double>();
    s.quality.push_back(cal ? cal->map(norm) : norm);
  }
  return s;
}

json several_faces_json(const EmbeddedSet& s) {
  json j = json::array();
  for (const auto& [file, n] : s.several_faces) j.push_back({{"image", file}, {"faces", n}});
  return j;
}

json enroll(Gallery& g, const EmbeddedSet& s, double min_quality) {
  std::map<std::string, std::vector<int64_t>> by_label;
  json rejected = json::array();
  for (std::size_t i = 0; i < s.files.size(); ++i) {
    if (s.quality[i] < min_quality) {
      rejected.push_back({{"image", s.files[i]}, {"quality", s.quality[i]}});
      continue;
    }
    by_label[s.labels[i]].push_back(static_cast<int64_t>(i));
  }
  int64_t images = 0, created = 0;
  for (const auto& [label, rows] : by_label) {
    const torch::Tensor idx = torch::tensor(rows, torch::kInt64);
    std::vector<std::string> thumbs;
    if (!s.thumbnails.empty())
      for (const int64_t r : rows) thumbs.push_back(s.thumbnails[static_cast<std::size_t>(r)]);
    created += !g.contains(label);
    g.add(label, s.embeddings.index_select(0, idx), s.norms.index_select(0, idx), thumbs);
    images += static_cast<int64_t>(rows.size());
  }
  return {{"identities_enrolled", by_label.size()}, {"new_identities", created},   {"images_enrolled", images},
          {"gallery_size", g.size()},               {"min_quality", min_quality}, {"quality_scale", s.calibrated ? "calibrated [0,1]" : "feature norm"},
          {"rejected_low_quality", rejected},       {"no_face", s.no_face},        {"unreadable", s.unreadable},
          {"several_faces", several_faces_json(s)}};
}

}  // namespace qface::deploy
