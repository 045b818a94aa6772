// Plain-text parsing shared by every reader of the field's list and CSV files
// (IJB meta, IJB-S protocols, landmark lists, pair lists): lines, fields and
// numbers, with errors that name the file and the line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace qface {

// Reads a whole text file and splits it into lines (no trailing '\r').
std::vector<std::string> read_lines(const std::filesystem::path& path);

// Calls fn(line_number, line) for every line of `text` (1-based numbers, no
// trailing '\r'), without copying the lines: for large files held in memory.
template <class Fn>
void for_each_line(const std::string& text, Fn&& fn) {
  std::size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(++line_no, line);
    pos = end + 1;
  }
}

// True when `s` holds only spaces and tabs.
inline bool is_blank(std::string_view s) { return s.find_first_not_of(" \t") == std::string_view::npos; }

// Splits on blanks (spaces, tabs) or on `sep` when given (fields trimmed).
std::vector<std::string_view> split_fields(std::string_view line, char sep = 0);

// Parses a whole field as a number; errors name file:line and the field.
int64_t parse_int(std::string_view s, const std::filesystem::path& file, int64_t line, const char* what);
double parse_double(std::string_view s, const std::filesystem::path& file, int64_t line, const char* what);

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code
// points past U+10FFFF). Written here: no Debian library in our set exposes
// a plain validator (toml++ and nlohmann keep theirs internal).
bool is_utf8(std::string_view s);

}  // namespace qface
