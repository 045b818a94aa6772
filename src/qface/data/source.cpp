#include "qface/data/source.h"

#include <algorithm>
#include <cctype>

#include "qface/core/error.h"
#include "qface/core/fs.h"

namespace qface::data {
namespace fs = std::filesystem;

namespace {

class RecordSource : public SampleSource {
 public:
  RecordSource(const fs::path& rec, const ReadOptions& o) : set_(rec, o) {}
  std::size_t size() const override { return set_.num_images(); }
  int64_t num_classes() const override { return set_.num_classes(); }
  Sample read(std::size_t i) const override {
    auto im = set_.read_image(i);
    return {im.label, std::move(im.encoded), fmt::format("{}: record {}", set_.path().string(), im.key)};
  }
  std::size_t skipped() const override { return set_.skipped(); }
  std::string describe() const override { return set_.path().string(); }

 private:
  FaceRecordSet set_;
};

class FolderSource : public SampleSource {
 public:
  explicit FolderSource(ImageFolder f) : f_(std::move(f)) {}
  std::size_t size() const override { return f_.images.size(); }
  int64_t num_classes() const override { return static_cast<int64_t>(f_.identities.size()); }
  Sample read(std::size_t i) const override {
    const auto& [path, label] = f_.images.at(i);
    return {label, read_file(path), path.string()};
  }
  std::string describe() const override { return f_.root.string(); }

 private:
  ImageFolder f_;
};

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".webp";
}

}  // namespace

std::shared_ptr<SampleSource> open_record_source(const fs::path& rec, const ReadOptions& options) {
  return std::make_shared<RecordSource>(rec, options);
}

ImageFolder list_image_folder(const fs::path& dir) {
  std::error_code ec;
  require(fs::is_directory(dir, ec), "{}: not a folder", dir.string());
  ImageFolder f;
  f.root = dir;
  std::vector<fs::path> subdirs;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) subdirs.push_back(e.path());
  require(!ec, "{}: cannot list: {}", dir.string(), ec.message());
  std::sort(subdirs.begin(), subdirs.end());
  require(!subdirs.empty(), "{}: no identity sub-folders (expected DIR/<identity>/<image>)", dir.string());
  for (const auto& sub : subdirs) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(sub, ec))
      if (e.is_regular_file() && is_image_file(e.path())) files.push_back(e.path());
    require(!ec, "{}: cannot list: {}", sub.string(), ec.message());
    std::sort(files.begin(), files.end());
    const int64_t label = static_cast<int64_t>(f.identities.size());
    f.identities.push_back(sub.filename().string());
    for (auto& p : files) f.images.emplace_back(std::move(p), label);
  }
  return f;
}

std::shared_ptr<SampleSource> open_folder_source(const fs::path& dir) {
  return std::make_shared<FolderSource>(list_image_folder(dir));
}

std::shared_ptr<SampleSource> open_source(const fs::path& path, const ReadOptions& options) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return open_folder_source(path);
  return open_record_source(path, options);
}

}  // namespace qface::data
