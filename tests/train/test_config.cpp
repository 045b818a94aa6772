// Training configuration, LR schedules and optimizer parameter groups.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "qface/core/error.h"
#include "qface/train/config.h"
#include "qface/train/optim.h"
#include "qface/train/schedule.h"
#include "tests/support/testing.h"

#include <filesystem>
#include <type_traits>

using namespace qface::train;

namespace {
std::string error_of(const std::string& toml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(toml, "cfg.toml", overrides);
  } catch (const qface::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(TrainConfig, ParsesSectionsAndOverrides) {
  const std::string text = R"(
    epochs = 3
    batch_size = 64
    seed = 7
    [model]
    backbone = "ir_18"
    [head]
    name = "magface"
    lambda_g = 20.0
    [data]
    train = "data/train.rec"
    flip_p = 0.5
    [schedule]
    type = "multistep"
    milestones = [1, 2]
    [validation]
    sets = ["a.bin", "b.bin"]
  )";
  TrainConfig c = parse_config(text, "cfg.toml", {"head.lambda_g=35", "optimizer.lr=0.05", "out_dir=runs/x",
                                                  "schedule.milestones=[1.5]", "data.skip_bad=true"});
  EXPECT_EQ(c.epochs, 3);
  EXPECT_EQ(c.batch_size, 64);
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.model.backbone, "ir_18");
  EXPECT_EQ(c.head.head.name, "magface");
  EXPECT_DOUBLE_EQ(*c.head.head.lambda_g, 35.0);
  EXPECT_FALSE(c.head.head.m.has_value());
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.05);
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.9);
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 5e-4);
  EXPECT_EQ(c.out_dir, "runs/x");
  EXPECT_EQ(c.schedule.milestones, std::vector<double>{1.5});
  EXPECT_EQ(c.validation.sets, (std::vector<std::string>{"a.bin", "b.bin"}));
  EXPECT_TRUE(c.data.skip_bad);
  // The effective config round-trips through TOML.
  TrainConfig back = parse_config(to_toml(c), "effective.toml");
  EXPECT_EQ(back.model.backbone, c.model.backbone);
  EXPECT_DOUBLE_EQ(*back.head.head.lambda_g, 35.0);
  EXPECT_EQ(back.schedule.milestones, c.schedule.milestones);
  EXPECT_EQ(back.out_dir, c.out_dir);
  EXPECT_TRUE(back.data.skip_bad);
}

