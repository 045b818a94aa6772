#include "qface/heads/factory.h"

#include <fmt/format.h>

#include <algorithm>

#include "qface/core/error.h"
#include "qface/heads/adaface.h"
#include "qface/heads/arcface.h"
#include "qface/heads/curricularface.h"
#include "qface/heads/magface.h"

namespace qface::heads {
namespace {

// Rejects options that the chosen head has no use for: every option of the
// config except those in `takes`.
void reject_unused(const HeadConfig& c, std::initializer_list<const char*> takes) {
  const std::pair<const char*, bool> all[] = {
      {"m", c.m.has_value()},           {"s", c.s.has_value()},
      {"eps", c.eps.has_value()},       {"t_alpha", c.t_alpha.has_value()},
      {"h", c.h.has_value()},           {"batch_mean", c.batch_mean.has_value()},
      {"batch_std", c.batch_std.has_value()}, {"stats_init", c.stats_init.has_value()},
      {"fixed_z", c.fixed_z.has_value()}, {"l_a", c.l_a.has_value()},
      {"u_a", c.u_a.has_value()},       {"l_m", c.l_m.has_value()},
      {"u_m", c.u_m.has_value()},       {"lambda_g", c.lambda_g.has_value()},
      {"easy_margin", c.easy_margin.has_value()}};
  for (const auto& [opt, is_set] : all) {
    const bool taken = std::any_of(takes.begin(), takes.end(), [&](const char* t) { return std::string(t) == opt; });
    require(taken || !is_set, "head '{}' has no option '{}'", c.name, opt);
  }
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

Head make_adaface(const HeadConfig& c) {
  reject_unused(c, {"m", "s", "eps", "t_alpha", "h", "batch_mean", "batch_std", "stats_init", "fixed_z"});
  AdaFaceOptions o(c.embedding_size, c.num_classes);
  set_if(c.m, o, &AdaFaceOptions::m);
  set_if(c.h, o, &AdaFaceOptions::h);
  set_if(c.s, o, &AdaFaceOptions::s);
  set_if(c.t_alpha, o, &AdaFaceOptions::t_alpha);
  set_if(c.eps, o, &AdaFaceOptions::eps);
  set_if(c.batch_mean, o, &AdaFaceOptions::batch_mean);
  set_if(c.batch_std, o, &AdaFaceOptions::batch_std);
  if (c.stats_init) o.stats_init(*c.stats_init);
  if (c.fixed_z) o.fixed_z(*c.fixed_z);
  return wrap<AdaFaceImpl>(o);
}

Head make_magface(const HeadConfig& c) {
  reject_unused(c, {"s", "eps", "l_a", "u_a", "l_m", "u_m", "lambda_g", "easy_margin"});
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

}  // namespace

const std::vector<std::string>& head_names() {
  static const std::vector<std::string> names = {"adaface", "magface", "magface-cos", "arcface", "cosface",
                                                 "curricularface"};
  return names;
}

Head make_head(const HeadConfig& c) {
  if (c.name == "adaface") return make_adaface(c);
  if (c.name == "arcface" || c.name == "cosface") {
    reject_unused(c, {"m", "s", "eps"});
    FixedMarginOptions o = c.name == "arcface" ? FixedMarginOptions(ArcFaceOptions(c.embedding_size, c.num_classes))
                                               : FixedMarginOptions(CosFaceOptions(c.embedding_size, c.num_classes));
    set_if(c.m, o, &FixedMarginOptions::m);
    set_if(c.s, o, &FixedMarginOptions::s);
    set_if(c.eps, o, &FixedMarginOptions::eps);
    if (c.name == "arcface") return wrap<ArcFaceImpl>(o);
    return wrap<CosFaceImpl>(o);
  }
  if (c.name == "curricularface") {
    reject_unused(c, {"m", "s", "eps", "t_alpha"});
    CurricularFaceOptions o(c.embedding_size, c.num_classes);
    set_if(c.m, o, &CurricularFaceOptions::m);
    set_if(c.s, o, &CurricularFaceOptions::s);
    set_if(c.eps, o, &CurricularFaceOptions::eps);
    set_if(c.t_alpha, o, &CurricularFaceOptions::t_alpha);
    return wrap<CurricularFaceImpl>(o);
  }
  if (c.name == "magface" || c.name == "magface-cos") return make_magface(c);
  fail("unknown head '{}' (choose one of: {})", c.name, fmt::join(head_names(), ", "));
}

}  // namespace qface::heads
