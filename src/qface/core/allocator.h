// The process's malloc. Tensor work allocates and frees blocks of up to
// ~100 MB many times a second, and on a VM every page touched for the first
// time costs a trap to the hypervisor: with glibc's defaults (blocks over
// 32 MB mmap-ed fresh and unmapped on free) an IR-50 `embed` batch of 32 took
// 6-7 s instead of 0.6 s on the AMD VM, and training was 3.6x slower.
//
// qface-full therefore links jemalloc (apps/qface/CMakeLists.txt) and sets it
// up in apps/qface/main.cpp: freed memory is kept for reuse (no decay), one
// size class serves each block size again (no heap growth from fragmentation,
// as glibc had for two batches), and its memory is backed by transparent
// huge pages (512x fewer first-touch faults). The price: a process keeps its
// peak memory until it exits, or until release_free_memory(), which `serve`
// calls when idle. Libraries that embed qface (the Python module) keep their
// host's malloc; these functions then report and trim glibc's.
#pragma once

#include <string>

namespace qface {

// "jemalloc 5.3.0 (thp always, dirty decay -1 ms, muzzy decay -1 ms, ...)"
// read back from jemalloc itself, or "glibc malloc" when jemalloc is not the
// process's malloc.
std::string allocator_description();

// Whether jemalloc serves this process's malloc.
bool jemalloc_active();

// Returns memory nothing uses to the operating system (jemalloc: purges every
// arena; glibc: malloc_trim). Safe at any time, from any thread; blocks still
// in use are untouched, freed ones page-fault in again when next used.
void release_free_memory();

}  // namespace qface
