#pragma once
// What differs between the LibTorch versions qface builds against (Debian 12's
// 1.13, Debian 13's 2.6, the GPU machine's 2.x), in one place (issue #38).
// Everything else in the tree is written against the API both share.
#include <torch/version.h>

#include <variant>

#if TORCH_VERSION_MAJOR < 2
#include <c10/util/variant.h>
#endif

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

}  // namespace qface::compat
