// c10d collectives, the sharded classifier and what ranks agree on (stop,
// batch sizes, the resume step, validation), with several ranks as threads of
// one process over a shared in-memory store (Gloo over loopback).
#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <thread>

#include "qface/backbones/backbone.h"
#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/data/bin_set.h"
#include "qface/data/tools.h"
#include "qface/heads/adaface.h"
#include "qface/heads/curricularface.h"
#include "qface/train/checkpoint.h"
#include "qface/train/distributed.h"
#include "qface/train/sharded_classifier.h"
#include "qface/train/validation.h"
#include "tests/support/testing.h"

using qface::train::Dist;

namespace {

// Runs `body` on `world` ranks (threads); each rank's exception, if any, in
// its slot.
std::vector<std::exception_ptr> run_ranks_collecting(int world,
                                                     const std::function<void(const std::shared_ptr<Dist>&)>& body,
                                                     std::chrono::milliseconds timeout = std::chrono::seconds(300)) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(world);
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] {
      try {
        body(Dist::over_store(store, r, world, timeout));
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

void run_ranks(int world, const std::function<void(const std::shared_ptr<Dist>&)>& body) {
  for (auto& e : run_ranks_collecting(world, body))
    if (e) std::rethrow_exception(e);
}

std::string what(const std::exception_ptr& e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
}

// A .bin set of `pairs` pairs of drawn faces (every other pair the same face).
void write_val_bin(const std::filesystem::path& bin, int pairs) {
  qface::data::BinSet set;
  for (int i = 0; i < pairs; ++i) {
    const bool same = i % 2 == 0;
    for (int k = 0; k < 2; ++k) {
      std::vector<uchar> buf;
      cv::imencode(".jpg", qface::data::draw_test_face(same ? i : i * 2 + k, k), buf);
      set.images.emplace_back(buf.begin(), buf.end());
    }
    set.issame.push_back(same);
  }
  qface::data::write_bin_set(bin, set);
}

}  // namespace

TEST(Distributed, CollectivesOverGloo) {
  run_ranks(2, [](const std::shared_ptr<Dist>& d) {
    const double r = d->rank();
    torch::Tensor s = torch::full({3}, r + 1);
    d->all_reduce_sum(s);
    EXPECT_TRUE(torch::allclose(s, torch::full({3}, 3.0)));
    torch::Tensor m = torch::tensor({r, -r});
    d->all_reduce_max(m);
    EXPECT_TRUE(torch::allclose(m, torch::tensor({1.0, 0.0})));
    torch::Tensor g = d->all_gather(torch::full({2, 2}, r));
    EXPECT_TRUE(torch::allclose(g, torch::tensor({0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0}).reshape({4, 2})));
    std::vector<torch::Tensor> b{torch::full({2}, r + 5)};
    d->broadcast(b, 1);
    EXPECT_TRUE(torch::allclose(b[0], torch::full({2}, 6.0)));

    // Bucketed gradient averaging: 3 parameters, buckets of 16 bytes force several buckets.
    std::vector<torch::Tensor> params = {torch::zeros({3}, torch::requires_grad()),
                                         torch::zeros({2, 2}, torch::requires_grad()),
                                         torch::zeros({1}, torch::requires_grad())};
    for (auto& p : params) p.mutable_grad() = torch::full(p.sizes(), 2 * r + 1);
    d->average_gradients(params, 16);
    for (auto& p : params) EXPECT_TRUE(torch::allclose(p.grad(), torch::full(p.sizes(), 2.0)));

    // Mean and unbiased std over both ranks' values.
    torch::Tensor v = r == 0 ? torch::tensor({1.0, 2.0, 3.0}) : torch::tensor({4.0, 10.0, 6.0});
    auto [mean, std] = qface::train::global_mean_std(*d, v);
    torch::Tensor all = torch::tensor({1.0, 2.0, 3.0, 4.0, 10.0, 6.0});
    EXPECT_NEAR(mean.item<double>(), all.mean().item<double>(), 1e-6);
    EXPECT_NEAR(std.item<double>(), all.std().item<double>(), 1e-6);
  });
}

TEST(Distributed, ShardRanges) {
  using qface::train::shard_range;
  EXPECT_EQ(shard_range(7, 0, 2), std::make_pair(int64_t{0}, int64_t{4}));
  EXPECT_EQ(shard_range(7, 1, 2), std::make_pair(int64_t{4}, int64_t{3}));
  EXPECT_EQ(shard_range(10, 2, 4), std::make_pair(int64_t{6}, int64_t{2}));
  EXPECT_EQ(shard_range(10, 3, 4), std::make_pair(int64_t{8}, int64_t{2}));
}

TEST(Distributed, EnvironmentIsValidated) {
  ::setenv("RANK", "3", 1);
  ::setenv("WORLD_SIZE", "2", 1);
  EXPECT_THROW(qface::train::DistEnv::from_env(), qface::Error);
  ::setenv("RANK", "x", 1);
  EXPECT_THROW(qface::train::DistEnv::from_env(), qface::Error);
  ::setenv("RANK", "1", 1);
  ::setenv("MASTER_PORT", "1234", 1);
  auto env = qface::train::DistEnv::from_env();
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.world_size, 2);
  EXPECT_EQ(env.master_port, 1234);
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
  ::unsetenv("MASTER_PORT");
}

