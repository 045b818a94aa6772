// Decoding encoded face images to 8-bit BGR: libjpeg-turbo's TurboJPEG for
// JPEG (the fast path), OpenCV's imdecode for everything else.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace qface::data {

enum class ImageFormat { kJpeg, kPng, kBmp, kWebp, kUnknown };

// From the leading magic bytes.
ImageFormat sniff_format(std::string_view bytes);
const char* format_name(ImageFormat format);  // "jpeg", "png", ...
const char* format_extension(ImageFormat format);  // ".jpg", ".png", ... (".bin" when unknown)

// Decodes to CV_8UC3 BGR (gray images are expanded). Throws qface::Error
// "<where>: cannot decode image (...)" when the bytes do not decode. Thread-safe.
// A JPEG that libjpeg decodes only with warnings (a truncated file, corrupt
// entropy data) gives an image with a grey remainder, as libjpeg and OpenCV
// do: training data keeps that leniency. `strict` makes it an error, for
// photos that a decision is taken on (deploy).
cv::Mat decode_bgr(std::string_view bytes, const std::string& where, bool strict = false);

// Encodes an 8-bit image with OpenCV for the extension `ext` (".png", ".jpg",
// ...; JPEG at `jpeg_quality`). Throws "<where>: cannot encode as <ext>".
std::string encode_image(const cv::Mat& image, const std::string& ext, const std::string& where, int jpeg_quality = 95);

struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0, height = 0, channels = 0;
};
// Format and size from the header alone when it can (JPEG, PNG), else by decoding.
ImageInfo probe_image(std::string_view bytes, const std::string& where);

// Decodes a photo from outside (a request, a file to align: JPEG, PNG, BMP or
// WebP) to 8-bit BGR, strictly (a truncated JPEG is an error). The size in the
// header is checked against `max_pixels` before decoding, so a small file
// declaring a huge image is refused without allocating it. Throws
// qface::Error naming `what` when the bytes are not such an image, do not
// decode, or are too large.
cv::Mat decode_image(std::string_view bytes, const std::string& what, int64_t max_pixels = 50'000'000);

}  // namespace qface::data
