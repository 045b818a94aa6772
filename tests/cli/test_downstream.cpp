// A downstream CMake project (examples/cpp/embed) built against an installed
// qface: `cmake --install` of this build, find_package(qface), qface::qface.
// Its embedding of a face must be the library's own, value for value.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <sstream>

#include "qface/backbones/backbone.h"
#include "qface/data/tools.h"
#include "qface/infer/embed.h"
#include "qface/infer/precision.h"
#include "qface/io/checkpoint.h"
#include "tests/support/models.h"
#include "tests/support/testing.h"

namespace fs = std::filesystem;
using qface::testing::run_program;

TEST(Downstream, FindPackageProjectBuildsAndEmbedsLikeTheLibrary) {
  qface::testing::TempDir dir;
  const auto install = run_program(QFACE_CMAKE, {"--install", QFACE_BUILD_DIR, "--prefix", (dir / "prefix").string()});
  ASSERT_EQ(install.exit_code, 0) << install.out << install.err;
  ASSERT_TRUE(fs::exists(dir / "prefix/include/qface/qface.h"));
  ASSERT_TRUE(fs::exists(dir / "prefix/include/qface/version.h"));

  const std::string example = qface::testing::source_dir() + "/examples/cpp/embed";
  const auto configure =
      run_program(QFACE_CMAKE, {"-S", example, "-B", (dir / "build").string(), "-G", QFACE_CMAKE_GENERATOR,
                                "-DCMAKE_MAKE_PROGRAM=" QFACE_MAKE_PROGRAM, "-DCMAKE_BUILD_TYPE=Release",
                                "-DCMAKE_PREFIX_PATH=" + (dir / "prefix").string()});
  ASSERT_EQ(configure.exit_code, 0) << configure.out << configure.err;
  const auto build = run_program(QFACE_CMAKE, {"--build", (dir / "build").string()});
  ASSERT_EQ(build.exit_code, 0) << build.out << build.err;

  // A model file (random weights, non-trivial BatchNorm) and an aligned face.
  torch::manual_seed(3);
  auto net = qface::backbones::make_backbone("mobilefacenet");
  qface::testing::randomize_bn_stats(*net);
  const fs::path weights = dir / "model.pt";
  qface::io::save_checkpoint(weights, *net, "mobilefacenet");
  const cv::Mat face = qface::data::draw_test_face(5, 1);
  ASSERT_EQ(face.rows, 112);
  const fs::path image = dir / "face.png";
  ASSERT_TRUE(cv::imwrite(image.string(), face));

  const auto run = run_program((dir / "build/embed_face").string(), {weights.string(), image.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::istringstream out(run.out);
  std::string word;
  double norm = 0;
  out >> word >> norm;
  ASSERT_EQ(word, "norm") << run.out;
  std::vector<double> values;
  for (double v; out >> v;) values.push_back(v);

  qface::infer::LoadedModel m = qface::infer::load_for_inference({"", weights, false, qface::infer::Precision::kFp32});
  const auto e = qface::infer::embed(*m.model, qface::infer::preprocess({face}, m.model->preprocessing()), m.options);
  EXPECT_NEAR(norm, e.norms[0].item<double>(), 1e-5 * e.norms[0].item<double>());
  ASSERT_EQ(static_cast<int64_t>(values.size()), e.embeddings.size(1));
  for (std::size_t i = 0; i < values.size(); ++i)
    EXPECT_NEAR(values[i], e.embeddings[0][static_cast<int64_t>(i)].item<double>(), 1e-5) << "value " << i;
}
