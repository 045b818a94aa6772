// The paper-style protocols' read-outs and the claims across seeds, against
// hand-derived values.
#include <gtest/gtest.h>

#include <cmath>

#include "qface/core/error.h"
#include "qface/study/claims.h"
#include "qface/study/main_job.h"
#include "qface/study/protocols.h"

namespace qp = qface::study;

TEST(Protocols, TarAtOneThresholdOverAllImpostors) {
  // 100 impostors scored 0.00 ... 0.99 and 4 genuine pairs. At FAR 0.05 the
  // threshold is the 6th largest impostor (k = floor(0.05 * 100) = 5, 0-based):
  // 0.94, accept when score > 0.94, so 0.95 and 0.99 pass: TAR 2 / 4.
  std::vector<double> score;
  std::vector<uint8_t> genuine;
  for (int i = 0; i < 100; ++i) score.push_back(i / 100.0), genuine.push_back(0);
  for (double g : {0.95, 0.99, 0.5, 0.94}) score.push_back(g), genuine.push_back(1);
  EXPECT_DOUBLE_EQ(qp::tar_at_far(score, genuine, 0.05), 0.5);
  EXPECT_DOUBLE_EQ(qp::tar_at_far(score, genuine, 0.01), 0.25);  // threshold 0.98: only 0.99
  EXPECT_DOUBLE_EQ(qp::tar_at_far(score, genuine, 0.5), 1.0);    // threshold 0.49: all four
  EXPECT_TRUE(std::isnan(qp::tar_at_far(score, genuine, 0.001)));  // 100 impostors cannot resolve 1e-3
  // A subset: the genuine pairs 100 and 101 with impostors 90..99 (10 of them):
  // FAR 0.1 -> k = 1 -> threshold 0.98 -> only 0.99 passes.
  std::vector<int64_t> items{100, 101};
  for (int64_t i = 90; i < 100; ++i) items.push_back(i);
  EXPECT_DOUBLE_EQ(qp::tar_at_far(score, genuine, 0.1, items), 0.5);
}

TEST(Protocols, ClaimFarNeedsTenAcceptedImpostors) {
  EXPECT_DOUBLE_EQ(qp::claim_far(1500), 1e-2);
  EXPECT_DOUBLE_EQ(qp::claim_far(10000), 1e-3);
  EXPECT_DOUBLE_EQ(qp::claim_far(100), 1e-1);
  EXPECT_DOUBLE_EQ(qp::claim_far(99), 0.0);
}

TEST(Protocols, TarDifferenceOfAModelWithItselfIsZero) {
  std::vector<double> a;
  std::vector<uint8_t> genuine;
  std::vector<int64_t> ids;
  for (int i = 0; i < 400; ++i) {
    genuine.push_back(i % 2);
    a.push_back(std::sin(i * 1.3) + (i % 2) * 0.8);
    ids.push_back(i / 8);
  }
  const qface::eval::Interval same = qp::tar_difference(a, a, genuine, ids, 0.1, {.resamples = 200});
  EXPECT_EQ(same.estimate, 0.0);
  EXPECT_EQ(same.lo, 0.0);
  EXPECT_EQ(same.hi, 0.0);
  EXPECT_EQ(same.items, 50);  // identities, not pairs
  // Model b scores every genuine pair higher by 10: it accepts all of them.
  std::vector<double> b = a;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] += genuine[i] ? 10.0 : 0.0;
  const qface::eval::Interval d = qp::tar_difference(b, a, genuine, ids, 0.1, {.resamples = 200});
  EXPECT_DOUBLE_EQ(d.estimate, 1.0 - qp::tar_at_far(a, genuine, 0.1));
  EXPECT_GT(d.lo, 0.0);
}

TEST(Protocols, RunNamesOfTheControls) {
  using V = std::vector<std::string>;
  EXPECT_EQ(qp::run_overrides("arcface"), (V{"head.name=arcface"}));
  EXPECT_EQ(qp::run_overrides("curricularface"), (V{"head.name=curricularface"}));
  EXPECT_EQ(qp::run_overrides("adaface_z-1"), (V{"head.name=adaface", "head.fixed_z=-1"}));
  EXPECT_EQ(qp::run_overrides("adaface_z0"), (V{"head.name=adaface", "head.fixed_z=0"}));
  EXPECT_EQ(qp::run_overrides("adaface_z+1"), (V{"head.name=adaface", "head.fixed_z=1"}));
  EXPECT_EQ(qp::run_overrides("adaface_official"), (V{"head.name=adaface", "head.stats_init=official"}));
}

TEST(Protocols, ClaimsAcrossSeedsUseTheTIntervalOfTheEstimates) {
  // Four seeds with estimates 0.01 ... 0.04 for claim "x"; claim "y" is
  // missing from one seed and is dropped.
  std::vector<qp::ClaimsResult> seeds(4);
  for (int s = 0; s < 4; ++s) {
    qface::eval::Claim c;
    c.statement = "x";
    c.interval = {.estimate = 0.01 * (s + 1), .lo = -1, .hi = 1};
    seeds[s].ids.push_back("x");
    seeds[s].claims.push_back(c);
    if (s != 2) {
      seeds[s].ids.push_back("y");
      seeds[s].claims.push_back(c);
    }
  }
  const qp::ClaimsResult all = qp::claims_across_seeds(seeds);
  ASSERT_EQ(all.ids, std::vector<std::string>{"x"});
  const qface::eval::Interval& i = all.claims[0].interval;
  EXPECT_NEAR(i.estimate, 0.025, 1e-12);
  EXPECT_NEAR(i.lo, 0.00445746, 1e-7);  // 0.025 -+ 3.182446 * 0.00645497
  EXPECT_NEAR(i.hi, 0.04554254, 1e-7);
  EXPECT_EQ(all.claims[0].interval_over, "4 seeds");
  EXPECT_EQ(qface::eval::verdict(all.claims[0]), qface::eval::Verdict::kHolds);
  EXPECT_THROW(qp::claims_across_seeds({seeds[0]}), qface::Error);
}

TEST(Protocols, TheMainJobAndTheStudyUseTheirOwnPresets) {
  // The sizes docs/study.md ("Training to fit") and the recipes assume.
  const qface::synth::SynthOptions main = qface::synth::preset_options("main");
  EXPECT_EQ(main.ids, 100);
  EXPECT_EQ(main.per_id, 30);
  EXPECT_EQ(main.val_pairs, 2000);
  EXPECT_EQ(main.val_ids, qface::synth::preset_options("demo").val_ids);
  const qface::synth::SynthOptions study = qface::synth::preset_options("study");
  EXPECT_EQ(study.ids, 150);
  EXPECT_EQ(study.per_id, 30);
  EXPECT_EQ(study.val_pairs, qface::synth::preset_options("full").val_pairs);
  EXPECT_EQ(qp::MainJobOptions().preset, "main");
  EXPECT_DOUBLE_EQ(qp::MainJobOptions().identity_free, qface::synth::kStudyIdentityFree);
  const qp::MainJobOptions s = qp::study_options();
  EXPECT_EQ(s.preset, "study");
  EXPECT_EQ(s.seeds.size(), 4u);  // paired seeds for the t interval
  for (const auto& p : qface::synth::preset_names()) EXPECT_NO_THROW(qface::synth::preset_options(p)) << p;
  EXPECT_THROW(qface::synth::preset_options("huge"), qface::Error);
}
