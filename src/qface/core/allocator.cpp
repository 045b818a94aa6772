#include "qface/core/allocator.h"

#include <fmt/format.h>
#include <malloc.h>

#include <cstddef>
#include <cstdint>

// jemalloc's control interface, resolved at run time: defined only when the
// executable links jemalloc (qface-full), null in any other host process.
extern "C" int mallctl(const char* name, void* oldp, std::size_t* oldlenp, void* newp, std::size_t newlen)
    __attribute__((weak));

namespace qface {
namespace {

template <typename T>
bool read_ctl(const char* name, T& value) {
  std::size_t len = sizeof(T);
  return mallctl(name, &value, &len, nullptr, 0) == 0 && len == sizeof(T);
}

}  // namespace

bool jemalloc_active() {
  // Linked but not serving malloc would mean another allocator was
  // interposed first (an LD_PRELOAD, a sanitizer); "version" answers only
  // from a working jemalloc.
  const char* version = nullptr;
  return mallctl != nullptr && read_ctl("version", version) && version;
}

std::string allocator_description() {
  if (!jemalloc_active()) return "glibc malloc";
  const char *version = nullptr, *thp = nullptr;
  ssize_t dirty = 0, muzzy = 0;
  std::size_t oversize = 0;
  read_ctl("version", version);
  const bool ok = read_ctl("opt.thp", thp) && read_ctl("opt.dirty_decay_ms", dirty) &&
                  read_ctl("opt.muzzy_decay_ms", muzzy) && read_ctl("opt.oversize_threshold", oversize);
  if (!ok) return fmt::format("jemalloc {}", version);
  return fmt::format("jemalloc {} (thp {}, dirty decay {} ms, muzzy decay {} ms, oversize threshold {})", version, thp,
                     dirty, muzzy, oversize);
}

void release_free_memory() {
  if (!jemalloc_active()) {
    malloc_trim(0);
    return;
  }
  // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena's unused pages.
  mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
}

}  // namespace qface
