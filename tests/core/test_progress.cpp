// The progress line's numbers: share, rate and time left, by hand.
#include <gtest/gtest.h>

#include "qface/core/progress.h"

TEST(Progress, TextCarriesShareRateAndTimeLeft) {
  // 128 of 256 in 8 s: 16 img/s, 128 more take 8 s.
  EXPECT_EQ(qface::progress_text("embed", 128, 256, 8.0, "img"), "embed: 128/256 (50%) 16.0 img/s, 00:00:08 left");
  // 1 of 7201 in 1 s: 7200 s left = 2 h.
  EXPECT_EQ(qface::progress_text("pack a.rec", 1, 7201, 1.0, "images"),
            "pack a.rec: 1/7201 (0%) 1.0 images/s, 02:00:00 left");
  // 3 of 4 in 2 s: 1.5/s, 1 left -> 0.67 s rounds to 1 s.
  EXPECT_EQ(qface::progress_text("x", 3, 4, 2.0, "items"), "x: 3/4 (75%) 1.5 items/s, 00:00:01 left");
  // Nothing done yet, or no time measured: no rate to show.
  EXPECT_EQ(qface::progress_text("embed", 0, 256, 3.0, "img"), "embed: 0/256 (0%)");
  EXPECT_EQ(qface::progress_text("embed", 5, 256, 0.0, "img"), "embed: 5/256 (2%)");
  EXPECT_EQ(qface::progress_text("empty", 0, 0, 1.0, "img"), "empty: 0/0 (100%)");
}
