// `qface report`: one self-contained HTML page (inline SVG, no external
// resources) from the JSON files the `qface eval` verbs write (their "kind"
// field: eval.verify, eval.ijb, eval.ijbs, eval.rank, eval.quality, eval.cluster) and the
// training log metrics.jsonl (step, loss, acc, lr, norm_mean, norm_std,
// batch_mean, batch_std, AdaFace's z quantiles z_q05 / z_q50 / z_q95, img_s)
// found under each run folder.
// Every plot sits in <figure class="plot">; a small inline script marks each
// figure data-drawn="1" once its SVG series have a non-empty bounding box, and
// the body data-plots-drawn / data-plots-total, so a headless browser can check
// the page really drew.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace qface::eval {

struct ReportStats {
  int plots = 0, tables = 0, runs = 0, json_files = 0;
};

// Throws qface::Error when a run folder is missing or holds nothing to report.
std::string build_report(const std::vector<std::filesystem::path>& runs, ReportStats* stats = nullptr,
                         const std::string& title = "qface evaluation report");

}  // namespace qface::eval
