#include "qface/core/text.h"

#include <charconv>

#include "qface/core/error.h"
#include "qface/core/fs.h"

namespace qface {
namespace fs = std::filesystem;

std::vector<std::string> read_lines(const fs::path& path) {
  const std::string text = read_file(path);
  std::vector<std::string> lines;
  for_each_line(text, [&](int64_t, std::string_view line) { lines.emplace_back(line); });
  return lines;
}

std::vector<std::string_view> split_fields(std::string_view line, char sep) {
  std::vector<std::string_view> out;
  if (sep) {
    size_t pos = 0;
    while (true) {
      size_t end = line.find(sep, pos);
      std::string_view f = line.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
      while (!f.empty() && (f.front() == ' ' || f.front() == '\t')) f.remove_prefix(1);
      while (!f.empty() && (f.back() == ' ' || f.back() == '\t' || f.back() == '\r')) f.remove_suffix(1);
      out.push_back(f);
      if (end == std::string_view::npos) break;
      pos = end + 1;
    }
    return out;
  }
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

int64_t parse_int(std::string_view s, const fs::path& file, int64_t line, const char* what) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  require(ec == std::errc() && p == s.data() + s.size(), "{}:{}: {} '{}' is not an integer", file.string(), line,
          what, std::string(s));
  return v;
}

double parse_double(std::string_view s, const fs::path& file, int64_t line, const char* what) {
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  require(ec == std::errc() && p == s.data() + s.size(), "{}:{}: {} '{}' is not a number", file.string(), line,
          what, std::string(s));
  return v;
}

bool is_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = p[i];
    std::size_t len = 0;
    uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace qface
