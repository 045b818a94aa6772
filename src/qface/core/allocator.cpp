#include "qface/core/allocator.h"

#include <malloc.h>

#include <climits>
#include <cstdlib>

namespace qface {

bool tune_allocator_for_tensors() {
  if (const char* t = std::getenv("GLIBC_TUNABLES"); t && *t) return false;
  // Huge blocks requested from a thread's own arena still fall back to mmap
  // (glibc does so when its 64 MB heaps cannot hold them); the main thread's,
  // where the model runs, comes from the brk heap.
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
}

}  // namespace qface
