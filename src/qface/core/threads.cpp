#include "qface/core/threads.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

namespace qface {

int default_threads() {
  if (const char* v = std::getenv("OMP_NUM_THREADS"); v && std::atoi(v) > 0) return std::atoi(v);
  int local = 1;
  if (const char* v = std::getenv("LOCAL_WORLD_SIZE")) local = std::max(1, std::atoi(v));
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / local);
}

int use_threads(int n) {
  const int t = n > 0 ? n : default_threads();
  torch::set_num_threads(t);  // at::set_num_threads also calls omp_set_num_threads
  return t;
}

}  // namespace qface
