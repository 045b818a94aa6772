// Batch glue for the CLI: photos (or a `qface embed` features folder) with
// identity labels -> embeddings + norms + quality, faceless / unreadable
// images set aside; quality-gated enrolment into a gallery.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qface/deploy/calibration.h"
#include "qface/deploy/gallery.h"
#include "qface/deploy/pipeline.h"

namespace qface::deploy {

// Images with identity labels: a folder of identity sub-folders (label = the
// sub-folder), or a folder / list file of images (label = the file name's
// prefix before '_', as `qface eval`), or every image labelled `fixed_name`.
// Two `qface align --all` crops of one photo (<photo>_face<k>) under one
// label are an error (different people would be merged).
struct LabeledImages {
  std::vector<std::string> files, labels;
};
LabeledImages list_labeled_images(const std::filesystem::path& images, const std::string& fixed_name = "");

struct EmbeddedSet {
  torch::Tensor embeddings, norms;  // N x D normalized, N
  std::vector<std::string> files, labels;
  std::vector<std::string> thumbnails;  // JPEG of each image's crop (thumbnail_jpeg); empty from features
  std::vector<double> quality;      // calibrated [0, 1] when a calibration is given, else the norm
  std::vector<std::string> no_face, unreadable;
  // Photos with more than one face and how many: their largest face is in the
  // set when EmbedImagesOptions::largest, else they are left out.
  std::vector<std::pair<std::string, int>> several_faces;
  bool calibrated = false;
};

struct EmbedImagesOptions {
  bool thumbnails = false;  // also keep each crop's thumbnail_jpeg (for enrolment)
  // A photo with several faces gives its largest one (search probes, quality);
  // false leaves it out (enrolment: a group photo is not one person).
  bool largest = true;
};

// The gallery's display copy of an aligned crop: 64 x 64 JPEG (about 2 KB).
std::string thumbnail_jpeg(const cv::Mat& crop);

// Embeds the images in batches of 16.
EmbeddedSet embed_images(const Pipeline& pipeline, const LabeledImages& images, const EmbedImagesOptions& options = {});
// The same with the images from `load(i)` (an empty Mat: unreadable) instead
// of the files, which then only name them.
EmbeddedSet embed_images(const Pipeline& pipeline, const LabeledImages& images,
                         const std::function<cv::Mat(std::size_t)>& load, const EmbedImagesOptions& options = {});
EmbeddedSet load_embedded_features(const std::filesystem::path& features, const std::string& fixed_name,
                                   const std::optional<QualityCalibration>& calibration);

// Adds every image with quality >= min_quality to its identity (template
// fusion, with its thumbnail when the set has them); returns a JSON summary
// (enrolled identities, images, rejected ones, photos with several faces).
nlohmann::json enroll(Gallery& gallery, const EmbeddedSet& set, double min_quality);
// set.several_faces as [{"image", "faces"}, ...].
nlohmann::json several_faces_json(const EmbeddedSet& set);

}  // namespace qface::deploy
