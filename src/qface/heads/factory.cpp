#include "qface/heads/factory.h"

#include <fmt/format.h>

#include "qface/core/error.h"
#include "qface/heads/adaface.h"
#include "qface/heads/arcface.h"
#include "qface/heads/magface.h"

namespace qface::heads {
namespace {

// Rejects options that the chosen head has no use for.
void reject_unused(const HeadConfig& c, std::initializer_list<std::pair<const char*, bool>> set) {
  for (const auto& [opt, is_set] : set)
    require(!is_set, "head '{}' has no option '{}'", c.name, opt);
}

// The shared_ptr must be of the base type: ModuleHolder's forwarding
// constructor would otherwise try to build a HeadImpl from it.
template <class Impl, class Options>
Head wrap(const Options& options) {
  return Head(std::static_pointer_cast<HeadImpl>(std::make_shared<Impl>(options)));
}

template <class Opt>
void set_if(std::optional<double> v, Opt& options, Opt& (Opt::*setter)(const double&)) {
  if (v) (options.*setter)(*v);
}

}  // namespace

const std::vector<std::string>& head_names() {
  static const std::vector<std::string> names = {"adaface", "magface", "magface-cos", "arcface", "cosface"};
  return names;
}

Head make_head(const HeadConfig& c) {
  if (c.name == "adaface") {
    reject_unused(c, {{"l_a", c.l_a.has_value()}, {"u_a", c.u_a.has_value()}, {"l_m", c.l_m.has_value()},
                      {"u_m", c.u_m.has_value()}, {"lambda_g", c.lambda_g.has_value()},
                      {"easy_margin", c.easy_margin.has_value()}});
    AdaFaceOptions o(c.embedding_size, c.num_classes);
    set_if(c.m, o, &AdaFaceOptions::m);
    set_if(c.h, o, &AdaFaceOptions::h);
    set_if(c.s, o, &AdaFaceOptions::s);
    set_if(c.t_alpha, o, &AdaFaceOptions::t_alpha);
    set_if(c.eps, o, &AdaFaceOptions::eps);
    set_if(c.batch_mean, o, &AdaFaceOptions::batch_mean);
    set_if(c.batch_std, o, &AdaFaceOptions::batch_std);
    return wrap<AdaFaceImpl>(o);
  }
  if (c.name == "arcface" || c.name == "cosface") {
    reject_unused(c, {{"h", c.h.has_value()}, {"t_alpha", c.t_alpha.has_value()},
                      {"batch_mean", c.batch_mean.has_value()}, {"batch_std", c.batch_std.has_value()},
                      {"l_a", c.l_a.has_value()}, {"u_a", c.u_a.has_value()}, {"l_m", c.l_m.has_value()},
                      {"u_m", c.u_m.has_value()}, {"lambda_g", c.lambda_g.has_value()},
                      {"easy_margin", c.easy_margin.has_value()}});
    FixedMarginOptions o = c.name == "arcface" ? FixedMarginOptions(ArcFaceOptions(c.embedding_size, c.num_classes))
                                               : FixedMarginOptions(CosFaceOptions(c.embedding_size, c.num_classes));
    set_if(c.m, o, &FixedMarginOptions::m);
    set_if(c.s, o, &FixedMarginOptions::s);
    set_if(c.eps, o, &FixedMarginOptions::eps);
    if (c.name == "arcface") return wrap<ArcFaceImpl>(o);
    return wrap<CosFaceImpl>(o);
  }
  if (c.name == "magface" || c.name == "magface-cos") {
    reject_unused(c, {{"m", c.m.has_value()}, {"h", c.h.has_value()}, {"t_alpha", c.t_alpha.has_value()},
                      {"batch_mean", c.batch_mean.has_value()}, {"batch_std", c.batch_std.has_value()}});
    MagFaceOptions o = c.name == "magface" ? MagFaceOptions(c.embedding_size, c.num_classes)
                                           : MagFaceOptions::cosface(c.embedding_size, c.num_classes);
    set_if(c.s, o, &MagFaceOptions::s);
    set_if(c.l_a, o, &MagFaceOptions::l_a);
    set_if(c.u_a, o, &MagFaceOptions::u_a);
    set_if(c.l_m, o, &MagFaceOptions::l_m);
    set_if(c.u_m, o, &MagFaceOptions::u_m);
    set_if(c.lambda_g, o, &MagFaceOptions::lambda_g);
    set_if(c.eps, o, &MagFaceOptions::eps);
    if (c.easy_margin) o.easy_margin(*c.easy_margin);
    if (c.name == "magface-cos")
      require(!c.easy_margin.has_value(), "head 'magface-cos' has no option 'easy_margin' (its margin is additive)");
    return wrap<MagFaceImpl>(o);
  }
  fail("unknown head '{}' (choose one of: {})", c.name, fmt::join(head_names(), ", "));
}

}  // namespace qface::heads
