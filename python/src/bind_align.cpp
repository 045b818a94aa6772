// qface.align (detection and 5-point alignment without a recognition model)
// and qface.quality (a model's per-image quality of photos or crops).
#include <pybind11/stl.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "bindings.h"
#include "convert.h"
#include "qface/core/error.h"
#include "qface/data/alignment.h"
#include "qface/deploy/align.h"
#include "qface/deploy/pipeline.h"

namespace qface::py {
namespace {

// One detector per setting (kind, upsample, max pixels, scan, min score),
// made on first use (loading dlib's landmark model takes ~0.1 s, the SSD's
// weights ~0.05 s) and kept for the process.
const deploy::FaceDetector& detector(const std::string& kind, int upsample, int64_t max_pixels, double scan,
                                     double min_score) {
  static std::mutex mutex;
  static std::map<std::tuple<std::string, int, int64_t, double, double>, std::unique_ptr<deploy::FaceDetector>> detectors;
  std::lock_guard lock(mutex);
  auto& d = detectors[{kind, upsample, max_pixels, scan, min_score}];
  if (!d) {
    deploy::DetectorOptions o;
    o.kind = deploy::parse_detector_kind(kind);
    o.upsample = upsample;
    o.max_pixels = max_pixels;
    o.ssd.scan = scan;
    o.ssd.min_score = min_score;
    d = std::make_unique<deploy::FaceDetector>(o);
  }
  return *d;
}

// A list of images: one array (H x W x 3 or a batch N x H x W x 3) or a
// Python sequence of single images of any sizes.
std::vector<cv::Mat> image_list(const pyb::object& images, bool bgr) {
  if (pyb::isinstance<pyb::array>(images) || is_torch(images)) return images_from_numpy(images, bgr, "images");
  require(pyb::isinstance<pyb::sequence>(images), "images: expected an array or a list of arrays");
  std::vector<cv::Mat> out;
  std::size_t i = 0;
  for (const auto& item : images) {
    std::vector<cv::Mat> one = images_from_numpy(item, bgr, fmt::format("images[{}]", i++));
    require(one.size() == 1, "images[{}]: expected one H x W x 3 image, got a batch of {}", i - 1, one.size());
    out.push_back(one[0]);
  }
  return out;
}

}  // namespace

void bind_align(pyb::module_& m) {
  m.def(
      "align",
      [](const pyb::object& image, bool bgr, const std::string& detector_kind, int upsample, int64_t max_pixels,
         double scan, double min_score) {
        require(upsample >= 0 && upsample <= 3, "upsample: expected 0 to 3, got {}", upsample);
        require(max_pixels >= 0, "max_pixels: expected 0 (never scale down) or more, got {}", max_pixels);
        require(scan == 0 || (scan >= 0.25 && scan <= 4), "scan: expected 0 (off) or 0.25 to 4, got {}", scan);
        const deploy::FaceDetector& d = detector(detector_kind, upsample, max_pixels, scan, min_score);
        std::vector<cv::Mat> imgs = images_from_numpy(image, bgr, "image");
        require(imgs.size() == 1, "image: expected one H x W x 3 image, got a batch of {}", imgs.size());
        std::vector<std::pair<deploy::Face, cv::Mat>> faces;
        {
          pyb::gil_scoped_release release;
          for (const auto& f : d.detect(imgs[0]))
            faces.emplace_back(f, data::warp_face(imgs[0], f.landmarks));
        }
        pyb::list out;
        for (const auto& [f, crop] : faces) out.append(face_dict(f, crop, bgr));
        return out;
      },
      pyb::arg("image"), pyb::arg("bgr") = false,
      pyb::arg("detector") = deploy::detector_kind_name(deploy::DetectorOptions{}.kind), pyb::arg("upsample") = deploy::DetectorOptions{}.upsample,
      pyb::arg("max_pixels") = deploy::DetectorOptions{}.max_pixels, pyb::arg("scan") = deploy::SsdOptions{}.scan, pyb::arg("min_score") = deploy::SsdOptions{}.min_score,
      R"(Every face in a photo, detected (no recognition model needed) and
aligned to the 112 x 112 ArcFace template by its five points (dlib's 68
landmarks reduced to five).

image: H x W x 3 uint8, RGB unless bgr=True. detector: "ssd" (face-api's
SSD-MobileNetV1 CNN, the npm package scripts/setup.sh installs) or "hog"
(dlib's frontal HOG), as `qface align --detector`. upsample (hog): image
doublings before detection (HOG finds faces of about 80 / 2^upsample pixels
and up, counted after max_pixels). max_pixels (hog): photos of more pixels are
first scaled down to this area, as `qface align --detect-max-pixels` (a
1920 x 1080 frame by 0.69: its 40-pixel faces become 28 pixels; 0: never
scale down). scan (ssd): also run the photo resized by this factor through
the network at full resolution, as `qface align --detect-scan` (1.25:
faces from ~48 pixels; 2: ~32; 0: one whole-photo pass, as face-api). min_score (ssd): face probability a box needs.
Returns a list, largest face first (empty when none), of {"crop": 112 x 112 x 3
uint8 in the input's channel order, "points": 5 x 2 float32 (eye centres,
nose tip, mouth corners, in image pixels), "box": (x, y, w, h), "score":
the detector's score}.)");

  m.def(
      "quality",
      [](const deploy::Pipeline& model, const pyb::object& images, bool bgr) {
        const std::vector<cv::Mat> imgs = image_list(images, bgr);
        const std::size_t n = imgs.size();
        // Plain vectors while the GIL is released; the arrays are made after.
        std::vector<float> norms(n, std::nanf(""));
        std::unique_ptr<bool[]> found(new bool[n]());
        std::vector<double> quality;
        {
          pyb::gil_scoped_release release;
          std::vector<cv::Mat> crops;
          std::vector<std::size_t> at;
          for (std::size_t i = 0; i < n; ++i) {
            std::optional<cv::Mat> c = model.crop(imgs[i]);
            found[i] = c.has_value();
            if (c) {
              crops.push_back(*c);
              at.push_back(i);
            }
          }
          torch::Tensor nm = model.embed_crops(crops).second.contiguous();
          for (std::size_t k = 0; k < at.size(); ++k) norms[at[k]] = nm[static_cast<int64_t>(k)].item<float>();
          if (model.has_quality_calibration())
            for (std::size_t i = 0; i < n; ++i) quality.push_back(found[i] ? *model.quality(norms[i]) : std::nan(""));
        }
        const auto len = static_cast<pyb::ssize_t>(n);
        pyb::dict d;
        d["norm"] = pyb::array_t<float>(len, norms.data());
        d["quality"] = quality.empty() ? pyb::object(pyb::none()) : pyb::object(pyb::array_t<double>(len, quality.data()));
        d["found"] = pyb::array_t<bool>(len, found.get());
        return d;
      },
      pyb::arg("model"), pyb::arg("images"), pyb::arg("bgr") = false,
      R"(Per-image face quality, as `qface quality`: the raw feature norm of the
image (the AdaFace / MagFace quality proxy) and, when the model was loaded
with a quality_calibration, that norm mapped to [0, 1].

model: from qface.load_model. images: one H x W x 3 uint8 image, a batch N x
H x W x 3, or a list of images of any sizes; RGB unless bgr=True. 112 x 112
images are taken as aligned crops, larger ones are detected and aligned
(largest face). Returns {"norm": N float32 (NaN where no face was found),
"quality": N float64 in [0, 1] or None without a calibration, "found": N bool}.)");
}

}  // namespace qface::py
