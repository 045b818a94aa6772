#include "qface/data/image.h"

#include <turbojpeg.h>

#include <climits>
#include <memory>
#include <optional>
#include <utility>
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

uint32_t le(std::string_view b, std::size_t o, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[o + static_cast<std::size_t>(i)]);
  return v;
}

// Width and height from the header, without decoding; nullopt when the header
// is not one we can read.
std::optional<std::pair<int64_t, int64_t>> header_size(std::string_view b, ImageFormat format,
                                                       const std::string& what) {
  switch (format) {
    case ImageFormat::kJpeg:
    case ImageFormat::kPng: {
      if (format == ImageFormat::kPng && (b.size() < 26 || b.substr(12, 4) != "IHDR")) return std::nullopt;
      const ImageInfo info = probe_image(b, what);  // header only for these two
      return std::pair<int64_t, int64_t>{info.width, info.height};
    }
    case ImageFormat::kBmp: {
      if (b.size() < 26) return std::nullopt;
      if (le(b, 14, 4) == 12) return std::pair<int64_t, int64_t>{le(b, 18, 2), le(b, 20, 2)};  // OS/2 core header
      const int64_t w = static_cast<int32_t>(le(b, 18, 4)), h = static_cast<int32_t>(le(b, 22, 4));
      return std::pair<int64_t, int64_t>{w < 0 ? -w : w, h < 0 ? -h : h};  // negative height: top-down rows
    }
    case ImageFormat::kWebp: {
      if (b.size() < 30) return std::nullopt;
      const std::string_view chunk = b.substr(12, 4);
      if (chunk == "VP8 ") return std::pair<int64_t, int64_t>{le(b, 26, 2) & 0x3fff, le(b, 28, 2) & 0x3fff};
      if (chunk == "VP8L") {
        const uint32_t v = le(b, 21, 4);
        return std::pair<int64_t, int64_t>{(v & 0x3fff) + 1, ((v >> 14) & 0x3fff) + 1};
      }
      if (chunk == "VP8X") return std::pair<int64_t, int64_t>{le(b, 24, 3) + 1, le(b, 27, 3) + 1};
      return std::nullopt;
    }
    default: return std::nullopt;
  }
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

cv::Mat decode_image(std::string_view bytes, const std::string& what, int64_t max_pixels) {
  require(!bytes.empty(), "{}: empty image", what);
  require(bytes.size() <= static_cast<std::size_t>(INT_MAX), "{}: {} bytes is too large for an image", what,
          bytes.size());
  const ImageFormat format = sniff_format(bytes);
  require(format != ImageFormat::kUnknown, "{}: not a decodable image ({} bytes; JPEG, PNG, BMP or WebP expected)",
          what, bytes.size());
  const auto size = header_size(bytes, format, what);
  require(size.has_value() && size->first > 0 && size->second > 0, "{}: cannot read the {} header ({} bytes)", what,
          format_name(format), bytes.size());
  require(size->first <= max_pixels && size->second <= max_pixels && size->first * size->second <= max_pixels,
          "{}: {}x{} image exceeds the {} pixel limit", what, size->first, size->second, max_pixels);
  // Strict: a truncated or corrupt JPEG is refused, not embedded with a grey remainder.
  const cv::Mat img = decode_bgr(bytes, what, /*strict=*/true);
  require(int64_t{img.rows} * img.cols <= max_pixels, "{}: {}x{} image exceeds the {} pixel limit", what, img.cols,
          img.rows, max_pixels);
  return img;
}

}  // namespace qface::data
