// Ground-truth quality: the formula falls monotonically in every strength, and
// the rendered image moves further from the clean face as each degradation
// strength rises; alignment puts the landmarks on the template (docs/method.md,
// Alignment).
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <cmath>

#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"
#include "qface/synth/render.h"
#include "qface/synth/rng.h"

using namespace qface::synth;

namespace {

ImageNuisance with_strength(int k, double s, uint64_t seed) {
  ImageNuisance n;
  n.s[static_cast<std::size_t>(k)] = s;
  Rng rng(seed);
  derive(n, rng);
  n.roll = 0;
  return n;
}

double mean_abs_diff(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  const cv::Scalar m = cv::mean(d);
  return (m[0] + m[1] + m[2]) / 3.0;
}

}  // namespace

TEST(SynthQuality, FormulaFallsStrictlyInEveryStrength) {
  Rng rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    std::array<double, kNuisances> base{};
    for (double& v : base) v = trial == 0 ? 0.0 : rng.uniform(0, 0.9);
    for (int k = 0; k < kNuisances; ++k) {
      double prev = 2.0;
      for (int step = 0; step <= 20; ++step) {
        auto s = base;
        s[static_cast<std::size_t>(k)] = step / 20.0;
        const double q = quality_of(s);
        EXPECT_GE(q, 0.0);
        EXPECT_LE(q, 1.0);
        EXPECT_LT(q, prev) << nuisance_name(k) << " step " << step;
        prev = q;
      }
    }
  }
  EXPECT_DOUBLE_EQ(quality_of({}), 1.0);
  // Hand-derived: blur 0.5 and lowres 0.5 alone: (1 - 0.85 * 0.5) * (1 - 0.9 * 0.5).
  std::array<double, kNuisances> s{};
  s[kBlur] = 0.5;
  s[kLowres] = 0.5;
  EXPECT_NEAR(quality_of(s), 0.575 * 0.55, 1e-12);
}

TEST(SynthQuality, ImageDegradesMonotonicallyWithStrength) {
  const auto ids = sample_population(11, 1, 3, PopulationOptions{});
  for (const Identity& id : ids) {
    const cv::Mat clean = render_aligned(id, with_strength(kBlur, 0.0, 5)).image;
    for (int k : {kBlur, kLowres, kNoise, kJpeg, kOcclusion, kIllumination}) {
      double prev = -1;
      for (double s : {0.2, 0.4, 0.6, 0.8, 1.0}) {
        const ImageNuisance n = with_strength(k, s, 5);
        const double d = mean_abs_diff(clean, render_aligned(id, n).image);
        EXPECT_GT(d, prev) << nuisance_name(k) << " strength " << s << " identity " << id.index;
        prev = d;
      }
      EXPECT_GT(prev, 1.0) << nuisance_name(k);
    }
  }
}

TEST(SynthQuality, SimilarityTransformIsExactLeastSquares) {
  const Landmarks& t = qface::data::face_template();
  // A known similarity is recovered exactly.
  const double a = 0.3, sc = 1.7, tx = 12, ty = -4;
  Landmarks src;
  for (std::size_t i = 0; i < 5; ++i)
    src[i] = {sc * (std::cos(a) * t[i].x - std::sin(a) * t[i].y) + tx, sc * (std::sin(a) * t[i].x + std::cos(a) * t[i].y) + ty};
  const cv::Matx23d M = qface::data::similarity_transform(src, t);
  for (std::size_t i = 0; i < 5; ++i) {
    const cv::Point2d p(M(0, 0) * src[i].x + M(0, 1) * src[i].y + M(0, 2), M(1, 0) * src[i].x + M(1, 1) * src[i].y + M(1, 2));
    EXPECT_NEAR(p.x, t[i].x, 1e-9);
    EXPECT_NEAR(p.y, t[i].y, 1e-9);
  }
}

TEST(SynthQuality, LandmarksLandOnTheTemplate) {
  const auto ids = sample_population(4, 1, 6, PopulationOptions{});
  for (const Identity& id : ids) {
    ImageNuisance n = with_strength(kPose, 0.0, 9);
    n.roll = 17;  // in-plane rotation is undone by the alignment
    const Rendered r = render_aligned(id, n);
    ASSERT_EQ(r.image.size(), cv::Size(112, 112));
    ASSERT_EQ(r.image.type(), CV_8UC3);
    double err = 0;
    for (std::size_t i = 0; i < 5; ++i) err += cv::norm(r.landmarks[i] - qface::data::face_template()[i]) / 5;
    EXPECT_LT(err, 4.0) << "identity " << id.index;  // the rest is the face's own geometry
    // Left eye left of the right eye, eyes above nose above mouth.
    EXPECT_LT(r.landmarks[0].x, r.landmarks[1].x);
    EXPECT_LT(r.landmarks[0].y, r.landmarks[2].y);
    EXPECT_LT(r.landmarks[2].y, r.landmarks[3].y);
    // The loose crop keeps the roll; re-aligning its landmarks gives the same residual.
    const Rendered loose = render_loose(id, n, 150);
    ASSERT_EQ(loose.image.size(), cv::Size(150, 150));
    const cv::Matx23d M = qface::data::similarity_transform(loose.landmarks, qface::data::face_template());
    const double angle = std::atan2(M(1, 0), M(0, 0)) * 180 / 3.14159265358979;
    EXPECT_NEAR(angle, -17.0, 0.5);
    double err2 = 0;
    for (std::size_t i = 0; i < 5; ++i) {
      const cv::Point2d& p = loose.landmarks[i];
      const cv::Point2d q(M(0, 0) * p.x + M(0, 1) * p.y + M(0, 2), M(1, 0) * p.x + M(1, 1) * p.y + M(1, 2));
      err2 += cv::norm(q - qface::data::face_template()[i]) / 5;
    }
    EXPECT_NEAR(err2, err, 0.05);
  }
}

