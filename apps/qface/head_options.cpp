#include "apps/qface/head_options.h"

#include <fmt/format.h>

#include <type_traits>

namespace qface::cli {

void add_head_options(CLI::App& app, heads::HeadConfig& c) {
  app.add_option("--head", c.name, "margin head")
      ->check(CLI::IsMember(heads::head_names()))
      ->capture_default_str();
  heads::for_each_head_option([&app, &c](const heads::HeadOptionInfo& o, auto member) {
    auto& target = c.*member;
    const std::string defaults = heads::head_option_defaults(o.key);
    const std::string help = o.switch_value ? fmt::format("{} ({}: {})", o.help, o.key, defaults)
                                            : fmt::format("{} ({})", o.help, defaults);
    using T = typename std::remove_reference_t<decltype(target)>::value_type;
    if constexpr (std::is_same_v<T, bool>) {  // bool options are switches (SWITCH in head_config.h)
      app.add_flag_function(o.flag, [&target, v = o.switch_value.value()](int64_t) { target = v; }, help);
    } else {
      app.add_option_function<T>(o.flag, [&target](const T& v) { target = v; }, help);
    }
  });
}

}  // namespace qface::cli