TEST(TrainConfig, UnknownKeysAndWrongTypesNameTheKey) {
  EXPECT_NE(error_of("epochz = 3").find("unknown key 'epochz'"), std::string::npos);
  EXPECT_NE(error_of("[head]\nmargin = 0.4").find("unknown key 'head.margin'"), std::string::npos);
  EXPECT_NE(error_of("epochs = \"ten\"").find("key 'epochs' must be an integer"), std::string::npos);
  EXPECT_NE(error_of("[optimizer]\nlr = true").find("key 'optimizer.lr' must be a number"), std::string::npos);
  EXPECT_NE(error_of("[schedule]\nmilestones = [1, \"x\"]").find("schedule.milestones"), std::string::npos);
  EXPECT_NE(error_of("head = 3").find("'head' must be a table"), std::string::npos);
  EXPECT_NE(error_of("[head]\nname = \"sphereface\"").find("head.name"), std::string::npos);
  EXPECT_NE(error_of("epochs = [").find("cfg.toml:1"), std::string::npos);
  EXPECT_NE(error_of("", {"optimizer.nesterov=true"}).find("optimizer.nesterov"), std::string::npos);
  EXPECT_NE(error_of("", {"noequals"}).find("key=value"), std::string::npos);
  EXPECT_NE(error_of("[head]\nsample_rate = 0.5").find("sharded"), std::string::npos);
  // Integers that do not fit the field are errors, not wrapped (fuzz/fuzz_config.cpp).
  EXPECT_NE(error_of("[data]\nloader_threads = 4294967298").find("key 'data.loader_threads' = 4294967298 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of("seed = -1").find("key 'seed' = -1 is out of range"), std::string::npos);
  EXPECT_NE(error_of("", {"threads=-9223372036854775808"}).find("key 'threads'"), std::string::npos);
  // A --set string that is not UTF-8 could not be written back as TOML (found by fuzz_config).
  EXPECT_NE(error_of("", {"out_dir=runs/\xa6\xfc"}).find("not valid UTF-8"), std::string::npos);
  EXPECT_EQ(error_of("", {"out_dir=runs/caf\xc3\xa9"}), "");
}

TEST(TrainConfig, AdaFaceStatsInitAndFixedZ) {
  TrainConfig c = parse_config("[head]\nname = \"adaface\"\nstats_init = \"first_batch\"", "cfg.toml",
                               {"head.fixed_z=-1"});
  EXPECT_EQ(c.head.head.stats_init.value(), "first_batch");
  EXPECT_DOUBLE_EQ(c.head.head.fixed_z.value(), -1.0);
  TrainConfig back = parse_config(to_toml(c), "effective.toml");
  EXPECT_EQ(back.head.head.stats_init.value(), "first_batch");
  EXPECT_DOUBLE_EQ(back.head.head.fixed_z.value(), -1.0);
  // Unset stays unset (the head's defaults: official start, z from the norms).
  TrainConfig plain = parse_config(to_toml(parse_config("", "cfg.toml")), "effective.toml");
  EXPECT_FALSE(plain.head.head.stats_init.has_value());
  EXPECT_FALSE(plain.head.head.fixed_z.has_value());

  EXPECT_NE(error_of("[head]\nstats_init = \"zeros\"").find("head.stats_init must be"), std::string::npos);
  EXPECT_NE(error_of("[head]\nstats_init = 1").find("key 'head.stats_init' must be a string"), std::string::npos);
  EXPECT_NE(error_of("", {"head.fixed_z=1.5"}).find("head.fixed_z must lie in [-1, 1]"), std::string::npos);
  EXPECT_NE(error_of("", {"head.fixed_z=\"zero\""}).find("key 'head.fixed_z' must be a number"), std::string::npos);
}

// A recipe's head.stats_init is AdaFace's: another head chosen with --set
// head.name (as the main job does) ignores it, and the head builds.
TEST(TrainConfig, StatsInitIsDroppedForOtherHeads) {
  const std::string text = "[head]\nname = \"adaface\"\nstats_init = \"first_batch\"";
  for (const std::string& name : qface::heads::head_names()) {
    SCOPED_TRACE(name);
    TrainConfig c = parse_config(text, "cfg.toml", {"head.name=" + name});
    EXPECT_EQ(c.head.head.stats_init.has_value(), name == "adaface");
    EXPECT_EQ(to_toml(c).find("stats_init") != std::string::npos, name == "adaface");
    qface::heads::HeadConfig h = c.head.head;
    h.embedding_size = 4;
    h.num_classes = 3;
    EXPECT_NO_THROW(qface::heads::make_head(h));
  }
  // fixed_z is not silently dropped: it changes what is trained.
  TrainConfig c = parse_config("[head]\nname = \"arcface\"\nfixed_z = 0.0", "cfg.toml");
  qface::heads::HeadConfig h = c.head.head;
  h.embedding_size = 4;
  h.num_classes = 3;
  EXPECT_THROW(qface::heads::make_head(h), qface::Error);
  // CurricularFace's options.
  TrainConfig cf = parse_config("[head]\nname = \"curricularface\"\nm = 0.5\nt_alpha = 0.01", "cfg.toml");
  EXPECT_EQ(cf.head.head.name, "curricularface");
  EXPECT_DOUBLE_EQ(parse_config(to_toml(cf), "effective.toml").head.head.t_alpha.value(), 0.01);
}

TEST(LrSchedule, WarmupMultistepCosinePoly) {
  ScheduleConfig s;
  s.type = "multistep";
  s.warmup_epochs = 1;
  s.milestones = {2, 3};
  s.gamma = 0.1;
  LrSchedule ms(s, 0.1, 10, 40);
  EXPECT_DOUBLE_EQ(ms.at(0), 0.01);   // warm-up: (step + 1) / 10
  EXPECT_DOUBLE_EQ(ms.at(9), 0.1);
  EXPECT_DOUBLE_EQ(ms.at(19), 0.1);
  EXPECT_NEAR(ms.at(20), 0.01, 1e-15);
  EXPECT_NEAR(ms.at(30), 0.001, 1e-15);

  s.type = "cosine";
  s.warmup_epochs = 0;
  LrSchedule cs(s, 0.1, 10, 40);
  EXPECT_DOUBLE_EQ(cs.at(0), 0.1);
  EXPECT_NEAR(cs.at(20), 0.05, 1e-12);
  EXPECT_NEAR(cs.at(40), 0.0, 1e-12);

  s.type = "poly";
  LrSchedule ps(s, 0.2, 10, 40);
  EXPECT_NEAR(ps.at(10), 0.15, 1e-12);
  EXPECT_NEAR(ps.at(30), 0.05, 1e-12);
}

TEST(Optimizer, WeightDecayOnEverythingButBatchNormAndOnTheKernel) {
  torch::nn::Sequential net(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).bias(true)),
                            torch::nn::BatchNorm2d(4), torch::nn::PReLU(), torch::nn::Flatten(),
                            torch::nn::Linear(4 * 6 * 6, 8));
  ParamSplit split = split_for_weight_decay(*net);
  // AdaFace's split_parameters: everything but BatchNorm is decayed.
  ASSERT_EQ(split.decay.size(), 5u);  // conv weight + bias, PReLU weight, linear weight + bias
  EXPECT_EQ(split.decay[0].dim(), 4);
  EXPECT_EQ(split.decay[1].dim(), 1);
  EXPECT_EQ(split.decay[2].numel(), 1);
  EXPECT_EQ(split.decay[3].dim(), 2);
  ASSERT_EQ(split.no_decay.size(), 2u);  // BN weight + bias
  EXPECT_EQ(split.no_decay[0].numel(), 4);

  torch::Tensor kernel = torch::randn({8, 5}, torch::requires_grad());
  OptimizerConfig oc;
  auto sgd = make_sgd(*net, {kernel}, oc);
  ASSERT_EQ(sgd->param_groups().size(), 2u);
  EXPECT_EQ(sgd->param_groups()[0].params().size(), 6u);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::SGDOptions&>(sgd->param_groups()[0].options()).weight_decay(), 5e-4);
  EXPECT_DOUBLE_EQ(static_cast<torch::optim::SGDOptions&>(sgd->param_groups()[1].options()).weight_decay(), 0.0);
  set_lr(*sgd, 0.02);
  for (auto& g : sgd->param_groups())
    EXPECT_DOUBLE_EQ(static_cast<torch::optim::SGDOptions&>(g.options()).lr(), 0.02);
}

