// glibc malloc tuning for tensor work. By default glibc serves every block
// over 32 MB with a fresh mmap and unmaps it on free, so each training step
// page-faults its activations in again (on a VM that is most of the step:
// MobileFaceNet batch 64 spent 40 % of its time in the kernel and ran 3.6x
// slower). Keeping large blocks in the heap and not trimming it removes that;
// the process keeps its peak memory instead of returning it.
#pragma once

namespace qface {

// M_MMAP_MAX = 0 and a 2 GB M_TRIM_THRESHOLD, unless the user set
// GLIBC_TUNABLES (their malloc settings win). Call once at start-up, before
// threads are created. Returns whether the settings were applied.
bool tune_allocator_for_tensors();

}  // namespace qface
