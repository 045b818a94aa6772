// The face renderer: draws an identity under an image's nuisances with OpenCV
// (anti-aliased polygons with sub-pixel precision at 2x the output size,
// per-pixel Lambertian shading of an ellipsoid head, skin texture), places it
// with a similarity transform that maps its five landmarks onto the 112x112
// template (data/alignment.h, least squares; docs/method.md, Alignment), and
// then applies the image degradations (blur, low resolution, sensor noise,
// JPEG) at the output size. The landmarks are known exactly: they are projected
// from the 3-D face model, not detected.
#pragma once

#include <opencv2/core.hpp>

#include <array>

#include "qface/data/alignment.h"
#include "qface/synth/identity.h"
#include "qface/synth/nuisance.h"

namespace qface::synth {

using Landmarks = data::Points5;  // left eye, right eye, nose, left mouth, right mouth (image left/right)

struct Rendered {
  cv::Mat image;        // 8-bit BGR
  Landmarks landmarks;  // in `image` pixels
};

// Aligned 112 x 112 face (landmarks at the template up to the pose's non-rigid part).
Rendered render_aligned(const Identity& id, const ImageNuisance& n);

// A loose crop of `size` x `size` with the face at a random scale, offset and
// in-plane rotation (roll kept), as a detector would give it (IJB-style).
Rendered render_loose(const Identity& id, const ImageNuisance& n, int size);

}  // namespace qface::synth
