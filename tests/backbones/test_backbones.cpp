// Backbones: names and shapes of the state dicts (against the official layout
// and the Python reference), parameter counts derived by hand, output shapes,
// and BatchNorm folding.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>
#include <sstream>

#include "qface/backbones/backbone.h"
#include "qface/backbones/ir.h"
#include "qface/core/error.h"
#include "tests/support/models.h"
#include "tests/support/testing.h"

namespace qb = qface::backbones;
namespace qt = qface::testing;

namespace {

int64_t count_params(const qb::BackboneImpl& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// Hand-derived parameter count of an AdaFace IR network (docs/method.md, Backbones).
int64_t ir_param_count(const std::vector<int64_t>& units, bool se) {
  auto bn = [](int64_t c) { return 2 * c; };
  int64_t n = 3 * 64 * 9 + bn(64) + 64;  // stem conv, BN, PReLU
  const int64_t widths[4] = {64, 128, 256, 512};
  int64_t in = 64;
  for (int s = 0; s < 4; ++s)
    for (int64_t u = 0; u < units[s]; ++u) {
      const int64_t i = u == 0 ? in : widths[s], d = widths[s];
      n += bn(i) + i * d * 9 + bn(d) + d + d * d * 9 + bn(d);
      if (i != d) n += i * d + bn(d);
      if (se) n += 2 * d * (d / 16);
      in = d;
    }
  return n + bn(512) + 512 * 49 * 512 + 512;  // output BN2d, linear (BN1d has no affine)
}

// InsightFace iresnet: like IR but every stage's first block has a downsample
// branch, and the final BN1d is affine.
int64_t iresnet_param_count(const std::vector<int64_t>& layers) {
  auto bn = [](int64_t c) { return 2 * c; };
  int64_t n = 3 * 64 * 9 + bn(64) + 64;
  const int64_t widths[4] = {64, 128, 256, 512};
  int64_t in = 64;
  for (int s = 0; s < 4; ++s)
    for (int64_t b = 0; b < layers[s]; ++b) {
      const int64_t i = b == 0 ? in : widths[s], d = widths[s];
      n += bn(i) + i * d * 9 + bn(d) + d + d * d * 9 + bn(d);
      if (b == 0) n += i * d + bn(d);
      in = d;
    }
  return n + bn(512) + 512 * 49 * 512 + 512 + bn(512);
}

// Random BN statistics, and all 1-d parameters perturbed, from `seed`.
void randomize_bn(torch::nn::Module& m, uint64_t seed) {
  torch::NoGradGuard g;
  torch::manual_seed(seed);
  qt::randomize_bn_stats(m);
  for (auto& kv : m.named_parameters()) {
    // BN affine terms are 1-d "weight"/"bias" next to running stats; PReLU weights too: perturb all 1-d.
    if (kv.value().dim() == 1) kv.value().add_(torch::randn_like(kv.value()) * 0.1);
  }
}

}  // namespace

TEST(Backbones, FactoryKnowsEveryNameAndRejectsOthers) {
  EXPECT_EQ(qb::backbone_names().size(), 10u);
  EXPECT_THROW(qb::make_backbone("ir_77"), qface::Error);
  try {
    qb::make_backbone("resnet50");
    ADD_FAILURE() << "no error for an unknown name";
  } catch (const qface::Error& e) {
    EXPECT_NE(std::string(e.what()).find("ir_50"), std::string::npos) << e.what();
  }
}

TEST(Backbones, Ir50StateDictHasTheOfficialNames) {
  auto m = qb::make_backbone("ir_50");
  auto sd = qb::state_dict(*m);
  EXPECT_EQ(sd.size(), 467u);
  std::set<std::string> names;
  for (const auto& [k, v] : sd) names.insert(k);
  for (const char* k :
       {"input_layer.0.weight", "input_layer.1.running_var", "input_layer.2.weight", "body.0.res_layer.0.weight",
        "body.0.res_layer.1.weight", "body.0.res_layer.3.weight", "body.0.res_layer.5.num_batches_tracked",
        "body.3.shortcut_layer.0.weight", "body.3.shortcut_layer.1.bias", "body.23.res_layer.4.weight",
        "output_layer.0.weight", "output_layer.3.weight", "output_layer.3.bias", "output_layer.4.running_mean"})
    EXPECT_TRUE(names.count(k)) << k;
  // Stage 1 keeps 64 channels: subsampling shortcut, no parameters.
  EXPECT_FALSE(names.count("body.0.shortcut_layer.0.weight"));
  // The final BatchNorm1d has no affine terms.
  EXPECT_FALSE(names.count("output_layer.4.weight"));
  EXPECT_EQ(count_params(*m), ir_param_count({3, 4, 14, 3}, false));
}

TEST(Backbones, ParameterCountsMatchHandDerivedValues) {
  EXPECT_EQ(count_params(*qb::make_backbone("ir_18")), ir_param_count({2, 2, 2, 2}, false));
  EXPECT_EQ(count_params(*qb::make_backbone("ir_34")), ir_param_count({3, 4, 6, 3}, false));
  EXPECT_EQ(count_params(*qb::make_backbone("ir_101")), ir_param_count({3, 13, 30, 3}, false));
  EXPECT_EQ(count_params(*qb::make_backbone("ir_se_50")), ir_param_count({3, 4, 14, 3}, true));
  EXPECT_EQ(count_params(*qb::make_backbone("iresnet18")), iresnet_param_count({2, 2, 2, 2}));
  EXPECT_EQ(count_params(*qb::make_backbone("iresnet100")), iresnet_param_count({3, 13, 30, 3}));
  auto se = qb::state_dict(*qb::make_backbone("ir_se_50"));
  bool has_se = false;
  for (const auto& [k, v] : se) has_se |= k == "body.0.res_layer.se_block.fc1.weight";
  EXPECT_TRUE(has_se);
  // MobileFaceNet: ~1M parameters (the paper's "0.99M" excludes the 512x512 embedding layer's share).
  const int64_t mfn = count_params(*qb::make_backbone("mobilefacenet"));
  EXPECT_GT(mfn, 900'000);
  EXPECT_LT(mfn, 1'300'000);
}

TEST(Backbones, MacsMatchThePublishedCost) {
  // docs/method.md, Backbones: IR-50 is about 12.6 GFLOP (6.3 GMAC) per 112x112 image.
  EXPECT_NEAR(qb::macs_per_image("ir_50") / 1e9, 6.3, 0.2);
  // MobileFaceNet: about 0.2 GMACs (docs/method.md, Backbones).
  EXPECT_NEAR(qb::macs_per_image("mobilefacenet") / 1e9, 0.22, 0.05);
}

TEST(Backbones, OutputsAreNormalizedEmbeddingsAndNorms) {
  torch::NoGradGuard g;
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({2, 3, 112, 112});
  for (const char* arch : {"ir_18", "iresnet18", "mobilefacenet"}) {
    auto m = qb::make_backbone(arch);
    m->eval();
    auto [e, n] = m->forward(x);
    EXPECT_EQ(e.sizes(), (std::vector<int64_t>{2, 512})) << arch;
    EXPECT_EQ(n.sizes(), (std::vector<int64_t>{2, 1})) << arch;
    EXPECT_TRUE(torch::allclose(e.norm(2, 1), torch::ones({2}), 1e-5, 1e-5)) << arch;
    EXPECT_TRUE((n > 0).all().item<bool>()) << arch;
  }
}

TEST(Backbones, FoldedBatchNormGivesTheSameEmbeddings) {
  torch::NoGradGuard g;
  for (const char* arch : {"ir_18", "ir_se_50", "iresnet18", "mobilefacenet"}) {
    auto m = qb::make_backbone(arch);
    randomize_bn(*m, 3);
    m->eval();
    torch::manual_seed(4);
    torch::Tensor x = torch::randn({2, 3, 112, 112});
    auto [e0, n0] = m->forward(x);
    m->fold_batchnorm();
    ASSERT_TRUE(m->folded());
    auto [e1, n1] = m->forward(x);
    EXPECT_LT((e0 - e1).abs().max().item<double>(), 1e-4) << arch;
    EXPECT_LT(((n0 - n1).abs() / n0).max().item<double>(), 1e-4) << arch;
    m->fold_batchnorm();  // idempotent
    auto [e2, n2] = m->forward(x);
    EXPECT_TRUE(torch::equal(e1, e2)) << arch;
  }
}

// make_backbone_for_weights builds the same network without drawing random
// numbers: the default generator is where it was, the layout is the same, and
// once the weights are copied in, the embeddings are bitwise those of a network
// built the usual way. uniform_ works again after it returns.
TEST(Backbones, BuildingForWeightsSkipsOnlyTheRandomInit) {
  torch::NoGradGuard g;
  for (const char* arch : {"ir_18", "iresnet18", "mobilefacenet"}) {
    torch::manual_seed(7);
    const torch::Tensor first_draw = torch::rand({16});
    torch::manual_seed(7);
    auto loaded = qb::make_backbone_for_weights(arch);
    EXPECT_TRUE(torch::equal(torch::rand({16}), first_draw)) << arch << ": the build drew random numbers";

    torch::manual_seed(8);
    auto reference = qb::make_backbone(arch);
    randomize_bn(*reference, 9);
    const auto want = qb::state_dict(*reference);
    const auto got = qb::state_dict(*loaded);
    ASSERT_EQ(got.size(), want.size()) << arch;
    for (std::size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i].first, want[i].first) << arch;
      ASSERT_EQ(got[i].second.sizes(), want[i].second.sizes()) << arch << " " << want[i].first;
      got[i].second.copy_(want[i].second);
    }
    reference->eval();
    loaded->eval();
    torch::manual_seed(10);
    const torch::Tensor x = torch::randn({2, 3, 112, 112});
    EXPECT_TRUE(torch::equal(loaded->forward(x).first, reference->forward(x).first)) << arch;
  }
  torch::Tensor t = torch::full({64}, 7.0f);
  t.uniform_(0, 1);
  EXPECT_LT(t.max().item<float>(), 1.0f);
}

