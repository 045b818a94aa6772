// Large scratch buffers backed by transparent huge pages. On this machine (a
// VM) a first touch of a 4 KB page costs ~19 us, so a fresh 63 MB score array
// spends 0.3 s in page faults; with 2 MB pages (madvise(MADV_HUGEPAGE), THP is
// in "madvise" mode) the same costs ~6 ms. Small requests use operator new.
#pragma once

#include <torch/types.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace qface::eval {

void* huge_alloc(std::size_t bytes);   // 2 MB aligned, THP advised; throws std::bad_alloc
void huge_free(void* p) noexcept;
inline constexpr std::size_t kHugeThreshold = std::size_t{4} << 20;

template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHugeThreshold) return static_cast<T*>(::operator new(bytes));
    return static_cast<T*>(huge_alloc(bytes));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugeThreshold) ::operator delete(p);
    else huge_free(p);
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
};

template <class T>
using Buffer = std::vector<T, HugePageAllocator<T>>;

// A zero-filled float32 rows x cols tensor on huge pages.
torch::Tensor huge_zeros(int64_t rows, int64_t cols);

}  // namespace qface::eval
