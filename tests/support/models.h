// Helpers for tests that run networks.
#pragma once

namespace torch::nn {
class Module;
}

namespace qface::testing {

// Gives every BatchNorm non-trivial running statistics (mean ~ N(0, 0.1^2),
// var in [0.75, 1.25)) from the default generator, so that folding and
// inference paths see BN layers that are not the identity.
void randomize_bn_stats(torch::nn::Module& m);

}  // namespace qface::testing
