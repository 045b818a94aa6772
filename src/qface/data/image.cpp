#include "qface/data/image.h"

#include <turbojpeg.h>

#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "qface/core/error.h"

namespace qface::data {
namespace {

struct TjDeleter {
  void operator()(void* h) const { tjDestroy(h); }
};

std::unique_ptr<void, TjDeleter>& tj_handle() {
  thread_local std::unique_ptr<void, TjDeleter> handle(tjInitDecompress());
  return handle;
}
tjhandle tj_decoder() { return tj_handle().get(); }
// After a failed call a TurboJPEG handle keeps stale state (later, valid
// images fail with the same error), so a failure replaces it.
std::string tj_error_and_reset() {
  std::string msg = tjGetErrorStr2(tj_decoder());
  tj_handle().reset(tjInitDecompress());
  return msg;
}

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

cv::Mat decode_opencv(std::string_view bytes, const std::string& where) {
  cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat img;
  try {
    img = cv::imdecode(buf, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    fail("{}: cannot decode image ({} bytes): {}", where, bytes.size(), e.err);
  }
  if (img.empty()) fail("{}: cannot decode image ({} bytes, format {})", where, bytes.size(), format_name(sniff_format(bytes)));
  return img;
}

}  // namespace

ImageFormat sniff_format(std::string_view b) {
  if (starts_with(b, "\xff\xd8\xff")) return ImageFormat::kJpeg;
  if (starts_with(b, "\x89PNG\r\n\x1a\n")) return ImageFormat::kPng;
  if (starts_with(b, "BM")) return ImageFormat::kBmp;
  if (starts_with(b, "RIFF") && b.size() >= 12 && b.substr(8, 4) == "WEBP") return ImageFormat::kWebp;
  return ImageFormat::kUnknown;
}

const char* format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg: return "jpeg";
    case ImageFormat::kPng: return "png";
    case ImageFormat::kBmp: return "bmp";
    case ImageFormat::kWebp: return "webp";
    default: return "unknown";
  }
}

const char* format_extension(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg: return ".jpg";
    case ImageFormat::kPng: return ".png";
    case ImageFormat::kBmp: return ".bmp";
    case ImageFormat::kWebp: return ".webp";
    default: return ".bin";
  }
}

cv::Mat decode_bgr(std::string_view bytes, const std::string& where, bool strict) {
  require(!bytes.empty(), "{}: cannot decode image (0 bytes)", where);
  if (sniff_format(bytes) == ImageFormat::kJpeg) {
    tjhandle h = tj_decoder();
    require(h != nullptr, "{}: cannot start the JPEG decoder", where);
    const auto* src = reinterpret_cast<const unsigned char*>(bytes.data());
    const unsigned long size = static_cast<unsigned long>(bytes.size());
    int w = 0, hgt = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(h, src, size, &w, &hgt, &subsamp, &colorspace) != 0 || w <= 0 || hgt <= 0)
      fail("{}: cannot decode image ({} bytes, jpeg): {}", where, bytes.size(), tj_error_and_reset());
    if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) return decode_opencv(bytes, where);
    cv::Mat img(hgt, w, CV_8UC3);
    if (tjDecompress2(h, src, size, img.data, w, static_cast<int>(img.step), hgt, TJPF_BGR, 0) != 0) {
      const bool fatal = tjGetErrorCode(h) == TJERR_FATAL;
      const std::string msg = tj_error_and_reset();
      // Warnings (e.g. a truncated scan) still give an image, as with libjpeg/OpenCV, unless strict.
      if (fatal) fail("{}: cannot decode image ({} bytes, jpeg): {}", where, bytes.size(), msg);
      if (strict) fail("{}: damaged JPEG ({} bytes; truncated or corrupt): {}", where, bytes.size(), msg);
    }
    return img;
  }
  return decode_opencv(bytes, where);
}

ImageInfo probe_image(std::string_view bytes, const std::string& where) {
  ImageInfo info;
  info.format = sniff_format(bytes);
  if (info.format == ImageFormat::kJpeg) {
    int subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(tj_decoder(), reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<unsigned long>(bytes.size()), &info.width, &info.height, &subsamp,
                            &colorspace) != 0)
      fail("{}: cannot read the JPEG header: {}", where, tj_error_and_reset());
    info.channels = colorspace == TJCS_GRAY ? 1 : (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK ? 4 : 3);
    return info;
  }
  if (info.format == ImageFormat::kPng && bytes.size() >= 26 && bytes.substr(12, 4) == "IHDR") {
    auto be32 = [&](std::size_t o) {
      const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + o);
      return static_cast<int>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]);
    };
    info.width = be32(16);
    info.height = be32(20);
    const int color_type = static_cast<unsigned char>(bytes[25]);
    info.channels = color_type == 0 ? 1 : color_type == 4 ? 2 : color_type == 6 ? 4 : 3;
    return info;
  }
  cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat img;
  try {
    img = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
  }
  require(!img.empty(), "{}: cannot decode image ({} bytes, format {})", where, bytes.size(), format_name(info.format));
  info.width = img.cols;
  info.height = img.rows;
  info.channels = img.channels();
  return info;
}

std::string encode_image(const cv::Mat& image, const std::string& ext, const std::string& where, int jpeg_quality) {
  std::vector<uchar> buf;
  require(cv::imencode(ext, image, buf, {cv::IMWRITE_JPEG_QUALITY, jpeg_quality}), "{}: cannot encode as {}", where, ext);
  return {buf.begin(), buf.end()};
}

}  // namespace qface::data
