// Faces rendered into memory rather than into a dataset: the contact sheet of
// `qface synth --preview` and sample_faces.
#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include "qface/core/error.h"
#include "qface/core/parallel.h"
#include "qface/synth/generate.h"
#include "qface/synth/render.h"
#include "qface/synth/rng.h"
#include "qface/synth/writer.h"

namespace qface::synth {
using namespace detail;  // writer.h: the seed streams

cv::Mat preview_sheet(int rows, const SynthOptions& o) {
  require(rows >= 1 && rows <= 200, "synth: --preview takes 1..200 identities, got {}", rows);
  const auto ids = sample_population(o.seed, kIdsTrain, rows, o.population);
  const double bands[7][2] = {{0.95, 1.0}, {0.8, 0.9}, {0.65, 0.75}, {0.5, 0.6}, {0.35, 0.45}, {0.2, 0.3}, {0.0, 0.12}};
  const int cols = 7;
  cv::Mat sheet(rows * 112, cols * 112, CV_8UC3, cv::Scalar(0, 0, 0));
  parallel_for(static_cast<int64_t>(rows) * cols, o.threads, [&](int64_t k) {
    const int r = static_cast<int>(k / cols), c = static_cast<int>(k % cols);
    Rng rng(derive_seed(o.seed, kPreview, static_cast<uint64_t>(k)));
    ImageNuisance n;
    if (c == 0) {
      derive(n, rng);  // all strengths zero: the clean face
      n.roll = 0;
    } else {
      n = sample_nuisance_in_band(rng, o.nuisance, bands[c][0], bands[c][1]);
    }
    Rendered img = render_aligned(ids[static_cast<std::size_t>(r)], n);
    cv::putText(img.image, fmt::format("{:.2f}", n.quality()), {3, 11}, cv::FONT_HERSHEY_PLAIN, 0.8, {0, 255, 255}, 1,
                cv::LINE_AA);
    img.image.copyTo(sheet(cv::Rect(c * 112, r * 112, 112, 112)));
  });
  return sheet;
}

std::vector<cv::Mat> sample_faces(int64_t count, const SynthOptions& o) {
  require(count >= 1 && count <= 100000, "synth: 1..100000 faces, got {}", count);
  const auto ids = sample_population(o.seed, kIdsVal, count, o.population);  // not the training identities
  std::vector<cv::Mat> out(static_cast<std::size_t>(count));
  parallel_for(count, o.threads, [&](int64_t k) {
    Rng rng(derive_seed(o.seed, kSample, static_cast<uint64_t>(k)));
    out[static_cast<std::size_t>(k)] = render_aligned(ids[static_cast<std::size_t>(k)], sample_nuisance(rng, o.nuisance)).image;
  });
  return out;
}

}  // namespace qface::synth