TEST(SynthQuality, TrainingDistributionIsMostlyGoodWithALongTail) {
  NuisanceOptions o;  // the documented defaults
  std::vector<double> q;
  int unrecognizable = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    Rng rng(derive_seed(1, 2, static_cast<uint64_t>(i)));
    const ImageNuisance s = sample_nuisance(rng, o);
    q.push_back(s.quality());
    unrecognizable += s.unrecognizable;
  }
  std::sort(q.begin(), q.end());
  const double median = q[n / 2];
  const double below_03 = static_cast<double>(std::lower_bound(q.begin(), q.end(), 0.3) - q.begin()) / n;
  EXPECT_GT(median, 0.6);
  EXPECT_GT(below_03, 0.03);   // a real low tail
  EXPECT_LT(below_03, 0.20);   // but a tail
  EXPECT_NEAR(static_cast<double>(unrecognizable) / n, 0.03, 0.006);
  // Unrecognizable samples are at the very bottom.
  for (int i = 0; i < 2000; ++i) {
    Rng rng(derive_seed(1, 2, static_cast<uint64_t>(i)));
    const ImageNuisance s = sample_nuisance(rng, o);
    if (s.unrecognizable) {
      EXPECT_LT(s.quality(), 0.2);
    }
  }
}

TEST(SynthQuality, BandSamplingHitsTheBand) {
  NuisanceOptions o;
  for (auto [lo, hi] : {std::pair{0.9, 1.0}, {0.5, 0.6}, {0.12, 0.45}, {0.0, 0.1}}) {
    for (int i = 0; i < 50; ++i) {
      Rng rng(static_cast<uint64_t>(i));
      const double qq = sample_nuisance_in_band(rng, o, lo, hi).quality();
      EXPECT_GE(qq, lo);
      EXPECT_LE(qq, hi);
    }
  }
}

TEST(SynthIdentity, FamiliesAreLookAlikesAndTwinsCloser) {
  PopulationOptions o;
  const auto ids = sample_population(5, 1, 400, o);
  ASSERT_EQ(ids.size(), 400u);
  auto dist = [](const Identity& a, const Identity& b) {
    double s = 0;
    for (int g = 0; g < kGenes; ++g) s += (a.genes[g] - b.genes[g]) * (a.genes[g] - b.genes[g]);
    return std::sqrt(s);
  };
  double fam = 0, twin = 0, other = 0;
  int nf = 0, nt = 0, no = 0, in_family = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    in_family += (i > 0 && ids[i - 1].family == ids[i].family) || (i + 1 < ids.size() && ids[i + 1].family == ids[i].family);
    if (i + 1 < ids.size() && ids[i].family == ids[i + 1].family) {
      (ids[i].twin ? twin : fam) += dist(ids[i], ids[i + 1]);
      (ids[i].twin ? nt : nf) += 1;
    } else if (i + 1 < ids.size()) {
      other += dist(ids[i], ids[i + 1]);
      ++no;
    }
  }
  ASSERT_GT(nf, 5);
  ASSERT_GT(nt, 2);
  EXPECT_NEAR(in_family / 400.0, o.family_fraction, 0.12);
  EXPECT_LT(twin / nt, fam / nf);
  EXPECT_LT(fam / nf, 0.5 * other / no);
  // Same seed, same population.
  const auto again = sample_population(5, 1, 400, o);
  for (std::size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(ids[i].genes, again[i].genes);
}

// The synthetic faces have the proportions of the real faces the template was
// averaged from: a frontal, neutral face with every gene at its middle value
// puts its true landmarks within 1 px of the 112x112 template after alignment,
// and the population's mean landmark lands within 1 px of each template point.
TEST(SynthQuality, TheAverageFaceAlignsOntoTheTemplateWithin1Px) {
  std::array<double, kGenes> mid;
  mid.fill(0.5);
  const Rendered avg = render_aligned(decode_identity(mid, 0, 0, 1), with_strength(kPose, 0.0, 3));
  const auto& t = qface::data::face_template();
  for (std::size_t i = 0; i < 5; ++i)
    EXPECT_LT(cv::norm(avg.landmarks[i] - t[i]), 1.0) << "point " << i << " at " << avg.landmarks[i] << ", template " << t[i];

  const auto ids = sample_population(11, 2, 300, PopulationOptions{});
  std::array<cv::Point2d, 5> mean{};
  for (const Identity& id : ids) {
    const Rendered r = render_aligned(id, with_strength(kPose, 0.0, 4));
    for (std::size_t i = 0; i < 5; ++i) mean[i] += r.landmarks[i] / static_cast<double>(ids.size());
  }
  for (std::size_t i = 0; i < 5; ++i)
    EXPECT_LT(cv::norm(mean[i] - t[i]), 1.0) << "point " << i << " mean " << mean[i] << ", template " << t[i];
  for (std::size_t i = 0; i < 5; ++i) std::cout << "point " << i << " average face " << avg.landmarks[i] << " population mean " << mean[i] << " template " << t[i] << "\n";
}
