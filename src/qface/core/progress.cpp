#include "qface/core/progress.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace qface {

std::string progress_text(const std::string& what, int64_t done, int64_t total, double seconds,
                          const std::string& unit) {
  const double share = total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0;
  std::string text = fmt::format("{}: {}/{} ({:.0f}%)", what, done, total, share);
  if (done <= 0 || seconds <= 0) return text;
  const double rate = static_cast<double>(done) / seconds;
  const auto left = static_cast<int64_t>(static_cast<double>(std::max<int64_t>(total - done, 0)) / rate + 0.5);
  return text +
         fmt::format(" {:.1f} {}/s, {:02d}:{:02d}:{:02d} left", rate, unit, left / 3600, (left / 60) % 60, left % 60);
}

Progress::Progress(std::string what, int64_t total, std::string unit, double log_every_seconds)
    : what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      every_(log_every_seconds),
      tty_(::isatty(2) != 0),
      start_(clock::now()),
      last_(start_) {}

Progress::~Progress() {
  if (drawn_) std::fputc('\n', stderr);
}

void Progress::update(int64_t done) {
  const auto now = clock::now();
  const double since_last = std::chrono::duration<double>(now - last_).count();
  // A bar is redrawn 5 times a second and completed once drawn; log lines
  // come at most every `every_` seconds, so short work prints nothing.
  if (tty_ ? since_last < 0.2 && !(done >= total_ && drawn_) : since_last < every_) return;
  last_ = now;
  const std::string text =
      progress_text(what_, done, total_, std::chrono::duration<double>(now - start_).count(), unit_);
  if (!tty_) {
    spdlog::info("{}", text);
    return;
  }
  const int width = 24;
  const int fill = total_ > 0 ? static_cast<int>(width * std::min(1.0, static_cast<double>(done) / total_)) : width;
  fmt::print(stderr, "\r[{}{}] {}\x1b[K", std::string(fill, '#'), std::string(width - fill, '.'), text);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace qface