// Every shipped recipe parses (no unknown keys, right types) and carries its
// paper's numbers.
TEST(Config, ShippedRecipesParse) {
  const std::filesystem::path dir = std::filesystem::path(qface::testing::source_dir()) / "configs";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".toml") continue;
    SCOPED_TRACE(e.path().string());
    EXPECT_NO_THROW(load_config(e.path()));
    ++n;
  }
  EXPECT_GE(n, 4);
  TrainConfig ada = load_config(dir / "adaface_ir101_ms1mv2.toml");
  EXPECT_EQ(ada.model.backbone, "ir_101");
  EXPECT_EQ(ada.head.head.name, "adaface");
  EXPECT_DOUBLE_EQ(ada.head.head.m.value(), 0.4);
  EXPECT_DOUBLE_EQ(ada.head.head.h.value(), 0.333);
  EXPECT_EQ(ada.batch_size, 512);
  EXPECT_EQ(ada.schedule.milestones, (std::vector<double>{12, 20, 24}));
  TrainConfig mag = load_config(dir / "magface_iresnet100_ms1mv2.toml");
  EXPECT_EQ(mag.model.backbone, "iresnet100");
  EXPECT_DOUBLE_EQ(mag.head.head.lambda_g.value(), 35.0);
  EXPECT_EQ(mag.schedule.milestones, (std::vector<double>{10, 18, 22}));
  EXPECT_EQ(mag.epochs, 25);
  // AdaFace's statistics start: official at the published scale, the first
  // batch's in the synthetic recipes (short runs; docs/method.md).
  EXPECT_EQ(ada.head.head.stats_init.value(), "official");
  for (const char* synth : {"synth_demo.toml", "synth_study.toml", "synth_tiny.toml"}) {
    SCOPED_TRACE(synth);
    EXPECT_EQ(load_config(dir / synth).head.head.stats_init.value(), "first_batch");
    for (const std::string& name : qface::heads::head_names())
      EXPECT_NO_THROW(load_config(dir / synth, {"head.name=" + name})) << name;
  }
}

// Every head option (QFACE_HEAD_OPTIONS) is a key of [head]: read, validated
// by type and written back by to_toml, with no code per option.
TEST(Config, EveryHeadOptionRoundTripsThroughToml) {
  int n = 0;
  qface::heads::for_each_head_option([&](const qface::heads::HeadOptionInfo& o, auto member) {
    ++n;
    using T = typename std::remove_reference_t<decltype(TrainConfig{}.head.head.*member)>::value_type;
    std::string value;
    if constexpr (std::is_same_v<T, double>) value = "0.25";
    else if constexpr (std::is_same_v<T, bool>) value = "false";
    else value = "\"first_batch\"";
    const TrainConfig c = parse_config("[head]\nname = \"adaface\"\n" + std::string(o.key) + " = " + value, "cfg.toml");
    ASSERT_TRUE((c.head.head.*member).has_value()) << o.key;
    const TrainConfig back = parse_config(to_toml(c), "effective.toml");
    EXPECT_EQ(back.head.head.*member, c.head.head.*member) << o.key;
    EXPECT_NE(to_toml(c).find(o.key), std::string::npos) << o.key;
  });
  EXPECT_EQ(n, 15);
}
