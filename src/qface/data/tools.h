// Whole-dataset jobs behind `qface data`: pack an image folder into RecordIO,
// unpack it back, describe a .rec, tile augmented samples into a preview, and
// write small synthetic test sets (drawn face-like patterns, for tests and
// benchmarks; the real synthetic identities are qface synth's job).
#pragma once

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <filesystem>
#include <string>

#include "qface/data/loader.h"
#include "qface/data/recordio.h"

namespace qface::data {

// `out/train` or `out/train.rec` -> `out/train.rec`.
std::filesystem::path rec_path_for_prefix(const std::filesystem::path& prefix);

struct PackReport {
  int64_t images = 0, identities = 0, skipped = 0;
};
// DIR/<identity>/<image> -> PREFIX.rec + PREFIX.idx (atomically). Every image
// is decoded first: one that does not decode is an error naming its file, or,
// with skip_bad, logged and left out. Identities are labelled in name order.
PackReport pack_folder(const std::filesystem::path& dir, const std::filesystem::path& prefix, bool skip_bad);

struct UnpackReport {
  int64_t images = 0, identities = 0, skipped = 0;
};
// PREFIX.rec -> OUT/<label>/<key>.<ext> (extension from the image bytes).
UnpackReport unpack_records(const std::filesystem::path& rec, const std::filesystem::path& out,
                            const ReadOptions& options);

// Images, identities, per-identity count histogram, image format/size census
// (over every image, or `sample` evenly spaced ones when sample > 0), and bad
// records (counted with options.skip_bad, else the first one throws).
nlohmann::json dataset_info(const std::filesystem::path& rec, const ReadOptions& options, int64_t sample = 0);
std::string format_info(const nlohmann::json& info);  // human-readable summary

// The first n images of the loader's epoch-0 order as the loader produces them
// (decoded, augmented), tiled in a grid with a 2-pixel black gap.
cv::Mat preview_grid(const Loader& loader, int64_t n, int64_t epoch = 0);

// A face-like drawn pattern (skin ellipse, eyes, brows, nose, mouth), its
// geometry and colours drawn from `identity`'s seed, jittered per `sample`.
cv::Mat draw_test_face(int64_t identity, int64_t sample, int size = 112);
// `images` drawn faces over `identities` identities as JPEG (quality 90) in a face .rec.
void write_test_rec(const std::filesystem::path& rec, int64_t images, int64_t identities, int size = 112);

}  // namespace qface::data
