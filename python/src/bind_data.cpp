// qface.RecordIO / RecordIOWriter: InsightFace's .rec/.idx face datasets
// (MS1MV2, WebFace, Glint360K layouts) without MXNet; qface.read_bin /
// write_bin: the verification .bin sets (lfw.bin, cfp_fp.bin, ...).
#include <pybind11/stl.h>


#include <memory>

#include "bindings.h"
#include "convert.h"
#include "qface/core/error.h"
#include "qface/data/bin_set.h"
#include "qface/data/image.h"
#include "qface/data/recordio.h"

namespace qface::py {
namespace {

using data::FaceRecordSet;
using data::FaceRecordWriter;

struct RecordIO {
  std::shared_ptr<FaceRecordSet> set;
  bool decode = false, bgr = false;
};

// Item i of a RecordIO as (image, label): encoded bytes, or decoded numpy.
pyb::tuple item(const FaceRecordSet& s, pyb::ssize_t i, bool decode, bool bgr) {
  const auto n = static_cast<pyb::ssize_t>(s.num_images());
  if (i < 0) i += n;
  if (i < 0 || i >= n) throw pyb::index_error(fmt::format("RecordIO index {} out of range ({} images)", i, n));
  // Reading a record is a copy out of the mapped file: the GIL is released only to decode.
  FaceRecordSet::Image im = s.read_image(static_cast<std::size_t>(i));
  if (!decode) return pyb::make_tuple(pyb::bytes(im.encoded), im.label);
  cv::Mat img;
  {
    pyb::gil_scoped_release release;
    img = data::decode_bgr(im.encoded, fmt::format("{}: record {}", s.path().string(), im.key));
  }
  return pyb::make_tuple(image_to_numpy(img, bgr), im.label);
}

}  // namespace

void bind_data(pyb::module_& m) {
  pyb::class_<RecordIO, std::shared_ptr<RecordIO>>(m, "RecordIO", R"(An InsightFace face dataset (.rec + .idx), read without MXNet.

RecordIO(path, decode=False, bgr=False): len() images; rec[i] is (image,
label), the image as encoded JPEG/PNG bytes, or with decode=True an
H x W x 3 uint8 array (RGB unless bgr); iterating yields the same in order.
Labels are int identity ids. Malformed records raise qface.Error naming the
file and record.)")
      .def(pyb::init([](const std::string& path, bool decode, bool bgr) {
             pyb::gil_scoped_release release;
             return std::make_shared<RecordIO>(RecordIO{std::make_shared<FaceRecordSet>(path), decode, bgr});
           }),
           pyb::arg("path"), pyb::arg("decode") = false, pyb::arg("bgr") = false)
      .def("__len__", [](const RecordIO& r) { return r.set->num_images(); })
      .def("__getitem__", [](const RecordIO& r, pyb::ssize_t i) { return item(*r.set, i, r.decode, r.bgr); })
      .def(
          "read", [](const RecordIO& r, pyb::ssize_t i, bool decode, bool bgr) { return item(*r.set, i, decode, bgr); },
          pyb::arg("index"), pyb::arg("decode") = true, pyb::arg("bgr") = false,
          "Image `index` as (array, label), or (bytes, label) with decode=False, whatever the reader's default.")
      .def("__iter__",
           [](std::shared_ptr<RecordIO> r) {
             // Lazily, index by index: a 5M-image set is never read at once.
             pyb::object indices = pyb::module_::import("builtins").attr("range")(r->set->num_images());
             return pyb::module_::import("builtins").attr("map")(
                 pyb::cpp_function([r](pyb::ssize_t i) { return item(*r->set, i, r->decode, r->bgr); }), indices);
           })
      .def_property_readonly("num_classes", [](const RecordIO& r) { return r.set->num_classes(); },
                             "identities listed by the header record (-1 without one)")
      .def_property_readonly("path", [](const RecordIO& r) { return r.set->path().string(); })
      .def("labels",
           [](const RecordIO& r) {
             const FaceRecordSet& s = *r.set;
             pyb::array_t<int64_t> out(static_cast<pyb::ssize_t>(s.num_images()));
             int64_t* dst = out.mutable_data();
             {
               pyb::gil_scoped_release release;
               for (std::size_t i = 0; i < s.num_images(); ++i) dst[i] = s.read_image(i).label;
             }
             return out;
           },
           "Every image's label (reads the whole file).");

  pyb::class_<FaceRecordWriter>(m, "RecordIOWriter", R"(Writes a face dataset as InsightFace lays it out.

with qface.RecordIOWriter("out/train.rec") as w:
    w.add(jpeg_bytes_or_image, label)   # labels non-decreasing, one run per identity
The .rec and .idx appear atomically when the block ends without an error
(or on finish()); an unfinished writer leaves no files.)")
      .def(pyb::init<const std::string&>(), pyb::arg("path"))
      .def(
          "add",
          [](FaceRecordWriter& w, const pyb::object& image, int64_t label, bool bgr, int quality) {
            std::string encoded;
            if (pyb::isinstance<pyb::bytes>(image)) {
              encoded = image.cast<std::string>();
            } else {
              std::vector<cv::Mat> imgs = images_from_numpy(image, bgr, "image");
              require(imgs.size() == 1, "image: expected one H x W x 3 image");
              encoded = data::encode_image(imgs[0], ".jpg", "image", quality);
            }
            return w.add_image(encoded, label);
          },
          pyb::arg("image"), pyb::arg("label"), pyb::arg("bgr") = false, pyb::arg("quality") = 95,
          "Appends an image (encoded bytes, or a uint8 array encoded as JPEG) of identity `label`; returns its key.")
      .def("finish", &FaceRecordWriter::finish, pyb::arg("num_classes") = 0,
           "Writes the identity and header records, then commits the .rec and .idx.")
      .def("__enter__", [](FaceRecordWriter& w) -> FaceRecordWriter& { return w; }, pyb::return_value_policy::reference)
      .def("__exit__", [](FaceRecordWriter& w, const pyb::object& type, const pyb::object&, const pyb::object&) {
        if (type.is_none()) w.finish();
        return false;
      });

  m.def(
      "read_bin",
      [](const std::string& path) {
        data::BinSet s;
        {
          pyb::gil_scoped_release release;
          s = data::read_bin_set(path);
        }
        pyb::list images;
        for (const auto& b : s.images) images.append(pyb::bytes(b));
        pyb::array_t<bool> same(static_cast<pyb::ssize_t>(s.issame.size()));
        for (std::size_t i = 0; i < s.issame.size(); ++i) same.mutable_data()[i] = s.issame[i] != 0;
        return pyb::make_tuple(images, same);
      },
      pyb::arg("path"), R"(Reads a verification .bin set: (list of encoded images, issame bool array).

Pairs are images (2i, 2i+1). Any pickle protocol; issame may be a list or a
NumPy array, images bytes or NumPy uint8 arrays.)");
  m.def(
      "write_bin",
      [](const std::string& path, const std::vector<std::string>& images, const pyb::object& issame) {
        data::BinSet s;
        s.images = images;
        s.issame = flags_from_numpy(issame, "issame");
        pyb::gil_scoped_release release;
        data::write_bin_set(path, s);
      },
      pyb::arg("path"), pyb::arg("images"), pyb::arg("issame"),
      "Writes a .bin set (protocol-2 pickle, as the original tools did) atomically.");
}

}  // namespace qface::py
