#include "qface/deploy/request.h"

#include <dlib/base64.h>
#include <opencv2/imgcodecs.hpp>

#include <climits>
#include <optional>
#include <sstream>
#include <utility>

#include "qface/data/image.h"

namespace qface::deploy {
using nlohmann::json;

std::string decode_base64(std::string_view text, const std::string& field) {
  // dlib's decoder skips characters outside the alphabet; reject them instead.
  const auto bad = text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n");
  if (bad != std::string_view::npos)
    throw HttpError(400, fmt::format("field '{}': invalid base64 character at offset {}", field, bad));
  std::istringstream in{std::string(text)};
  std::ostringstream out;
  try {
    dlib::base64().decode(in, out);
  } catch (const std::exception& e) {
    throw HttpError(400, fmt::format("field '{}': invalid base64 ({})", field, e.what()));
  }
  return std::move(out).str();
}

json parse_json_body(std::string_view body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw HttpError(400, fmt::format("bad JSON at byte {}: {}", e.byte, e.what()));
  } catch (const json::exception& e) {
    // e.g. a number too large for a double (out_of_range 406): the client's fault, not a 500 (found by fuzzing).
    throw HttpError(400, fmt::format("bad JSON: {}", e.what()));
  }
  if (!j.is_object()) throw HttpError(400, "request body must be a JSON object");
  return j;
}

namespace {

uint32_t le(std::string_view b, std::size_t o, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[o + static_cast<std::size_t>(i)]);
  return v;
}

// Width and height from the header, without decoding; nullopt when the header
// is not one we can read.
std::optional<std::pair<int64_t, int64_t>> header_size(std::string_view b, data::ImageFormat format,
                                                       const std::string& what) {
  switch (format) {
    case data::ImageFormat::kJpeg:
    case data::ImageFormat::kPng: {
      if (format == data::ImageFormat::kPng && (b.size() < 26 || b.substr(12, 4) != "IHDR")) return std::nullopt;
      const data::ImageInfo info = data::probe_image(b, what);  // header only for these two
      return std::pair<int64_t, int64_t>{info.width, info.height};
    }
    case data::ImageFormat::kBmp: {
      if (b.size() < 26) return std::nullopt;
      if (le(b, 14, 4) == 12) return std::pair<int64_t, int64_t>{le(b, 18, 2), le(b, 20, 2)};  // OS/2 core header
      const int64_t w = static_cast<int32_t>(le(b, 18, 4)), h = static_cast<int32_t>(le(b, 22, 4));
      return std::pair<int64_t, int64_t>{w < 0 ? -w : w, h < 0 ? -h : h};  // negative height: top-down rows
    }
    case data::ImageFormat::kWebp: {
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

cv::Mat decode_image(std::string_view bytes, const std::string& what, int64_t max_pixels) {
  require(!bytes.empty(), "{}: empty image", what);
  require(bytes.size() <= static_cast<std::size_t>(INT_MAX), "{}: {} bytes is too large for an image", what,
          bytes.size());
  const data::ImageFormat format = data::sniff_format(bytes);
  require(format != data::ImageFormat::kUnknown, "{}: not a decodable image ({} bytes; JPEG, PNG, BMP or WebP expected)",
          what, bytes.size());
  const auto size = header_size(bytes, format, what);
  require(size.has_value() && size->first > 0 && size->second > 0, "{}: cannot read the {} header ({} bytes)", what,
          data::format_name(format), bytes.size());
  require(size->first <= max_pixels && size->second <= max_pixels && size->first * size->second <= max_pixels,
          "{}: {}x{} image exceeds the {} pixel limit", what, size->first, size->second, max_pixels);
  // Strict: a truncated or corrupt JPEG is refused, not embedded with a grey remainder.
  const cv::Mat img = data::decode_bgr(bytes, what, /*strict=*/true);
  require(int64_t{img.rows} * img.cols <= max_pixels, "{}: {}x{} image exceeds the {} pixel limit", what, img.cols,
          img.rows, max_pixels);
  return img;
}

cv::Mat request_image(const json* body, std::string_view raw, const std::string& name, int64_t max_pixels) {
  std::string bytes;
  if (body) {
    if (!body->contains(name)) throw HttpError(400, fmt::format("missing field '{}' (base64-encoded image)", name));
    const json& f = (*body)[name];
    if (!f.is_string()) throw HttpError(400, fmt::format("field '{}' must be a base64 string", name));
    bytes = decode_base64(f.get_ref<const std::string&>(), name);
    raw = bytes;
  }
  try {
    return decode_image(raw, "image '" + name + "'", max_pixels);
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
}

}  // namespace qface::deploy
