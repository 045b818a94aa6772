// A plain worker pool for loops whose items are independent and uneven (face
// renders, image encodes): items are handed out one at a time, so a slow one
// does not hold up a fixed share of the rest.
#pragma once

#include <cstdint>
#include <functional>

namespace qface {

// Runs fn(i) for i in [0, n) on `threads` threads (results must be written by
// index). The first exception stops the remaining items and is rethrown here.
void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn);

}  // namespace qface
