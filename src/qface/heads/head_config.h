// A margin head by name and its options, each option described once, in
// QFACE_HEAD_OPTIONS. Everything that reads or writes head options iterates
// that list: the TOML reader and writer (train/config.cpp), the CLI flags
// (apps/qface/head_options.cpp), the Python keyword arguments
// (python/src_torch/heads.cpp) and make_head (factory.cpp). Which heads take
// an option, and its default for each, come from the heads' own options
// structs (a TORCH_ARG of the same name): the papers' defaults live there only.
//
// Adding a head option: a TORCH_ARG in the head's options struct and one line
// below.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

// OPTION(name, type, flag, help): the TOML key and Python keyword `name`, the
//   CLI option `flag` taking a value.
// SWITCH(name, flag, value, help): a bool option that the CLI flag `flag`
//   (no value) sets to `value`.
#define QFACE_HEAD_OPTIONS(OPTION, SWITCH)                                                                     \
  OPTION(m, double, "--m", "margin")                                                                           \
  OPTION(h, double, "--h", "AdaFace concentration h")                                                          \
  OPTION(s, double, "--s", "logit scale s")                                                                    \
  OPTION(t_alpha, double, "--t-alpha", "EMA momentum: AdaFace's norm statistics, CurricularFace's t")         \
  OPTION(batch_mean, double, "--batch-mean", "AdaFace initial EMA mean norm")                                  \
  OPTION(batch_std, double, "--batch-std", "AdaFace initial EMA norm std")                                     \
  OPTION(stats_init, std::string, "--stats-init",                                                              \
         "AdaFace: start of the norm statistics, official (--batch-mean / --batch-std) or first_batch")        \
  OPTION(fixed_z, double, "--fixed-z",                                                                         \
         "AdaFace: hold z at this value in [-1, 1] (-1 ArcFace m, 0 CosFace m, +1 cos(theta - m) - 2m)")       \
  OPTION(eps, double, "--eps", "cosine clamp eps")                                                             \
  OPTION(l_a, double, "--l-a", "MagFace lower magnitude bound l_a")                                            \
  OPTION(u_a, double, "--u-a", "MagFace upper magnitude bound u_a")                                            \
  OPTION(l_m, double, "--l-m", "MagFace margin at l_a")                                                        \
  OPTION(u_m, double, "--u-m", "MagFace margin at u_a")                                                        \
  OPTION(lambda_g, double, "--lambda-g", "MagFace regularizer weight")                                         \
  SWITCH(easy_margin, "--hard-margin", false, "MagFace: margin also where cos <= 0 (default: easy margin)")

namespace qface::heads {

struct HeadConfig {
  std::string name = "adaface";  // one of head_names() (factory.h)
  int64_t embedding_size = 512;
  int64_t num_classes = 0;
  // Unset options take the chosen head's defaults.
#define QFACE_HEAD_FIELD(field, type, ...) std::optional<type> field;
#define QFACE_HEAD_SWITCH_FIELD(field, ...) std::optional<bool> field;
  QFACE_HEAD_OPTIONS(QFACE_HEAD_FIELD, QFACE_HEAD_SWITCH_FIELD)
#undef QFACE_HEAD_FIELD
#undef QFACE_HEAD_SWITCH_FIELD
};

struct HeadOptionInfo {
  const char* key;                  // TOML key, Python keyword
  const char* flag;                 // CLI flag
  const char* help;                 // without the defaults (head_option_defaults adds them)
  std::optional<bool> switch_value;  // a switch: the value its flag sets
};

// Calls f(info, member) for every option, in the list's order; `member` is a
// pointer to HeadConfig's std::optional<T> of the option's type T.
template <class F>
void for_each_head_option(F&& f) {
#define QFACE_HEAD_VISIT(field, type, flag, help) f(HeadOptionInfo{#field, flag, help, std::nullopt}, &HeadConfig::field);
#define QFACE_HEAD_VISIT_SWITCH(field, flag, value, help) f(HeadOptionInfo{#field, flag, help, value}, &HeadConfig::field);
  QFACE_HEAD_OPTIONS(QFACE_HEAD_VISIT, QFACE_HEAD_VISIT_SWITCH)
#undef QFACE_HEAD_VISIT
#undef QFACE_HEAD_VISIT_SWITCH
}

// "adaface 0.4, arcface 0.5, ..." for the option `key`: each head that takes
// it with its default (heads with the same default grouped), from the heads'
// options structs. Empty for an unknown key.
std::string head_option_defaults(const std::string& key);

}  // namespace qface::heads
