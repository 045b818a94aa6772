// Request bodies of `qface serve` (service.h) turned into JSON and images,
// apart from the server so that tests and the fuzzer reach them directly.
#pragma once

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <string_view>

#include "qface/core/error.h"

namespace qface::deploy {

// An error answered with an HTTP status (400 unless said otherwise);
// `details` are extra fields of the JSON error body.
struct HttpError : Error {
  int status;
  nlohmann::json details;
  HttpError(int s, const std::string& m, nlohmann::json d = nlohmann::json::object())
      : Error(m), status(s), details(std::move(d)) {}
};

// Base64 of JSON field `field` (dlib's decoder; characters outside the
// alphabet, '=' and CR/LF are refused first): HttpError 400 naming the field
// and the offset of a bad character.
std::string decode_base64(std::string_view text, const std::string& field);

// The body as a JSON object; HttpError 400 naming the byte of a syntax error.
nlohmann::json parse_json_body(std::string_view body);

// The image of a request: the base64 JSON field `name` of `body`, or the raw
// body when `body` is null (Content-Type image/* or application/octet-stream).
// HttpError 400 for a missing or malformed field and for bytes that are not
// a decodable image of at most max_pixels pixels.
cv::Mat request_image(const nlohmann::json* body, std::string_view raw, const std::string& name, int64_t max_pixels);

}  // namespace qface::deploy
