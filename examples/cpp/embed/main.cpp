// Embeds one aligned 112x112 face with a qface model file and prints its norm
// (the quality score of AdaFace and MagFace) and its embedding, one value a
// line: qface's public API (qface/qface.h) from a downstream project.
#include <qface/qface.h>

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s WEIGHTS.pt FACE.png (an aligned 112x112 crop)\n", argv[0]);
    return 2;
  }
  try {
    qface::infer::ModelSpec spec;
    spec.weights = argv[1];  // the architecture is the one the file records
    spec.what = "embed_face";
    qface::infer::LoadedModel m = qface::infer::load_for_inference(spec);
    const cv::Mat face = qface::data::decode_image(qface::read_file(argv[2]), argv[2]);
    const torch::Tensor x = qface::infer::preprocess({face}, m.model->preprocessing());
    const qface::infer::Embeddings e = qface::infer::embed(*m.model, x, m.options);
    std::printf("norm %.7g\n", e.norms[0].item<float>());
    const auto v = e.embeddings[0].contiguous();
    for (int64_t i = 0; i < v.size(0); ++i) std::printf("%.7g\n", v[i].item<float>());
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "embed_face: %s\n", ex.what());
    return 1;
  }
  return 0;
}
