// qface data pack|unpack|info|preview|make-test: RecordIO face datasets.
#include <spdlog/spdlog.h>

#include <iostream>

#include "apps/qface/command.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/image.h"
#include "qface/data/loader.h"
#include "qface/data/tools.h"

namespace qface::cli {
namespace {
namespace fs = std::filesystem;

void add_read_options(CLI::App& app, data::ReadOptions& r) {
  app.add_flag("--skip-bad", r.skip_bad, "log and count bad records instead of stopping at the first");
  app.add_flag("!--no-index", r.use_index, "ignore the .idx file and scan the records sequentially");
}

Runner setup_pack(CLI::App& app) {
  struct Args {
    std::string from, out;
    bool skip_bad = false;
  };
  auto a = std::make_shared<Args>();
  app.add_option("--from", a->from, "image folder: one sub-folder per identity")->required()->check(CLI::ExistingDirectory);
  app.add_option("--out", a->out, "output prefix: writes PREFIX.rec and PREFIX.idx")->required();
  app.add_flag("--skip-bad", a->skip_bad, "log and leave out images that do not decode");
  return [a] {
    const auto r = data::pack_folder(a->from, a->out, a->skip_bad);
    const fs::path rec = data::rec_path_for_prefix(a->out);
    spdlog::info("packed {} images of {} identities into {} (+ {}){}", r.images, r.identities, rec.string(),
                 data::idx_path_for(rec).filename().string(),
                 r.skipped ? fmt::format(", {} bad images skipped", r.skipped) : "");
    return 0;
  };
}

Runner setup_unpack(CLI::App& app) {
  struct Args {
    std::string rec, out;
    data::ReadOptions read;
  };
  auto a = std::make_shared<Args>();
  app.add_option("--rec", a->rec, "PREFIX.rec (its .idx is used when present)")->required()->check(CLI::ExistingFile);
  app.add_option("--out", a->out, "output folder: OUT/<label>/<key>.<ext>")->required();
  add_read_options(app, a->read);
  return [a] {
    const auto r = data::unpack_records(a->rec, a->out, a->read);
    spdlog::info("unpacked {} images of {} identities into {}{}", r.images, r.identities, a->out,
                 r.skipped ? fmt::format(", {} bad records skipped", r.skipped) : "");
    return 0;
  };
}

Runner setup_info(CLI::App& app) {
  struct Args {
    std::string rec, json_out;
    int64_t sample = 2000;
    bool json = false;
    data::ReadOptions read;
  };
  auto a = std::make_shared<Args>();
  app.add_option("rec", a->rec, "PREFIX.rec")->required()->check(CLI::ExistingFile);
  app.add_option("--sample", a->sample, "images examined for the format/size census (0 = all)")->capture_default_str();
  app.add_flag("--json", a->json, "print JSON instead of text");
  app.add_option("--out", a->json_out, "also write the JSON report to this file");
  add_read_options(app, a->read);
  return [a] {
    const nlohmann::json info = data::dataset_info(a->rec, a->read, a->sample);
    if (!a->json_out.empty()) write_file_atomic(a->json_out, info.dump(2) + "\n");
    std::cout << (a->json ? info.dump(2) + "\n" : data::format_info(info));
    return 0;
  };
}

Runner setup_preview(CLI::App& app) {
  struct Args {
    std::string rec, out;
    int64_t n = 64, epoch = 0;
    uint64_t seed = 0;
    bool no_augment = false;
    data::ReadOptions read;
  };
  auto a = std::make_shared<Args>();
  app.add_option("--rec", a->rec, "PREFIX.rec or an image folder")->required()->check(CLI::ExistingPath);
  app.add_option("--n", a->n, "number of samples")->capture_default_str()->check(CLI::Range(1, 4096));
  app.add_option("--out", a->out, "grid image (.png or .jpg)")->required();
  app.add_option("--seed", a->seed, "shuffle / augmentation seed")->capture_default_str();
  app.add_option("--epoch", a->epoch, "epoch whose order and augmentations are shown")->capture_default_str();
  app.add_flag("--no-augment", a->no_augment, "show the decoded images without augmentation");
  add_read_options(app, a->read);
  return [a] {
    data::LoaderOptions o;
    o.source = a->rec;
    o.read = a->read;
    o.num_threads = 0;
    o.seed = a->seed;
    o.augment = !a->no_augment;
    data::Loader loader(o);
    const cv::Mat grid = data::preview_grid(loader, a->n, a->epoch);
    std::string ext = fs::path(a->out).extension().string();
    require(ext == ".png" || ext == ".jpg" || ext == ".jpeg", "{}: output must be .png or .jpg", a->out);
    write_file_atomic(a->out, data::encode_image(grid, ext, a->out));
    spdlog::info("preview: {} samples of {} -> {} ({}x{})", std::min<int64_t>(a->n, loader.num_images()), a->rec,
                 a->out, grid.cols, grid.rows);
    return 0;
  };
}

Runner setup_make_test(CLI::App& app) {
  struct Args {
    std::string out;
    int64_t images = 1000, identities = 50;
    int size = 112;
  };
  auto a = std::make_shared<Args>();
  app.add_option("--out", a->out, "output prefix: PREFIX.rec + PREFIX.idx")->required();
  app.add_option("--images", a->images, "images")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--identities", a->identities, "identities")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--size", a->size, "image side in pixels")->capture_default_str()->check(CLI::Range(16, 1024));
  return [a] {
    const fs::path rec = data::rec_path_for_prefix(a->out);
    data::write_test_rec(rec, a->images, a->identities, a->size);
    spdlog::info("wrote {} drawn test faces of {} identities to {}", a->images, a->identities, rec.string());
    return 0;
  };
}

const Registrar pack{{"pack", "Pack an image folder (one sub-folder per identity) into PREFIX.rec/.idx", setup_pack, "data"}};
const Registrar unpack{{"unpack", "Unpack a .rec into OUT/<label>/<key>.<ext>", setup_unpack, "data"}};
const Registrar info{{"info", "Images, identities, per-identity histogram, format/size census of a .rec", setup_info, "data"}};
const Registrar preview{{"preview", "Grid of augmented training samples as the loader makes them", setup_preview, "data"}};
const Registrar make_test{{"make-test", "Write a small .rec of drawn face-like test images (tests, benchmarks)", setup_make_test, "data"}};

}  // namespace
}  // namespace qface::cli