// NCCL for CUDA devices, Gloo for the CPU, either forced where it can run
// (issue #38); QFACE_DIST_BACKEND (set by `qface launch --backend`) is checked.
TEST(Distributed, BackendFollowsTheDevice) {
  using qface::train::pick_backend;
  const torch::Device cpu(torch::kCPU), gpu(torch::kCUDA, 0);
  EXPECT_EQ(pick_backend("auto", cpu), "gloo");
  EXPECT_EQ(pick_backend("gloo", cpu), "gloo");
  EXPECT_EQ(pick_backend("gloo", gpu), "gloo");
  auto error = [](const std::string& requested, const torch::Device& d) -> std::string {
    try {
      (void)pick_backend(requested, d);
    } catch (const qface::Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error("nccl", cpu).find("the NCCL backend needs CUDA devices"), std::string::npos) << error("nccl", cpu);
  EXPECT_NE(error("mpi", cpu).find("backend must be auto, gloo or nccl"), std::string::npos);
  EXPECT_THROW(qface::train::check_backend("mpi", "test"), qface::Error);
  if (!qface::train::nccl_built()) {
    EXPECT_THROW(qface::train::check_backend("nccl", "test"), qface::Error);
  }
  qface::train::check_backend("gloo", "test");  // no throw
  if (qface::train::nccl_built()) {
    EXPECT_EQ(pick_backend("auto", gpu), "nccl");
  } else {
    EXPECT_NE(error("auto", gpu).find("this LibTorch has no NCCL backend"), std::string::npos) << error("auto", gpu);
  }
  EXPECT_EQ(qface::train::DistEnv::from_env().backend, "auto");
  ::setenv("QFACE_DIST_BACKEND", "nccl", 1);
  EXPECT_EQ(qface::train::DistEnv::from_env().backend, "nccl");
  ::setenv("QFACE_DIST_BACKEND", "tcp", 1);
  EXPECT_THROW(qface::train::DistEnv::from_env(), qface::Error);
  ::unsetenv("QFACE_DIST_BACKEND");
  // A world of one needs no backend.
  EXPECT_EQ(qface::train::Dist::init(qface::train::DistEnv{}, cpu)->backend(), "none");
}

class ShardedHead : public ::testing::TestWithParam<std::string> {};

// Sampling rate 1.0 on 2 ranks equals the unsharded head: loss, the gradients
// of embeddings, norms and centres, AdaFace's buffers and CurricularFace's t.
TEST_P(ShardedHead, RateOneOnTwoRanksEqualsUnshardedHead) {
  const std::string name = GetParam();
  const int world = 2;
  const int64_t dim = 8, classes = 7, per_rank = 3, batch = per_rank * world;
  torch::manual_seed(3);
  qface::heads::HeadConfig config{.name = name, .embedding_size = dim, .num_classes = classes};
  auto full = qface::heads::make_head(config);
  torch::Tensor x = torch::randn({batch, dim});
  torch::Tensor x_hat = (x / x.norm(2, 1, true)).detach().requires_grad_(true);
  torch::Tensor norms = torch::tensor({12.0f, 30.0f, 45.0f, 18.0f, 70.0f, 95.0f}).requires_grad_(true);
  torch::Tensor labels = torch::tensor({0, 6, 3, 4, 6, 1}, torch::kInt64);
  auto ref = full->loss(x_hat, norms, labels);
  ref.loss.backward();
  const torch::Tensor kernel = full->kernel.detach().clone();
  torch::Tensor full_kgrad = full->kernel.grad().clone();

  run_ranks(world, [&](const std::shared_ptr<Dist>& d) {
    qface::train::ShardedClassifier sc(qface::train::ShardedClassifierOptions{.head = config}, d);
    {
      torch::NoGradGuard g;
      sc->head->kernel.copy_(kernel.slice(1, sc->shard_start(), sc->shard_start() + sc->shard_size()));
    }
    const int64_t r0 = d->rank() * per_rank, r1 = r0 + per_rank;
    torch::Tensor xl = x_hat.detach().slice(0, r0, r1).clone().requires_grad_(true);
    torch::Tensor nl = norms.detach().slice(0, r0, r1).clone().requires_grad_(true);
    auto out = sc(xl, nl, labels.slice(0, r0, r1));
    out.loss.backward();
    EXPECT_NEAR(out.ce.item<double>(), ref.ce.item<double>(), 1e-5) << name;
    torch::Tensor reg = out.reg.detach().clone();
    d->all_reduce_sum(reg);
    EXPECT_NEAR(reg.item<double>() / world, ref.reg.item<double>(), 1e-5) << name;
    // The embedding gradient carries the world-size factor that data-parallel averaging removes.
    EXPECT_TRUE(torch::allclose(xl.grad() / world, x_hat.grad().slice(0, r0, r1), 1e-4, 1e-6)) << name;
    EXPECT_TRUE(torch::allclose(sc->head->kernel.grad(),
                                full_kgrad.slice(1, sc->shard_start(), sc->shard_start() + sc->shard_size()), 1e-4,
                                1e-6))
        << name;
    if (norms.grad().defined() && nl.grad().defined()) {
      EXPECT_TRUE(torch::allclose(nl.grad() / world, norms.grad().slice(0, r0, r1), 1e-4, 1e-6)) << name;
    }
    if (auto* ada = dynamic_cast<qface::heads::AdaFaceImpl*>(sc->head.get())) {
      auto* ref_ada = dynamic_cast<qface::heads::AdaFaceImpl*>(full.get());
      EXPECT_NEAR(ada->batch_mean.item<double>(), ref_ada->batch_mean.item<double>(), 1e-4);
      EXPECT_NEAR(ada->batch_std.item<double>(), ref_ada->batch_std.item<double>(), 1e-4);
    }
    if (auto* cf = dynamic_cast<qface::heads::CurricularFaceImpl*>(sc->head.get())) {
      // Every shard knows every row's target: t and the hard negatives are the unsharded head's.
      auto* ref_cf = dynamic_cast<qface::heads::CurricularFaceImpl*>(full.get());
      EXPECT_NEAR(cf->t.item<double>(), ref_cf->t.item<double>(), 1e-7);
      EXPECT_GT(cf->t.item<double>(), 0.0);
    }
  });
}

INSTANTIATE_TEST_SUITE_P(AllHeads, ShardedHead,
                         ::testing::Values("adaface", "magface", "magface-cos", "arcface", "cosface",
                                           "curricularface"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

TEST(Distributed, SamplingKeepsPositivesAndTouchesOnlySampledCentres) {
  const int world = 2;
  const int64_t dim = 8, classes = 40, per_rank = 4;
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({per_rank * world, dim});
  torch::Tensor labels = torch::tensor({0, 5, 21, 33, 5, 19, 39, 2}, torch::kInt64);
  run_ranks(world, [&](const std::shared_ptr<Dist>& d) {
    qface::train::ShardedClassifierOptions o{.head = {.name = "arcface", .embedding_size = dim, .num_classes = classes},
                                             .sample_rate = 0.25};
    qface::train::ShardedClassifier sc(o, d);
    const int64_t r0 = d->rank() * per_rank;
    torch::Tensor xl = x.slice(0, r0, r0 + per_rank);
    xl = (xl / xl.norm(2, 1, true)).detach().requires_grad_(true);
    auto out = sc(xl, torch::full({per_rank}, 20.0f), labels.slice(0, r0, r0 + per_rank));
    out.loss.backward();
    EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
    torch::Tensor touched = sc->head->kernel.grad().abs().sum(0).gt(0);
    EXPECT_EQ(touched.sum().item<int64_t>(), 5);  // int(0.25 * 20) centres per shard
    for (int64_t y : {0, 5, 21, 33, 19, 39, 2}) {
      if (y < sc->shard_start() || y >= sc->shard_start() + sc->shard_size()) continue;
      EXPECT_TRUE(touched[y - sc->shard_start()].item<bool>()) << "positive class " << y;
    }
  });
}

// The per-step agreement: a stop flag on any rank stops every rank; unequal
// local batches are an error on every rank that names each rank's rows.
TEST(Distributed, RanksAgreeToStopAndRefuseUnequalBatches) {
  run_ranks(2, [](const std::shared_ptr<Dist>& d) {
    EXPECT_FALSE(qface::train::agree_before_step(*d, false, 4, 1));
    EXPECT_TRUE(qface::train::agree_before_step(*d, d->rank() == 1, 4, 2));
    EXPECT_TRUE(qface::train::any_rank(*d, d->rank() == 0));
    EXPECT_FALSE(qface::train::any_rank(*d, false));
    try {
      qface::train::agree_before_step(*d, false, d->rank() == 1 ? 3 : 4, 7);
      ADD_FAILURE() << "no error on rank " << d->rank();
    } catch (const qface::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("step 7"), std::string::npos) << m;
      EXPECT_NE(m.find("rank 0: 4, rank 1: 3"), std::string::npos) << m;
    }
  });
}

TEST(Distributed, NewestCommonCheckpointStep) {
  using qface::train::newest_common_step;
  EXPECT_EQ(newest_common_step({{1, 2, 3}, {1, 2}}), 2);
  EXPECT_EQ(newest_common_step({{3, 1}, {2, 1}}), 1);  // the min of the newest (2) is not on rank 0
  EXPECT_EQ(newest_common_step({{5, 10}, {10, 5}, {5}}), 5);
  EXPECT_EQ(newest_common_step({{1}, {2}}), -1);
  EXPECT_EQ(newest_common_step({{}, {}}), -1);
  EXPECT_EQ(qface::train::checkpoint_step("/x/ckpt-000000042.rank1.pt"), 42);
  EXPECT_EQ(qface::train::checkpoint_step("ckpt-000000007.pt"), 7);
}

// --resume on 2 ranks whose newest per-rank checkpoints differ: both take the
// newest step they both have, and the checkpoint past it is removed.
TEST(Distributed, ResumePointIsTheNewestStepOfEveryRank) {
  qface::testing::TempDir dir;
  const auto ckpt = dir / "checkpoints";
  qface::ensure_dir(ckpt);
  auto touch = [&](int64_t step, int rank) {
    qface::write_file_atomic(qface::train::checkpoint_path(ckpt, step, rank, true), "x");
  };
  for (int64_t s : {1, 3, 4}) touch(s, 0);
  for (int64_t s : {1, 2, 3}) touch(s, 1);
  run_ranks(2, [&](const std::shared_ptr<Dist>& d) {
    auto at = qface::train::agree_resume_point(*d, ckpt, true);
    EXPECT_EQ(at.step, 3);
    EXPECT_EQ(at.path, qface::train::checkpoint_path(ckpt, 3, d->rank(), true));
    ASSERT_EQ(at.steps.size(), 2u);
    EXPECT_EQ(at.steps[0], (std::vector<int64_t>{1, 3, 4}));
    EXPECT_EQ(at.steps[1], (std::vector<int64_t>{1, 2, 3}));
  });
  EXPECT_FALSE(std::filesystem::exists(qface::train::checkpoint_path(ckpt, 4, 0, true)));
  EXPECT_TRUE(std::filesystem::exists(qface::train::checkpoint_path(ckpt, 2, 1, true)));

  // No common step: the same error on every rank, listing both.
  qface::testing::TempDir other;
  const auto c2 = other / "checkpoints";
  qface::ensure_dir(c2);
  qface::write_file_atomic(qface::train::checkpoint_path(c2, 2, 0, true), "x");
  qface::write_file_atomic(qface::train::checkpoint_path(c2, 3, 1, true), "x");
  std::vector<std::string> errors(2);
  run_ranks(2, [&](const std::shared_ptr<Dist>& d) {
    try {
      qface::train::agree_resume_point(*d, c2, true);
    } catch (const qface::Error& e) {
      errors[d->rank()] = e.what();
    }
  });
  EXPECT_EQ(errors[0], errors[1]);
  EXPECT_NE(errors[0].find("rank 0: [2]; rank 1: [3]"), std::string::npos) << errors[0];
}

// Validation split over 2 ranks: each embeds half of the images, and both get
// the numbers of one process embedding all of them.
TEST(Distributed, ValidationSplitAcrossRanksGivesEveryRankTheNumbersOfOne) {
  qface::testing::TempDir dir;
  const int pairs = 11;  // 22 images: 11 + 11 on 2 ranks, 8 + 7 + 7 on 3 (the gather pads)
  const auto bin = dir / "val.bin";
  write_val_bin(bin, pairs);
  torch::set_num_threads(1);
  auto make_model = [] {
    torch::manual_seed(7);
    return qface::backbones::make_backbone("mobilefacenet", 64);
  };
  auto model = make_model();
  const nlohmann::json one = qface::train::Validator({bin.string()}, 8).run(*model);
  ASSERT_EQ(one["val"]["pairs"].get<int>(), pairs);
  for (int world : {2, 3}) {
    std::vector<qface::backbones::Backbone> models;
    for (int r = 0; r < world; ++r) models.push_back(make_model());
    std::vector<nlohmann::json> got(world);
    run_ranks(world, [&](const std::shared_ptr<Dist>& d) {
      got[d->rank()] = qface::train::Validator({bin.string()}, 8, d).run(*models[d->rank()]);
    });
    for (int r = 0; r < world; ++r) {
      EXPECT_EQ(got[r], got[0]) << "rank " << r << " of " << world;  // identical on every rank
      const auto &a = got[r]["val"], &b = one["val"];
      EXPECT_EQ(a["pairs"], b["pairs"]);
      EXPECT_NEAR(a["acc"].get<double>(), b["acc"].get<double>(), 1e-9);
      EXPECT_NEAR(a["acc_flip"].get<double>(), b["acc_flip"].get<double>(), 1e-9);
      EXPECT_NEAR(a["norm_mean"].get<double>(), b["norm_mean"].get<double>(), 1e-4 * b["norm_mean"].get<double>());
    }
  }
}

// Gloo gives up on a peer after the group's timeout (here 5 s). A set whose
// embedding costs 7 s in all, each rank paying for its share: split over two
// ranks, each spends 3.5 s and they meet at the gather and at the next
// collective. The same cost on rank 0 alone makes rank 1 time out (the
// timeout is real, so the split is what saves the first case).
TEST(Distributed, SlowValidationSplitAcrossRanksDoesNotTimeOut) {
  qface::testing::TempDir dir;
  const auto bin = dir / "val.bin";
  write_val_bin(bin, 12);  // 24 images, 12 a rank (10 folds need 10 pairs)
  torch::set_num_threads(1);
  const auto cost = std::chrono::milliseconds(7000);
  std::vector<qface::backbones::Backbone> models;
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(7);
    models.push_back(qface::backbones::make_backbone("mobilefacenet", 64));
  }
  for (const bool split : {true, false}) {
    std::vector<int64_t> shares(2, -1);
    std::vector<nlohmann::json> got(2);
    const auto errors = run_ranks_collecting(
        2,
        [&](const std::shared_ptr<Dist>& d) {
          qface::train::Validator v({bin.string()}, 8, d);
          v.after_share([&, r = d->rank()](int64_t share, int64_t total) {
            shares[r] = share;
            if (split) std::this_thread::sleep_for(cost * share / total);
            else if (r == 0) std::this_thread::sleep_for(cost);
          });
          got[d->rank()] = v.run(*models[d->rank()]);
          torch::Tensor next = torch::ones({1});  // the next step's first collective
          d->all_reduce_sum(next);
        },
        std::chrono::seconds(5));
    EXPECT_EQ(shares, (std::vector<int64_t>{12, 12}));
    if (split) {
      for (const auto& e : errors) EXPECT_EQ(what(e), "");
      EXPECT_EQ(got[0], got[1]);
      EXPECT_EQ(got[0]["val"]["pairs"].get<int>(), 12);
    } else {
      EXPECT_TRUE(errors[1]) << "rank 1 waited 7 s under a 5 s timeout and did not fail";
    }
  }
}
