// CPU thread defaults. LibTorch's own default is the physical-core count and,
// with OpenMP, it can drop to 1 once another thread touched the pool; on a
// machine with hyper-threads that leaves half the machine idle (measured: IR
// training 19 -> 34 img/s on 1 core x 2 threads). faiss shares LibTorch's
// OpenMP runtime, so the same setting drives gallery search.
#pragma once

namespace qface {

// OMP_NUM_THREADS when set; else every logical core shared among the workers
// on this machine (LOCAL_WORLD_SIZE, as set by `qface launch` and torchrun).
int default_threads();

// torch::set_num_threads(n > 0 ? n : default_threads()); returns the count
// used. Also sets OpenMP's count for the calling thread (faiss reads it).
int use_threads(int n);

}  // namespace qface
