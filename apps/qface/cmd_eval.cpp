// qface eval <verb>: the evaluation protocols (docs/method.md) on precomputed
// features (`qface embed` output folders), one verb a file (cmd_eval_*.cpp).
// Each verb writes one JSON (kind "eval.<verb>") that `qface report` reads.
#include "apps/qface/command.h"

namespace qface::cli {
namespace {

const Registrar registrar{{"eval", "Evaluation protocols on features: verify, ijb, ijbs, rank, quality, cluster",
                           [](CLI::App& app) -> Runner {
                             app.require_subcommand(1);
                             return nullptr;
                           }}};

}  // namespace
}  // namespace qface::cli
