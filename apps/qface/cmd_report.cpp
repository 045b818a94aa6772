// qface report: one self-contained HTML page from eval JSON files and training logs.
#include <spdlog/spdlog.h>

#include "apps/qface/command.h"
#include "qface/core/fs.h"
#include "qface/eval/report.h"

namespace qface::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> runs;
  std::string out = "report.html", title = "qface evaluation report";
};

int run_report(const ReportArgs& a) {
  std::vector<std::filesystem::path> runs(a.runs.begin(), a.runs.end());
  eval::ReportStats stats;
  const std::string html = eval::build_report(runs, &stats, a.title);
  const std::filesystem::path out(a.out);
  if (out.has_parent_path()) ensure_dir(out.parent_path());
  write_file_atomic(out, html);
  spdlog::info("report: {} runs, {} result files, {} plots, {} tables -> {}", stats.runs, stats.json_files, stats.plots,
               stats.tables, a.out);
  return 0;
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  app.add_option("--runs", a->runs, "run folders (searched recursively for eval JSON and metrics.jsonl) or files")
      ->required()
      ->check(CLI::ExistingPath);
  app.add_option("--out", a->out, "HTML output")->capture_default_str();
  app.add_option("--title", a->title, "page title")->capture_default_str();
  return [a] { return run_report(*a); };
}

const Registrar registrar{{"report", "Self-contained HTML report (ROC, ERC/EDC, norm vs quality, training curves, tables)", setup}};

}  // namespace
}  // namespace qface::cli
