// The loader: layout and normalization, deterministic shuffle, rank sharding,
// drop_last, mid-epoch resume, thread independence, bad samples.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <set>

#include "qface/core/error.h"
#include "qface/data/loader.h"
#include "qface/data/tools.h"
#include "tests/support/testing.h"

using namespace qface::data;
using qface::testing::TempDir;

namespace {

std::string jpeg(const cv::Mat& m) {
  std::vector<uchar> buf;
  cv::imencode(".jpg", m, buf, {cv::IMWRITE_JPEG_QUALITY, 100});
  return std::string(buf.begin(), buf.end());
}

// 50 images of 10 identities; image i is a flat colour (B, G, R) = (2i, 100, 250 - 2i).
std::filesystem::path flat_rec(const TempDir& dir, int n = 50) {
  const auto rec = dir / "flat.rec";
  FaceRecordWriter w(rec);
  for (int i = 0; i < n; ++i) w.add_image(jpeg(cv::Mat(112, 112, CV_8UC3, cv::Scalar(2 * i, 100, 250 - 2 * i))), i / 5);
  w.finish();
  return rec;
}

LoaderOptions base_options(const std::filesystem::path& rec) {
  LoaderOptions o;
  o.source = rec;
  o.batch_size = 8;
  o.num_threads = 2;
  o.seed = 11;
  return o;
}

std::vector<Batch> run_epoch(Loader& loader, int64_t epoch, int64_t start = 0) {
  loader.start_epoch(epoch, start);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

}  // namespace

TEST(Loader, BatchesAreChannelsLastNormalizedBgr) {
  TempDir dir;
  auto o = base_options(flat_rec(dir));
  o.augment = false;
  o.shuffle = false;
  for (const std::string family : {"adaface", "magface", "arcface_torch"}) {
    SCOPED_TRACE(family);
    o.normalization = Normalization::for_family(family);
    Loader loader(o);
    EXPECT_EQ(loader.num_images(), 50);
    EXPECT_EQ(loader.num_classes(), 10);
    auto batches = run_epoch(loader, 0);
    ASSERT_EQ(batches.size(), 6u);
    const Batch& b = batches[1];
    EXPECT_EQ(b.images.sizes(), torch::IntArrayRef({8, 3, 112, 112}));
    EXPECT_EQ(b.images.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(b.images.is_contiguous(torch::MemoryFormat::ChannelsLast));
    for (int k = 0; k < 8; ++k) {
      const int i = 8 + k;
      EXPECT_EQ(b.indices[k].item<int64_t>(), i);
      EXPECT_EQ(b.labels[k].item<int64_t>(), i / 5);
      double bgr[3] = {2.0 * i, 100.0, 250.0 - 2 * i};
      if (family == "arcface_torch") std::swap(bgr[0], bgr[2]);
      for (int ch = 0; ch < 3; ++ch) {
        const double want = family == "magface" ? bgr[ch] / 255 : (bgr[ch] / 255 - 0.5) / 0.5;
        EXPECT_NEAR(b.images[k][ch].mean().item<double>(), want, 2.5 / 255 * 2) << "channel " << ch;
      }
    }
  }
  EXPECT_THROW(Normalization::for_family("vgg"), qface::Error);
}

TEST(Loader, ShuffleIsDeterministicPerEpochAndIndependentOfThreads) {
  TempDir dir;
  auto o = base_options(flat_rec(dir));
  Loader two(o);
  o.num_threads = 0;
  Loader inline_loader(o);
  auto a = run_epoch(two, 3), b = run_epoch(inline_loader, 3);
  ASSERT_EQ(a.size(), b.size());
  std::set<int64_t> seen;
  for (std::size_t k = 0; k < a.size(); ++k) {
    EXPECT_TRUE(torch::equal(a[k].indices, b[k].indices));
    EXPECT_TRUE(torch::equal(a[k].images, b[k].images));  // augmentations included
    for (int64_t i = 0; i < a[k].indices.size(0); ++i) seen.insert(a[k].indices[i].item<int64_t>());
  }
  EXPECT_EQ(seen.size(), 48u);  // drop_last: 6 full batches of distinct images
  auto e4 = run_epoch(two, 4);
  EXPECT_FALSE(torch::equal(e4[0].indices, a[0].indices));
  auto order3 = two.epoch_order(3);
  std::vector<int64_t> sorted = order3;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sorted[i], i);  // a permutation
  o.seed = 12;
  Loader other_seed(o);
  EXPECT_NE(other_seed.epoch_order(3), order3);
}

TEST(Loader, RanksShareTheEpochWithoutOverlap) {
  TempDir dir;
  const auto rec = flat_rec(dir);
  for (bool drop_last : {true, false}) {
    SCOPED_TRACE(drop_last);
    std::vector<int64_t> all;
    for (int r = 0; r < 3; ++r) {
      auto o = base_options(rec);
      o.rank = r;
      o.world_size = 3;
      o.drop_last = drop_last;
      Loader loader(o);
      auto order = loader.epoch_order(2);
      EXPECT_EQ(static_cast<int64_t>(order.size()), drop_last ? 16 : 17);
      EXPECT_EQ(loader.batches_per_epoch(), drop_last ? 2 : 3);
      all.insert(all.end(), order.begin(), order.end());
    }
    std::set<int64_t> distinct(all.begin(), all.end());
    // 3 x 16 = 48 distinct; or 3 x 17 = 51 covering all 50 (one wrap-around repeat).
    EXPECT_EQ(distinct.size(), drop_last ? 48u : 50u);
    EXPECT_EQ(all.size(), drop_last ? 48u : 51u);
  }
  auto o = base_options(rec);
  o.rank = 3;
  o.world_size = 3;
  EXPECT_THROW(Loader{o}, qface::Error);
}

TEST(Loader, DropLastAndResumeMidEpoch) {
  TempDir dir;
  auto o = base_options(flat_rec(dir));
  o.drop_last = false;
  Loader loader(o);
  auto full = run_epoch(loader, 1);
  ASSERT_EQ(full.size(), 7u);
  EXPECT_EQ(full.back().images.size(0), 2);
  // A fresh loader (a restarted process) resuming at batch 4 gives the same tail.
  Loader resumed(o);
  auto tail = run_epoch(resumed, 1, 4);
  ASSERT_EQ(tail.size(), 3u);
  for (std::size_t k = 0; k < tail.size(); ++k) {
    EXPECT_EQ(tail[k].batch, static_cast<int64_t>(4 + k));
    EXPECT_TRUE(torch::equal(tail[k].indices, full[4 + k].indices));
    EXPECT_TRUE(torch::equal(tail[k].images, full[4 + k].images));
    EXPECT_TRUE(torch::equal(tail[k].labels, full[4 + k].labels));
  }
  // Restarting while batches are in flight discards them.
  loader.start_epoch(1);
  loader.next();
  auto again = run_epoch(loader, 1, 6);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(torch::equal(again[0].images, full[6].images));
  EXPECT_THROW(loader.start_epoch(1, 8), qface::Error);
  Loader fresh(o);
  EXPECT_THROW(fresh.next(), qface::Error);
}

TEST(Loader, BadImagesFailWithTheRecordOrAreSkipped) {
  TempDir dir;
  const auto rec = dir / "bad.rec";
  {
    FaceRecordWriter w(rec);
    for (int i = 0; i < 12; ++i)
      w.add_image(i == 5 ? std::string("\xff\xd8\xff garbage, not a jpeg") : jpeg(draw_test_face(i / 4, i)), i / 4);
    w.finish();
  }
  auto o = base_options(rec);
  o.batch_size = 4;
  o.shuffle = false;
  {
    Loader loader(o);
    loader.start_epoch(0);
    EXPECT_TRUE(loader.next().has_value());
    try {
      loader.next();
      ADD_FAILURE() << "no error";
    } catch (const qface::Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.rec: record 6"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cannot decode"), std::string::npos) << e.what();
    }
  }
  o.skip_bad = true;
  Loader loader(o);
  auto batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[1].images.size(0), 3);
  EXPECT_EQ(loader.skipped(), 1);
  EXPECT_TRUE(batches[1].images.is_contiguous(torch::MemoryFormat::ChannelsLast));
}

