// Builds a head by name from one flat set of options; options left unset take
// the paper defaults of the chosen head.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "qface/heads/head.h"

namespace qface::heads {

struct HeadConfig {
  std::string name = "adaface";  // adaface | magface | magface-cos | arcface | cosface | curricularface
  int64_t embedding_size = 512;
  int64_t num_classes = 0;
  std::optional<double> m, s, eps;                     // margin (not MagFace), scale, cosine clamp
  std::optional<double> t_alpha;                       // AdaFace (norm statistics) / CurricularFace (t) EMA momentum
  std::optional<double> h, batch_mean, batch_std;      // AdaFace
  std::optional<std::string> stats_init;               // AdaFace: "official" | "first_batch"
  std::optional<double> fixed_z;                       // AdaFace: z held at this value in [-1, 1]
  std::optional<double> l_a, u_a, l_m, u_m, lambda_g;  // MagFace
  std::optional<bool> easy_margin;                     // MagFace
};

const std::vector<std::string>& head_names();

// Throws qface::Error for an unknown name or an option the head does not take.
Head make_head(const HeadConfig& config);

}  // namespace qface::heads
