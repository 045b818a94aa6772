// The head options' one description (QFACE_HEAD_OPTIONS, head_config.h): which
// heads take each option follows from the heads' options structs, and must be
// what the papers' heads have (a table written here by hand); the generated
// defaults are the options structs' own.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <type_traits>

#include "qface/core/error.h"
#include "qface/heads/factory.h"

namespace qh = qface::heads;

namespace {

// A value of the option's type that every head taking it accepts (u_a must
// stay above the default l_a of 10).
template <class T>
T valid_value(const std::string& key) {
  if constexpr (std::is_same_v<T, double>) return key == "u_a" ? 200.0 : 0.25;
  else if constexpr (std::is_same_v<T, bool>) return false;
  else return std::string("first_batch");
}

}  // namespace

TEST(HeadConfig, EveryOptionIsTakenByExactlyThePapersHeads) {
  const std::set<std::string> fixed = {"m", "s", "eps"};
  const std::map<std::string, std::set<std::string>> takes = {
      {"adaface", {"m", "h", "s", "t_alpha", "batch_mean", "batch_std", "stats_init", "fixed_z", "eps"}},
      {"arcface", fixed},
      {"cosface", fixed},
      {"curricularface", {"m", "s", "eps", "t_alpha"}},
      {"magface", {"s", "eps", "l_a", "u_a", "l_m", "u_m", "lambda_g", "easy_margin"}},
      {"magface-cos", {"s", "eps", "l_a", "u_a", "l_m", "u_m", "lambda_g"}},  // additive: no easy margin
  };
  int options = 0;
  qh::for_each_head_option([&](const qh::HeadOptionInfo& o, auto member) {
    ++options;
    EXPECT_EQ(std::string(o.flag).rfind("--", 0), 0u) << o.key;
    for (const auto& [head, keys] : takes) {
      qh::HeadConfig c{.name = head, .embedding_size = 4, .num_classes = 3};
      using T = typename std::remove_reference_t<decltype(c.*member)>::value_type;
      c.*member = valid_value<T>(o.key);
      if (keys.count(o.key)) {
        EXPECT_NO_THROW(qh::make_head(c)) << head << " should take " << o.key;
      } else {
        try {
          qh::make_head(c);
          ADD_FAILURE() << head << " should refuse " << o.key;
        } catch (const qface::Error& e) {
          EXPECT_NE(std::string(e.what()).find(std::string("'") + o.key + "'"), std::string::npos) << e.what();
        }
      }
    }
  });
  EXPECT_EQ(options, 15);
}

TEST(HeadConfig, DefaultsInTheHelpAreTheOptionsStructs) {
  EXPECT_EQ(qh::head_option_defaults("m"), "adaface 0.4, arcface/curricularface 0.5, cosface 0.35");
  EXPECT_EQ(qh::head_option_defaults("lambda_g"), "magface 35, magface-cos 150");
  EXPECT_EQ(qh::head_option_defaults("h"), "adaface 0.333");
  EXPECT_EQ(qh::head_option_defaults("stats_init"), "adaface official");
  EXPECT_EQ(qh::head_option_defaults("no_such_option"), "");
}
