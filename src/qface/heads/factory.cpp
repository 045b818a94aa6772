#include "qface/heads/factory.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <type_traits>
#include <utility>

#include "qface/core/error.h"
#include "qface/heads/adaface.h"
#include "qface/heads/arcface.h"
#include "qface/heads/curricularface.h"
#include "qface/heads/magface.h"

namespace qface::heads {
namespace {

// Calls f with the default options struct of head `name` (its own type, so
// that f can tell ArcFace from CosFace).
template <class F>
auto with_default_options(const std::string& name, int64_t embedding_size, int64_t num_classes, F&& f) {
  if (name == "adaface") return f(AdaFaceOptions(embedding_size, num_classes));
  if (name == "arcface") return f(ArcFaceOptions(embedding_size, num_classes));
  if (name == "cosface") return f(CosFaceOptions(embedding_size, num_classes));
  if (name == "curricularface") return f(CurricularFaceOptions(embedding_size, num_classes));
  if (name == "magface") return f(MagFaceOptions(embedding_size, num_classes));
  if (name == "magface-cos") return f(MagFaceOptions::cosface(embedding_size, num_classes));
  fail("unknown head '{}' (choose one of: {})", name, fmt::join(head_names(), ", "));
}

// Sets every option given in `c` on the head's options struct; an option the
// struct has no TORCH_ARG for is one the head does not take.
template <class Options>
void apply_options(const HeadConfig& c, Options& o) {
#define QFACE_APPLY(field, ...)                                                      \
  if constexpr (requires { o.field(*c.field); }) {                                   \
    if (c.field) o.field(*c.field);                                                  \
  } else {                                                                           \
    require(!c.field.has_value(), "head '{}' has no option '{}'", c.name, #field);   \
  }
  QFACE_HEAD_OPTIONS(QFACE_APPLY, QFACE_APPLY)
#undef QFACE_APPLY
}

template <class T>
std::string show(const T& v) {
  if constexpr (std::is_same_v<T, std::optional<double>>) return v ? fmt::format("{}", *v) : "unset";
  else if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
  else return fmt::format("{}", v);
}

// The default of option `key` in the options struct `o`, if it has one.
template <class Options>
std::optional<std::string> default_of(const Options& o, const std::string& key) {
#define QFACE_DEFAULT(field, ...)                    \
  if constexpr (requires { o.field(); })             \
    if (key == #field) return show(o.field());
  QFACE_HEAD_OPTIONS(QFACE_DEFAULT, QFACE_DEFAULT)
#undef QFACE_DEFAULT
  return std::nullopt;
}

// The shared_ptr must be of the base type: ModuleHolder's forwarding
// constructor would otherwise try to build a HeadImpl from it.
template <class Impl, class Options>
Head wrap(const Options& options) {
  return Head(std::static_pointer_cast<HeadImpl>(std::make_shared<Impl>(options)));
}

}  // namespace

const std::vector<std::string>& head_names() {
  static const std::vector<std::string> names = {"adaface", "magface", "magface-cos", "arcface", "cosface",
                                                 "curricularface"};
  return names;
}

Head make_head(const HeadConfig& c) {
  return with_default_options(c.name, c.embedding_size, c.num_classes, [&c](auto o) -> Head {
    apply_options(c, o);
    using O = decltype(o);
    if constexpr (std::is_same_v<O, AdaFaceOptions>) return wrap<AdaFaceImpl>(o);
    if constexpr (std::is_same_v<O, ArcFaceOptions>) return wrap<ArcFaceImpl>(FixedMarginOptions(o));
    if constexpr (std::is_same_v<O, CosFaceOptions>) return wrap<CosFaceImpl>(FixedMarginOptions(o));
    if constexpr (std::is_same_v<O, CurricularFaceOptions>) return wrap<CurricularFaceImpl>(o);
    if constexpr (std::is_same_v<O, MagFaceOptions>) {
      require(c.name != "magface-cos" || !c.easy_margin.has_value(),
              "head 'magface-cos' has no option 'easy_margin' (its margin is additive)");
      return wrap<MagFaceImpl>(o);
    }
  });
}

std::string head_option_defaults(const std::string& key) {
  // Heads in the order of head_names(), those with the same default together.
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;  // default -> heads
  for (const std::string& name : head_names()) {
    const auto d = with_default_options(name, 2, 2, [&key](const auto& o) { return default_of(o, key); });
    if (!d) continue;
    auto it = std::find_if(groups.begin(), groups.end(), [&d](const auto& g) { return g.first == *d; });
    if (it == groups.end()) groups.push_back({*d, {name}});
    else it->second.push_back(name);
  }
  std::vector<std::string> parts;
  for (const auto& [value, heads] : groups) parts.push_back(fmt::format("{} {}", fmt::join(heads, "/"), value));
  return fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace qface::heads