// Data parallel with skip_bad: a bad sample is replaced by the next good one
// of the rank's order after the batch, so both ranks' batches keep their
// size; batches stay pure functions of their position (a resumed loader gives
// the same), and a share with nothing left to refill from is a clear error.
TEST(Loader, SkippedSamplesAreRefilledFromTheRanksStream) {
  TempDir dir;
  const auto rec = dir / "bad.rec";
  const std::set<int> bad = {2, 5, 6};
  {
    FaceRecordWriter w(rec);
    for (int i = 0; i < 16; ++i)
      w.add_image(bad.count(i) ? std::string("\xff\xd8\xff garbage, not a jpeg") : jpeg(draw_test_face(i / 4, i)), i / 4);
    w.finish();
  }
  int64_t skipped = 0;
  for (int rank : {0, 1}) {
    SCOPED_TRACE(rank);
    auto o = base_options(rec);
    o.batch_size = 2;
    o.rank = rank;
    o.world_size = 2;
    o.skip_bad = true;
    o.refill_skipped = true;
    Loader loader(o);
    const auto order = loader.epoch_order(0);
    auto batches = run_epoch(loader, 0);
    ASSERT_EQ(batches.size(), 4u);
    for (std::size_t b = 0; b < batches.size(); ++b) {
      ASSERT_EQ(batches[b].images.size(0), 2) << "batch " << b;
      // Each row: the batch's own good samples in order, then the first good
      // ones after the batch in the rank's order (wrapping around).
      std::vector<int64_t> expected;
      for (std::size_t k = 2 * b; k < 2 * b + 2; ++k)
        if (!bad.count(static_cast<int>(order[k]))) expected.push_back(order[k]);
      for (std::size_t j = 2 * b + 2; expected.size() < 2; ++j)
        if (!bad.count(static_cast<int>(order[j % order.size()]))) expected.push_back(order[j % order.size()]);
      const auto got = batches[b].indices;
      EXPECT_EQ((std::vector<int64_t>(got.data_ptr<int64_t>(), got.data_ptr<int64_t>() + 2)), expected) << "batch " << b;
    }
    Loader resumed(o);
    auto tail = run_epoch(resumed, 0, 2);
    ASSERT_EQ(tail.size(), 2u);
    EXPECT_TRUE(torch::equal(tail[0].images, batches[2].images));
    EXPECT_TRUE(torch::equal(tail[1].indices, batches[3].indices));
    skipped += loader.skipped();
  }
  EXPECT_GE(skipped, 3);  // every bad sample was met (some twice, as a candidate)
  // Rank 1 of 8 holds samples 1 and 9 (no shuffle); both bad: nothing can refill them.
  auto o = base_options(rec);
  o.batch_size = 1;
  o.world_size = 8;
  o.skip_bad = true;
  o.refill_skipped = true;
  o.shuffle = false;
  {
    FaceRecordWriter w(dir / "worse.rec");
    for (int i = 0; i < 16; ++i)
      w.add_image(i % 8 == 1 ? std::string("\xff\xd8\xff garbage") : jpeg(draw_test_face(i / 4, i)), i / 4);
    w.finish();
  }
  o.source = dir / "worse.rec";
  o.rank = 1;
  Loader loader(o);
  loader.start_epoch(0);
  try {
    loader.next();
    ADD_FAILURE() << "no error";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 of 8"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("batch 0"), std::string::npos) << e.what();
  }
}

TEST(Loader, ReadsImageFolders) {
  TempDir dir;
  for (int c = 0; c < 3; ++c) {
    std::filesystem::create_directories(dir / ("id" + std::to_string(c)));
    for (int k = 0; k < 2; ++k)
      cv::imwrite((dir / ("id" + std::to_string(c)) / (std::to_string(k) + ".png")).string(), draw_test_face(c, k, 64));
  }
  LoaderOptions o;
  o.source = dir.path();
  o.batch_size = 6;
  o.shuffle = false;
  o.augment = false;
  Loader loader(o);
  EXPECT_EQ(loader.num_classes(), 3);
  auto batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].images.sizes(), torch::IntArrayRef({6, 3, 112, 112}));  // resized from 64
  EXPECT_EQ(batches[0].labels[5].item<int64_t>(), 2);
}
