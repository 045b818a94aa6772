// qface.load_model / qface.Model: a backbone with its weights (qface's own,
// official AdaFace .ckpt, MagFace .pth), the preprocessing of its family, flip
// fusion and the detector + 5-point alignment of the deployment pipeline.
#include <pybind11/stl.h>
#include <torch/torch.h>

#include <memory>
#include <optional>

#include "bindings.h"
#include "convert.h"
#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/deploy/calibration.h"
#include "qface/deploy/pipeline.h"
#include "qface/io/checkpoint.h"
#include "qface/version.h"

namespace qface::py {
namespace {

using deploy::Pipeline;

std::shared_ptr<Pipeline> load_model(const std::string& weights, const std::string& arch, std::optional<bool> flip_fuse,
                                     const std::string& quality_calibration, int threads, const std::string& precision,
                                     const std::string& detector, int upsample, int64_t max_pixels,
                                     const std::string& device) {
  deploy::PipelineOptions o;
  o.device = device;
  o.detector.kind = deploy::parse_detector_kind(detector);
  require(upsample >= 0 && upsample <= 3, "upsample: expected 0 to 3, got {}", upsample);
  require(max_pixels >= 0, "max_pixels: expected 0 (never scale down) or more, got {}", max_pixels);
  o.detector.upsample = upsample;
  o.detector.max_pixels = max_pixels;
  o.precision = infer::parse_precision(precision);
  o.arch = arch;
  o.weights = weights;
  // Unset: the mode of the verification calibration beside the weights (its
  // thresholds hold for those features only), else flip-fused.
  if (!flip_fuse) {
    const auto cal = deploy::find_verify_calibration({}, weights, "load_model");
    if (cal) flip_fuse = cal->mode == "flip_fused";
  }
  o.flip_fuse = flip_fuse.value_or(true);
  o.threads = threads;
  o.quality_calibration = quality_calibration;
  require(!weights.empty(), "load_model: weights are required");
  pyb::gil_scoped_release release;
  return std::make_shared<Pipeline>(o);
}

pyb::dict side_dict(const deploy::Probe& r) {
  pyb::dict s;
  s["norm"] = r.norm;
  s["quality"] = r.quality ? pyb::cast(*r.quality) : pyb::none();
  s["faces"] = r.faces;
  s["box"] = r.face ? pyb::cast(std::vector<int>{r.face->box.x, r.face->box.y, r.face->box.width, r.face->box.height})
                    : pyb::none();
  return s;
}

pyb::dict verify_pair(const Pipeline& p, const pyb::object& a, const pyb::object& b, bool bgr, std::optional<double> far,
                      const std::string& calibration) {
  const std::vector<cv::Mat> ia = images_from_numpy(a, bgr, "a"), ib = images_from_numpy(b, bgr, "b");
  require(ia.size() == 1 && ib.size() == 1, "verify: expected one H x W x 3 image as a and one as b");
  const std::optional<deploy::VerifyCalibration> cal =
      deploy::find_verify_calibration(calibration, p.options().weights, "verify");
  if (cal)
    require((cal->mode == "flip_fused") == p.options().flip_fuse,
            "{}: made with {} features, the model gives {} ones: load it with flip_fuse={}", cal->source, cal->mode,
            p.options().flip_fuse ? "flip-fused" : "plain", cal->mode == "flip_fused" ? "True" : "False");
  const double f = deploy::decision_far(cal ? &*cal : nullptr, far, "far");
  deploy::Probe pa, pb;
  {
    pyb::gil_scoped_release release;
    pa = p.probe(ia[0]);
    pb = p.probe(ib[0]);
  }
  require(pa.found, "a: no face found");
  require(pb.found, "b: no face found");
  const double cosine = (pa.embedding * pb.embedding).sum().item<double>();
  pyb::dict d;
  d["cosine"] = cosine;
  d["far"] = pyb::none();
  d["threshold"] = pyb::none();
  d["match"] = pyb::none();
  if (cal) {
    const double t = cal->threshold_for(f);
    d["far"] = f;
    d["threshold"] = t;
    d["match"] = cosine > t;
  }
  d["a"] = side_dict(pa);
  d["b"] = side_dict(pb);
  return d;
}

}  // namespace

std::string version() { return kVersion; }

void bind_model(pyb::module_& m) {
  pyb::class_<Pipeline, std::shared_ptr<Pipeline>>(m, "Model", R"(A face recognition model ready for inference.

Made by qface.load_model(). Thread-safe: calls are serialized on the model.)")
      .def_property_readonly("arch", [](const Pipeline& p) { return p.options().arch; }, "backbone name")
      .def_property_readonly("dim", &Pipeline::dim, "embedding size")
      .def_property_readonly("precision", [](const Pipeline& p) { return std::string(infer::precision_name(p.precision())); },
                             "the precision inference runs in (auto resolved)")
      .def_property_readonly("flip_fuse", [](const Pipeline& p) { return p.options().flip_fuse; },
                             "whether embeddings are fused with the flipped image's (docs/method.md)")
      .def(
          "embed",
          [](const Pipeline& p, const pyb::object& images, bool bgr) {
            std::vector<cv::Mat> crops = images_from_numpy(images, bgr, "images");
            for (std::size_t i = 0; i < crops.size(); ++i)
              require(crops[i].rows == 112 && crops[i].cols == 112,
                      "images[{}]: {} x {}, expected an aligned 112 x 112 crop (qface.Model.align makes one)", i,
                      crops[i].rows, crops[i].cols);
            std::pair<torch::Tensor, torch::Tensor> r;
            {
              pyb::gil_scoped_release release;
              r = p.embed_crops(crops);
            }
            return pyb::make_tuple(like_input(to_numpy(r.first), images), like_input(to_numpy(r.second), images));
          },
          pyb::arg("images"), pyb::arg("bgr") = false,
          R"(Embeddings and norms of aligned 112 x 112 face crops.

images: uint8 array, H x W x 3 (one crop) or N x H x W x 3, RGB (as PIL and
torchvision give them) unless bgr=True (OpenCV); or a torch uint8 tensor in
that layout or torchvision's channels-first one (C x H x W, N x C x H x W).
The model family's own preprocessing (AdaFace BGR in [-1, 1], MagFace BGR in
[0, 1], ...) is applied. Returns (embeddings N x D float32, L2-normalized and
flip-fused when the model is; norms N float32, the plain image's feature
norm: the quality score): numpy arrays, or torch tensors over the same memory
(no copy) when `images` is a torch tensor.)")
      .def(
          "align",
          [](const Pipeline& p, const pyb::object& image, bool bgr) -> pyb::object {
            std::vector<cv::Mat> imgs = images_from_numpy(image, bgr, "image");
            require(imgs.size() == 1, "image: expected one H x W x 3 image, got a batch of {}", imgs.size());
            std::optional<deploy::Face> face;
            std::optional<cv::Mat> crop;
            {
              pyb::gil_scoped_release release;
              crop = p.crop(imgs[0], &face);
            }
            if (!crop) return pyb::none();
            return face_dict(face, *crop, bgr);
          },
          pyb::arg("image"), pyb::arg("bgr") = false,
          R"(Detects the largest face (dlib HOG + 68 landmarks) and aligns it to the
112 x 112 ArcFace template by its five points.

A 112 x 112 input is taken as an already aligned crop. Returns None when no
face is found, else {"crop": 112 x 112 x 3 uint8 (RGB unless bgr), "points":
5 x 2 float32 (eyes, nose, mouth corners, in the input image) or None for an
aligned input, "box": (x, y, w, h) or None}.)")
      .def(
          "probe",
          [](const Pipeline& p, const pyb::object& image, bool bgr) -> pyb::object {
            std::vector<cv::Mat> imgs = images_from_numpy(image, bgr, "image");
            require(imgs.size() == 1, "image: expected one H x W x 3 image, got a batch of {}", imgs.size());
            deploy::Probe r;
            {
              pyb::gil_scoped_release release;
              r = p.probe(imgs[0]);
            }
            if (!r.found) return pyb::none();
            pyb::dict d = face_dict(r.face, r.crop, bgr);
            d["embedding"] = to_numpy(r.embedding);
            d["norm"] = r.norm;
            d["quality"] = r.quality ? pyb::cast(*r.quality) : pyb::none();
            d["faces"] = r.faces;
            return d;
          },
          pyb::arg("image"), pyb::arg("bgr") = false,
          R"(align + embed + quality of one photo, as `qface verify` / `qface serve` do.

Returns None when no face is found, else align()'s dict plus "embedding" (D
float32), "norm" (the quality proxy), "quality" (calibrated [0, 1] when the
model was loaded with a quality calibration, else None) and "faces" (how many
the photo has: the largest is the one used).)")
      .def("verify", &verify_pair, pyb::arg("a"), pyb::arg("b"), pyb::arg("bgr") = false,
           pyb::arg("far") = std::nullopt, pyb::arg("calibration") = "",
           R"(One 1:1 decision, as `qface verify a.jpg b.jpg`: both photos aligned
(the largest face of each) and embedded, their cosine compared with the
threshold of a verification calibration at a false-accept rate.

calibration: a calibration.verify JSON; default: model.verify.json beside the
weights (`make run` writes one for each model). far: default 1e-3, or the
strictest the calibration resolves above it; one it does not resolve raises.
Returns {"cosine", "far", "threshold", "match" (None, None, None without a
calibration), "a" and "b": {"norm", "quality", "faces", "box"}}. Raises
qface.Error when a photo has no face, or when the calibration was made with
the other flip-fusion mode than the model's.)");

  m.def("load_model", &load_model, pyb::arg("weights"), pyb::arg("arch") = "", pyb::arg("flip_fuse") = std::nullopt,
        pyb::arg("quality_calibration") = "", pyb::arg("threads") = 0, pyb::arg("precision") = "fp32",
        pyb::arg("detector") = deploy::detector_kind_name(deploy::DetectorOptions{}.kind),
        pyb::arg("upsample") = deploy::DetectorOptions{}.upsample,
        pyb::arg("max_pixels") = deploy::DetectorOptions{}.max_pixels, pyb::arg("device") = "cpu",
        R"(Loads a backbone and its weights for inference.

weights: a qface checkpoint, an official AdaFace Lightning .ckpt, a MagFace
.pth or a torch state dict (read without Python's torch).
arch: ir_18 / ir_50 / ir_101 / ir_se_50 / iresnet18..100 / mobilefacenet;
default: the one the file records (qface's, AdaFace's and MagFace's files do).
flip_fuse: embeddings fused with the flipped image's, weighted by norm (docs/method.md,
Flip fusion); default: as the verification calibration beside the weights was
made (`make run` writes model.verify.json), else True.
quality_calibration: a calibration.quality JSON (`qface eval quality
--calibration-out`) to map norms to [0, 1]; default: <stem>.quality.json
beside the weights when there (`make run` writes one for each model).
threads: CPU threads (0: every logical core).
device: cpu, cuda or cuda:N: where the backbone runs (fp32 only on a GPU;
detection stays on the CPU). cuda on a LibTorch without CUDA raises
qface.Error.
precision: fp32, bf16, int8 (weights from `qface quantize`) or auto (the
fastest that passes the accuracy guard against fp32 on this CPU, measured
once per model file and machine and cached in $XDG_CACHE_HOME/qface).
detector, upsample, max_pixels: how model.align / probe / verify and
qface.quality find faces in photos, as qface.align's arguments of the same
names (and `qface verify --detector --upsample --detect-max-pixels`).
Raises qface.Error naming the file on a missing or unreadable checkpoint.)");
  m.def("backbones", &backbones::backbone_names, "The backbone names load_model accepts.");
  m.def(
      "_random_weights",
      [](const std::string& path, const std::string& arch, uint64_t seed) {
        torch::manual_seed(seed);
        io::save_checkpoint(path, *backbones::make_backbone(arch), arch);
      },
      pyb::arg("path"), pyb::arg("arch") = "mobilefacenet", pyb::arg("seed") = 0,
      "For tests and examples only: a qface checkpoint of seeded random weights (the scores mean nothing).");
}

}  // namespace qface::py
