#include "apps/qface/head_options.h"

#include <fmt/format.h>

namespace qface::cli {
namespace {
void optional_double(CLI::App& app, const std::string& flag, std::optional<double>& target, const std::string& help) {
  app.add_option_function<double>(flag, [&target](const double& v) { target = v; }, help);
}
}  // namespace

void add_head_options(CLI::App& app, heads::HeadConfig& c) {
  app.add_option("--head", c.name, "margin head")
      ->check(CLI::IsMember(heads::head_names()))
      ->capture_default_str();
  optional_double(app, "--m", c.m, "margin (AdaFace 0.4, ArcFace 0.5, CosFace 0.35, CurricularFace 0.5)");
  optional_double(app, "--h", c.h, "AdaFace concentration h (0.333)");
  optional_double(app, "--s", c.s, "logit scale s (64)");
  optional_double(app, "--t-alpha", c.t_alpha,
                  "EMA momentum: AdaFace's norm statistics, CurricularFace's t (0.01)");
  optional_double(app, "--batch-mean", c.batch_mean, "AdaFace initial EMA mean norm (20)");
  optional_double(app, "--batch-std", c.batch_std, "AdaFace initial EMA norm std (100)");
  app.add_option_function<std::string>(
         "--stats-init", [&c](const std::string& v) { c.stats_init = v; },
         "AdaFace: start of the norm statistics, official (--batch-mean / --batch-std) or first_batch (official)")
      ->check(CLI::IsMember({"official", "first_batch"}));
  optional_double(app, "--fixed-z", c.fixed_z,
                  "AdaFace: hold z at this value in [-1, 1] (-1 ArcFace m, 0 CosFace m, +1 cos(theta - m) - 2m)");
  optional_double(app, "--eps", c.eps,
                  "cosine clamp eps (AdaFace 1e-3, ArcFace/CosFace 1e-4, MagFace/CurricularFace 1e-7)");
  optional_double(app, "--l-a", c.l_a, "MagFace lower magnitude bound l_a (10)");
  optional_double(app, "--u-a", c.u_a, "MagFace upper magnitude bound u_a (110)");
  optional_double(app, "--l-m", c.l_m, "MagFace margin at l_a (0.45; Mag-CosFace 0.35)");
  optional_double(app, "--u-m", c.u_m, "MagFace margin at u_a (0.8)");
  optional_double(app, "--lambda-g", c.lambda_g, "MagFace regularizer weight (35; Mag-CosFace 150)");
  app.add_flag_function("--hard-margin", [&c](int64_t) { c.easy_margin = false; },
                        "MagFace: margin also where cos <= 0 (default: easy margin)");
}

}  // namespace qface::cli
