// qface bench <verb>: speed benchmarks, each reported as ratios against the
// Python reference run in the same invocation, with the machine named (one
// verb a file in this folder).
#include "apps/qface/command.h"

namespace qface::cli {
namespace {

const Registrar registrar{{"bench",
                           "Speed against the Python reference, measured in one run: detect (also recall, against "
                           "face-api's JavaScript), eval, ijbs, infer, loader, search, train",
                           [](CLI::App& app) -> Runner {
                             app.require_subcommand(1);
                             return nullptr;
                           }}};

}  // namespace
}  // namespace qface::cli
