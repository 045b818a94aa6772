// qface.synth.generate: the synthetic dataset of `qface synth` (identities
// with ground-truth quality; train.rec, the val .bin strata, IJB, TinyFace, IJB-S).
#include <pybind11/stl.h>

#include "bindings.h"
#include "convert.h"
#include "qface/synth/generate.h"

namespace qface::py {

void bind_synth(pyb::module_ m) {
  m.def(
      "generate",
      [](const std::string& out, const std::string& preset, int64_t seed, int threads, double identity_free) {
        synth::SynthOptions o = synth::preset_options(preset);
        if (seed >= 0) o.seed = static_cast<uint64_t>(seed);
        if (threads > 0) o.threads = threads;
        if (identity_free >= 0) o.identity_free = identity_free;
        synth::SynthSummary s;
        {
          pyb::gil_scoped_release release;
          s = synth::generate(out, o);
        }
        pyb::dict d;
        d["train_images"] = s.train_images;
        d["train_ids"] = s.train_ids;
        d["val_pairs"] = s.val_pairs;
        d["val_cross_pairs"] = s.val_cross_pairs;
        d["identity_free_images"] = s.identity_free_images;
        d["tail_probe_images"] = s.tail_probe_images;
        d["ijb_images"] = s.ijb_images;
        d["tinyface_images"] = s.tinyface_images;
        d["ijbs_images"] = s.ijbs_images;
        d["seconds"] = s.seconds;
        d["options"] = to_python(synth::options_json(o));
        return d;
      },
      pyb::arg("out"), pyb::arg("preset") = "tiny", pyb::arg("seed") = -1, pyb::arg("threads") = 0,
      pyb::arg("identity_free") = -1.0,
      R"(Writes a synthetic face dataset into `out`, as `qface synth --preset`.

`identity_free` (>= 0) replaces the preset's share of identity-free training
images (`qface synth --identity-free`; the study's share is 0.15). Returns the
counts written and the options (manifest.json holds the per-image
ground-truth quality).)");
}

}  // namespace qface::py
