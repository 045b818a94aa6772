#include "qface/eval/buffer.h"

#include <sys/mman.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>

namespace qface::eval {

void* huge_alloc(std::size_t bytes) {
  constexpr std::size_t kPage = std::size_t{2} << 20;
  const std::size_t size = (bytes + kPage - 1) / kPage * kPage;
  void* p = std::aligned_alloc(kPage, size);
  if (!p) throw std::bad_alloc();
  ::madvise(p, size, MADV_HUGEPAGE);  // advisory: ignore failure
  return p;
}

void huge_free(void* p) noexcept { std::free(p); }

torch::Tensor huge_zeros(int64_t rows, int64_t cols) {
  const std::size_t bytes = static_cast<std::size_t>(rows * cols) * sizeof(float);
  if (bytes < kHugeThreshold) return torch::zeros({rows, cols});
  void* p = huge_alloc(bytes);
  std::memset(p, 0, bytes);
  return torch::from_blob(p, {rows, cols}, [](void* q) { huge_free(q); }, torch::kFloat32);
}

}  // namespace qface::eval