TEST(Backbones, StateDictsMatchThePythonReference) {
  const std::string& py = qt::python_with_torch();
  if (py.empty()) GTEST_SKIP() << "no /usr/bin/python3 with torch";
  const std::string script =
      "import sys; sys.path.insert(0, sys.argv[1]); import qface_ref_models as R\n"
      "for a in sys.argv[2:]:\n"
      "  for k, v in R.make(a).state_dict().items(): print(a, k, 'x'.join(map(str, v.shape)) or 'scalar')\n";
  std::vector<std::string> archs = {"ir_18", "ir_se_50", "ir_101", "iresnet18", "iresnet50", "mobilefacenet"};
  std::vector<std::string> args = {"-c", script, qt::source_dir() + "/bench/python"};
  args.insert(args.end(), archs.begin(), archs.end());
  auto r = qt::run_program(py, args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::set<std::string>> expected;
  std::istringstream in(r.out);
  std::string arch, key, shape;
  while (in >> arch >> key >> shape) expected[arch].insert(key + " " + shape);
  for (const auto& a : archs) {
    std::set<std::string> got;
    for (const auto& [k, v] : qb::state_dict(*qb::make_backbone(a))) {
      std::string s;
      for (auto d : v.sizes()) s += (s.empty() ? "" : "x") + std::to_string(d);
      got.insert(k + " " + (s.empty() ? "scalar" : s));
    }
    EXPECT_EQ(got, expected[a]) << a;
  }
}
