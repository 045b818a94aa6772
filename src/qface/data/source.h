// Where training samples come from: a RecordIO face set or an image folder
// (one sub-folder per identity). Both give (label, encoded bytes) by index and
// are safe to read from many threads.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "qface/data/recordio.h"

namespace qface::data {

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual std::size_t size() const = 0;
  // Number of identities, or -1 when the source does not say.
  virtual int64_t num_classes() const = 0;
  struct Sample {
    int64_t label = 0;
    std::string encoded;
    std::string where;  // "file: record 12" or the image path, for errors
  };
  // Throws qface::Error naming the file and record when the sample is bad.
  virtual Sample read(std::size_t i) const = 0;
  // Bad entries left out while opening (skip_bad).
  virtual std::size_t skipped() const { return 0; }
  virtual std::string describe() const = 0;
};

// A .rec (+ .idx) face set.
std::shared_ptr<SampleSource> open_record_source(const std::filesystem::path& rec, const ReadOptions& options = {});

// An image folder: DIR/<identity>/<image>; identities sorted by name get
// labels 0, 1, ...; files with image extensions (jpg, jpeg, png, bmp, webp;
// any case) sorted by name. Throws when the folder has no identity sub-folder.
struct ImageFolder {
  std::filesystem::path root;
  std::vector<std::string> identities;
  std::vector<std::pair<std::filesystem::path, int64_t>> images;  // (path, label)
};
ImageFolder list_image_folder(const std::filesystem::path& dir);
std::shared_ptr<SampleSource> open_folder_source(const std::filesystem::path& dir);

// A .rec file or an image folder, by what `path` is.
std::shared_ptr<SampleSource> open_source(const std::filesystem::path& path, const ReadOptions& options = {});

}  // namespace qface::data
