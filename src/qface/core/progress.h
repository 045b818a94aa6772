// Progress of long work on stderr: a bar redrawn in place when stderr is a
// terminal, otherwise an info log line at most every few seconds; both with
// the rate and the time left.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace qface {

// "embed: 128/256 (50%) 16.0 img/s, 00:00:08 left" for `done` of `total`
// after `seconds` (no rate or time left before anything is done).
std::string progress_text(const std::string& what, int64_t done, int64_t total, double seconds,
                          const std::string& unit);

class Progress {
 public:
  Progress(std::string what, int64_t total, std::string unit = "items", double log_every_seconds = 2.0);
  ~Progress();  // ends the bar's line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(int64_t done);

 private:
  using clock = std::chrono::steady_clock;
  std::string what_, unit_;
  int64_t total_;
  double every_;
  bool tty_;
  bool drawn_ = false;
  clock::time_point start_, last_;
};

}  // namespace qface
