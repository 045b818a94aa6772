#pragma once
// What differs between the LibTorch versions qface builds against (Debian 12's
// 1.13, Debian 13's 2.6, the GPU machine's 2.x), in one place (issue #38).
// Everything else in the tree is written against the API both share.
#include <ATen/autocast_mode.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

#include <variant>

#if TORCH_VERSION_MAJOR < 2
#include <c10/util/variant.h>
#endif

#define QFACE_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace qface::compat {

// Module options' variants (a convolution's padding: ExpandingArray or
// kValid/kSame): c10::variant in 1.x, std::variant from 2.0 on.
#if TORCH_VERSION_MAJOR >= 2
using std::get;
using std::get_if;
#else
using c10::get;
using c10::get_if;
#endif

// The object that runs c10d collectives for one device type: 2.x splits the
// process group into a front end and per-device Backends (ProcessGroupGloo
// and ProcessGroupNCCL are Backends there); 1.x has only the ProcessGroup.
// Both offer the same allreduce/allgather/broadcast/reduce/barrier calls.
#if TORCH_VERSION_MAJOR >= 2
using CommGroup = c10d::Backend;
#else
using CommGroup = c10d::ProcessGroup;
#endif

// Autocast per device type: one call taking the device type from 2.4 on
// (the CPU- and GPU-named functions are deprecated there); 1.13 has only
// the named ones.
inline bool autocast_enabled(c10::DeviceType type) {
#if QFACE_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

inline void set_autocast_enabled(c10::DeviceType type, bool on) {
#if QFACE_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(type, on);
#else
  if (type == c10::DeviceType::CUDA) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
#endif
}

inline c10::ScalarType autocast_dtype(c10::DeviceType type) {
#if QFACE_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                       : at::autocast::get_autocast_cpu_dtype();
#endif
}

inline void set_autocast_dtype(c10::DeviceType type, c10::ScalarType dtype) {
#if QFACE_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type == c10::DeviceType::CUDA) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
#endif
}

}  // namespace qface::compat
