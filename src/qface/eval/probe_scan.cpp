#include "qface/eval/probe_scan.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "qface/core/error.h"

namespace qface::eval {

void ProbeOutcomes::resize(int64_t n) {
  mated.resize(n, 0);
  rank.resize(n, 0);
  mate_score.resize(n, -std::numeric_limits<float>::infinity());
  top_score.resize(n, -std::numeric_limits<float>::infinity());
}

ProbeOutcomes score_probes(const torch::Tensor& probe_features, const std::vector<int64_t>& probe_subject,
                           const torch::Tensor& gallery_features, const std::vector<int64_t>& gallery_subject,
                           int64_t chunk) {
  const int64_t P = probe_features.size(0), G = gallery_features.size(0);
  require(static_cast<int64_t>(probe_subject.size()) == P && static_cast<int64_t>(gallery_subject.size()) == G,
          "identify: subject counts differ from feature rows");
  require(G > 0 && P > 0, "identify: empty gallery or probe set");
  torch::Tensor gal = gallery_features.to(torch::kFloat32).contiguous();
  torch::Tensor prb = probe_features.to(torch::kFloat32).contiguous();
  ProbeOutcomes o;
  o.resize(P);
  for (int64_t c0 = 0; c0 < P; c0 += chunk) {
    const int64_t c1 = std::min(P, c0 + chunk);
    torch::Tensor S = torch::mm(prb.slice(0, c0, c1), gal.t()).contiguous();
    const float* s = S.data_ptr<float>();
    at::parallel_for(c0, c1, 64, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const float* row = s + (p - c0) * G;
        float best = -std::numeric_limits<float>::infinity(), m = best;
        bool has = false;
        for (int64_t g = 0; g < G; ++g) {
          best = std::max(best, row[g]);
          if (gallery_subject[g] == probe_subject[p]) {
            m = std::max(m, row[g]);
            has = true;
          }
        }
        o.top_score[p] = best;
        o.mated[p] = has;
        if (has) {
          o.mate_score[p] = m;
          int64_t above = 0;
          for (int64_t g = 0; g < G; ++g)
            if (gallery_subject[g] != probe_subject[p] && row[g] > m) ++above;
          o.rank[p] = above + 1;
        }
      }
    });
  }
  return o;
}

}  // namespace qface::eval
