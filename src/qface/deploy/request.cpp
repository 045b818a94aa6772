#include "qface/deploy/request.h"

#include <dlib/base64.h>
#include <opencv2/imgcodecs.hpp>

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
    return data::decode_image(raw, "image '" + name + "'", max_pixels);
  } catch (const HttpError&) {
    throw;
  } catch (const Error& e) {
    throw HttpError(400, e.what());
  }
}

}  // namespace qface::deploy
