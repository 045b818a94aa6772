// `qface serve` request bodies -> the JSON / base64 / image decoding path of
// the handlers, without a server. Input: a mode byte (even: JSON body with
// the image base64 in field "image"; odd: raw image body), then the body.
#include "fuzz/fuzz_util.h"
#include "qface/deploy/request.h"

namespace qface::fuzz {
int one_serve_request(const uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view body = qface::fuzz::as_view(data + 1, size - 1);
  constexpr int64_t kMaxPixels = 4'000'000;  // qface serve's default is 40 M; smaller keeps runs fast
  try {
    if (data[0] % 2 == 0) {
      const nlohmann::json j = qface::deploy::parse_json_body(body);
      (void)qface::deploy::request_image(&j, {}, "image", kMaxPixels);
    } else {
      (void)qface::deploy::request_image(nullptr, body, "image", kMaxPixels);
    }
  } catch (const qface::deploy::HttpError& e) {
    if (e.status != 400) __builtin_trap();
  }
  // Anything else (another exception type) escapes and libFuzzer reports it.
  return 0;
}
}  // namespace qface::fuzz

QFACE_FUZZ_ENTRY(serve_request)
