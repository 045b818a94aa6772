#include "qface/eval/report.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <limits>
#include <optional>
#include <set>

#include "qface/core/error.h"
#include "qface/core/fs.h"
#include "qface/core/svg_plot.h"
#include "qface/eval/features.h"

namespace qface::eval {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string num(const json& v, int digits = 4) {
  if (!v.is_number()) return "–";
  return fmt::format("{:.{}f}", v.get<double>(), digits);
}

// TAR@FAR cell of an eval.verify mode: "—" where the impostors do not resolve it.
std::string tar_cell(const json& mode, double far) {
  for (const json& v : mode.value("tar_at_far_folds", json::array()))
    if (std::abs(v.value("far", 0.0) - far) <= 1e-12 * far)
      return v.value("resolved", false) && v["tar_mean"].is_number()
                 ? fmt::format("{:.2f} ± {:.2f}", 100 * v["tar_mean"].get<double>(), 100 * v["tar_std"].get<double>())
                 : "—";
  return "—";
}

std::string pct(const json& v) {
  if (!v.is_number()) return "–";
  return fmt::format("{:.2f}", 100 * v.get<double>());
}

struct Doc {
  std::vector<std::string> sections;
  int plots = 0, tables = 0;
  void plot(const PlotOptions& o, const std::vector<PlotSeries>& s) {
    std::vector<PlotSeries> usable;
    for (const auto& x : s)
      if (!x.x.empty()) usable.push_back(x);
    if (usable.empty()) return;
    // A flat series (e.g. FNMR 0 everywhere) gives an empty axis range: widen it.
    PlotOptions opt = o;
    auto widen = [](const std::vector<PlotSeries>& ss, bool use_x, bool log, std::optional<double>& lo_opt,
                    std::optional<double>& hi_opt) {
      double lo = std::numeric_limits<double>::infinity(), hi = -lo;
      for (const auto& x : ss)
        for (double v : use_x ? x.x : x.y)
          if (std::isfinite(v) && (!log || v > 0)) lo = std::min(lo, v), hi = std::max(hi, v);
      if (lo_opt) lo = std::min(lo, *lo_opt);
      if (hi_opt) hi = std::max(hi, *hi_opt);
      if (!(hi > lo) && std::isfinite(lo)) {
        if (log) {
          lo_opt = lo / 10;
          hi_opt = lo * 10;
        } else {
          lo_opt = lo - 0.5;
          hi_opt = lo + 0.5;
          if (lo >= 0 && lo < 0.5) lo_opt = 0.0, hi_opt = 1.0;
        }
      }
    };
    widen(usable, true, opt.log_x, opt.x_min, opt.x_max);
    widen(usable, false, opt.log_y, opt.y_min, opt.y_max);
    try {
      sections.push_back("<figure class=\"plot\">" + render_svg(opt, usable) + "</figure>\n");
      ++plots;
    } catch (const Error& e) {
      spdlog::warn("report: plot '{}' skipped: {}", o.title, e.what());
    }
  }
  void table(const std::string& caption, const std::vector<std::string>& head,
             const std::vector<std::vector<std::string>>& rows) {
    if (rows.empty()) return;
    std::string t = "<table><caption>" + escape_markup(caption) + "</caption><tr>";
    for (const auto& h : head) t += "<th>" + escape_markup(h) + "</th>";
    t += "</tr>\n";
    for (const auto& r : rows) {
      t += "<tr>";
      for (const auto& c : r) t += "<td>" + escape_markup(c) + "</td>";
      t += "</tr>\n";
    }
    sections.push_back(t + "</table>\n");
    ++tables;
  }
  void heading(const std::string& h) { sections.push_back("<h2>" + escape_markup(h) + "</h2>\n"); }
};

std::vector<double> vec(const json& j) {
  std::vector<double> v;
  if (j.is_array())
    for (const auto& x : j) v.push_back(x.is_number() ? x.get<double>() : std::nan(""));
  return v;
}

struct Item {
  std::string run;
  fs::path file;
  json j;
};
using ItemsByKind = std::map<std::string, std::vector<Item>>;
using Training = std::vector<std::pair<std::string, std::vector<json>>>;  // (run, metrics.jsonl records)

// AdaFace's z over training (the trainer's z_q05 / z_q50 / z_q95 per log
// window): one chart, three lines per AdaFace run; drawn only when some run
// logged them.
void plot_z_quantiles(Doc& doc, const Training& training) {
  std::vector<PlotSeries> series;
  for (const auto& [run, recs] : training)
    for (const char* key : {"z_q05", "z_q50", "z_q95"}) {
      PlotSeries s;
      s.label = run + " " + std::string(key).substr(2);
      for (const json& r : recs)
        if (r.contains("step") && r.contains(key) && r[key].is_number()) {
          s.x.push_back(r["step"].get<double>());
          s.y.push_back(r[key].get<double>());
        }
      if (!s.x.empty()) series.push_back(std::move(s));
    }
  PlotOptions o;
  o.title = "Training: AdaFace z (5 / 50 / 95 % quantiles)";
  o.x_label = "step";
  o.y_label = "z (-1 ArcFace, 0 CosFace, +1 hard)";
  o.y_min = -1.0;
  o.y_max = 1.0;
  doc.plot(o, series);
}

// What the run folders hold: eval JSONs by kind, training logs by run.
struct RunFiles {
  ItemsByKind by_kind;
  Training training;
  int json_files = 0;
};

std::vector<json> read_metrics_log(const fs::path& f) {
  std::vector<json> rows;
  const std::vector<std::string> lines = read_lines(f);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    try {
      rows.push_back(json::parse(lines[i]));
    } catch (const json::exception&) {
      spdlog::warn("report: {}:{}: not JSON, skipped", f.string(), i + 1);
    }
  }
  return rows;
}

// Adds one file of a run: an eval JSON (kind eval.*) or a metrics.jsonl; anything else is ignored.
void add_run_file(RunFiles& out, const std::string& run_name, const fs::path& f) {
  if (f.extension() == ".json") {
    json j;
    try {
      j = json::parse(read_file(f));
    } catch (const json::exception& e) {
      spdlog::warn("report: {} is not valid JSON ({}), skipped", f.string(), e.what());
      return;
    }
    if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string()) return;
    const std::string kind = j["kind"];
    if (kind.rfind("eval.", 0) != 0) return;
    const std::string name = j.value("name", std::string());
    out.by_kind[kind].push_back({name.empty() ? run_name : name, f, j});
    ++out.json_files;
  } else if (f.filename() == "metrics.jsonl") {
    std::vector<json> rows = read_metrics_log(f);
    if (!rows.empty()) {
      out.training.push_back({run_name, std::move(rows)});
      ++out.json_files;
    }
  }
}

RunFiles read_runs(const std::vector<fs::path>& runs) {
  RunFiles out;
  for (const fs::path& run : runs) {
    require(fs::exists(run), "{}: run folder not found", run.string());
    const std::string run_name = (fs::is_directory(run) ? run : run.parent_path()).filename().string();
    std::vector<fs::path> files;
    if (fs::is_directory(run)) {
      for (const auto& e : fs::recursive_directory_iterator(run))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.push_back(run);
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) add_run_file(out, run_name, f);
  }
  require(out.json_files > 0, "report: no eval JSON (kind eval.*) or metrics.jsonl under {}", runs.front().string());
  return out;
}

// TPIR (%) at `fpir` of a tpir_at_fpir list; "–" where the list lacks it.
std::string tpir_cell(const json& points, double fpir) {
  std::string cell = "–";
  for (const json& p : points)
    if (std::abs(p.value("fpir", 0.0) - fpir) < 1e-12) cell = pct(p["tpir"]);
  return cell;
}

PlotOptions roc_plot(const std::string& title) {
  PlotOptions o;
  o.title = title;
  o.x_label = "FAR";
  o.y_label = "TAR";
  o.log_x = true;
  o.y_min = 0;
  o.y_max = 1;
  return o;
}

void verification_section(Doc& doc, const std::vector<Item>& items) {
  doc.heading("1:1 verification (10-fold, .bin sets)");
  std::vector<std::vector<std::string>> rows;
  std::map<std::string, std::vector<PlotSeries>> roc_by_set;
  for (const Item& it : items) {
    for (const json& s : it.j.value("sets", json::array())) {
      const std::string set = s.value("set", std::string("?"));
      const json modes = s.value("modes", json::object());
      for (auto& [mode, r] : modes.items()) {
        rows.push_back({it.run, set, mode, fmt::format("{} ± {}", pct(r["accuracy_mean"]), pct(r["accuracy_std"])),
                        num(r["best_threshold_mean"], 2),
                        tar_cell(r, 1e-3), tar_cell(r, 1e-2)});
        if (r.contains("roc")) {
          PlotSeries ps;
          ps.label = it.run + " " + mode;
          ps.x = vec(r["roc"]["curve"]["fpr"]);
          ps.y = vec(r["roc"]["curve"]["tpr"]);
          roc_by_set[set].push_back(ps);
        }
      }
    }
  }
  doc.table("Accuracy (%) mean ± std over 10 folds; TAR@FAR (%) InsightFace VAL, mean over folds, "
            "\"—\" where a test fold has fewer than 1/FAR impostors",
            {"run", "set", "features", "accuracy", "best threshold", "TAR@FAR=1e-3", "TAR@FAR=1e-2"}, rows);
  for (auto& [set, series] : roc_by_set) doc.plot(roc_plot("ROC " + set), series);
}

void ijb_section(Doc& doc, const std::vector<Item>& items) {
  doc.heading("IJB 1:1 and 1:N");
  std::vector<std::vector<std::string>> rows, rows_n;
  std::vector<PlotSeries> roc;
  std::set<double> fars;
  for (const Item& it : items)
    if (it.j.contains("verification"))
      for (const json& t : it.j["verification"]["tar_at_far"]) fars.insert(t["far"].get<double>());
  std::vector<std::string> head{"run", "templates", "pairs"};
  for (double f : fars) head.push_back(fmt::format("TAR@{:.0e}", f));
  for (const Item& it : items) {
    if (it.j.contains("verification")) {
      const json& v = it.j["verification"];
      std::vector<std::string> row{it.run, std::to_string(it.j.value("templates", 0)),
                                   std::to_string(v.value("genuine", 0) + v.value("impostor", 0))};
      for (double f : fars) {
        std::string cell = "–";
        for (const json& t : v["tar_at_far"])
          if (t["far"].get<double>() == f) cell = pct(t["tar"]);
        row.push_back(cell);
      }
      rows.push_back(row);
      PlotSeries ps;
      ps.label = it.run;
      ps.x = vec(v["curve"]["fpr"]);
      ps.y = vec(v["curve"]["tpr"]);
      roc.push_back(ps);
    }
    if (it.j.contains("identification")) {
      const json& m = it.j["identification"]["mean"];
      const json points = m.value("tpir_at_fpir", json::array());
      rows_n.push_back({it.run, pct(m["cmc"]["top1"]), pct(m["cmc"]["top5"]), pct(m["cmc"]["top10"]),
                        tpir_cell(points, 0.01), tpir_cell(points, 0.1)});
    }
  }
  doc.table("IJB 1:1 TAR (%) at FAR", head, rows);
  doc.table("IJB 1:N (%), mean of G1 and G2", {"run", "top-1", "top-5", "top-10", "TPIR@FPIR=0.01", "TPIR@FPIR=0.1"},
            rows_n);
  doc.plot(roc_plot("IJB 1:1 ROC"), roc);
}

void surveillance_section(Doc& doc, const std::vector<Item>& items) {
  doc.heading("IJB-S surveillance identification");
  std::vector<std::vector<std::string>> rows;
  for (const Item& it : items) {
    for (const json& p : it.j.value("protocols", json::array())) {
      const json points = p.value("tpir_at_fpir", json::array());
      const json cmc = p.value("cmc", json::object());
      rows.push_back({it.run, it.j.value("fusion", std::string("?")), p.value("protocol", std::string("?")),
                      fmt::format("{} / {}", p.value("mated_probes", 0), p.value("nonmated_probes", 0)),
                      std::to_string(p.value("gallery_templates", 0)), pct(cmc.value("top1", json())),
                      pct(cmc.value("top5", json())), pct(cmc.value("top10", json())), tpir_cell(points, 0.01),
                      tpir_cell(points, 0.1)});
    }
  }
  doc.table("Video probes against single photos, booking sets and other videos (%): rank-k over mated probes; "
            "TPIR: mate at rank 1 above the threshold set by the non-mated probes' top scores",
            {"run", "fusion", "protocol", "probes mated / non-mated", "gallery", "rank-1", "rank-5", "rank-10",
             "TPIR@FPIR=0.01", "TPIR@FPIR=0.1"},
            rows);
}

void rank_section(Doc& doc, const std::vector<Item>& items) {
  doc.heading("TinyFace-style identification");
  std::vector<std::vector<std::string>> rows;
  for (const Item& it : items) {
    const json& r = it.j["result"];
    rows.push_back({it.run, std::to_string(r.value("probes", 0)), std::to_string(r.value("gallery", 0)),
                    std::to_string(r.value("distractors", 0)), pct(r["rank"]["1"]), pct(r["rank"]["5"]),
                    pct(r["rank"]["20"])});
  }
  doc.table("Rank-k accuracy (%)", {"run", "probes", "gallery", "distractors", "rank-1", "rank-5", "rank-20"}, rows);
}

// ERC, EDC and (when given) the norm-vs-ground-truth scatter of one eval.quality file.
void quality_plots(Doc& doc, const Item& it) {
  std::vector<PlotSeries> ercs, edcs;
  const json scores = it.j.value("scores", json::object());
  for (auto& [score, s] : scores.items()) {
    PlotSeries e;
    e.label = score;
    e.x = vec(s["erc"]["reject_actual"]);
    e.y = vec(s["erc"]["fnmr"]);
    ercs.push_back(e);
    PlotSeries d;
    d.label = score;
    d.x = vec(s["edc"]["discard"]);
    d.y = vec(s["edc"]["fnmr"]);
    edcs.push_back(d);
  }
  PlotOptions o;
  o.title = "ERC " + it.run + " (FNMR at FMR=1e-3 re-estimated)";
  o.x_label = "rejected fraction of comparisons";
  o.y_label = "FNMR";
  o.x_min = 0;
  o.y_min = 0;
  doc.plot(o, ercs);
  o.title = "EDC " + it.run + " (threshold fixed at FMR=1e-3)";
  o.x_label = "discarded fraction of genuine comparisons";
  doc.plot(o, edcs);
  if (it.j.contains("scatter")) {
    const json& sc = it.j["scatter"];
    PlotSeries p;
    p.label = it.run;
    p.style = PlotSeries::Style::kPoints;
    p.x = vec(sc["x"]);
    p.y = vec(sc["y"]);
    PlotOptions so;
    so.title = "Feature norm vs ground-truth quality, " + it.run;
    so.x_label = sc.value("x_label", std::string("ground-truth quality"));
    so.y_label = sc.value("y_label", std::string("feature norm"));
    doc.plot(so, {p});
  }
}

void quality_section(Doc& doc, const std::vector<Item>& items) {
  doc.heading("Quality assessment (EDC / ERC)");
  std::vector<std::vector<std::string>> rows;
  for (const Item& it : items) {
    const json scores = it.j.value("scores", json::object());
    for (auto& [score, s] : scores.items())
      rows.push_back({it.run, it.j.value("source", std::string()), score,
                      s.contains("spearman_vs_gt") ? num(s["spearman_vs_gt"], 3) : "–", num(s["edc"]["fnmr0"], 4),
                      num(s["edc"]["pauc"], 5), num(s["edc"]["pauc_minus_ideal"], 5)});
    quality_plots(doc, it);
  }
  doc.table("Quality scores: Spearman with ground truth, EDC FNMR0 and pAUC(0..20%)",
            {"run", "comparisons", "score", "Spearman vs GT", "FNMR0", "pAUC", "pAUC - ideal"}, rows);
}

void cluster_section(Doc& doc, const std::vector<Item>& items) {
  doc.heading("Clustering");
  std::vector<std::vector<std::string>> rows;
  for (const Item& it : items) {
    for (const json& r : it.j.value("results", json::array())) {
      const json& m = r["metrics"];
      rows.push_back({it.run, r.value("method", std::string()), num(r["threshold"], 2),
                      std::to_string(m.value("clusters", 0)), std::to_string(m.value("classes", 0)),
                      num(m["pairwise"]["f"]), num(m["bcubed"]["f"]), num(m["nmi"])});
    }
  }
  doc.table("Clustering quality", {"run", "method", "threshold", "clusters", "classes", "pairwise F", "BCubed F", "NMI"},
            rows);
}

// One training-log field over steps, a line per run; the feature norm also
// gets its mean ± std band as two extra lines where the log has norm_std.
std::vector<PlotSeries> training_series(const Training& training, const std::string& field) {
  std::vector<PlotSeries> series;
  for (const auto& [run, recs] : training) {
    PlotSeries s;
    s.label = run;
    for (const json& r : recs)
      if (r.contains("step") && r.contains(field) && r[field].is_number()) {
        s.x.push_back(r["step"].get<double>());
        s.y.push_back(r[field].get<double>());
      }
    series.push_back(s);
    if (field != "norm_mean" || s.x.empty()) continue;
    PlotSeries hi, lo;
    hi.label = run + " +std";
    lo.label = run + " -std";
    for (const json& r : recs)
      if (r.contains("step") && r.contains("norm_mean") && r.contains("norm_std") && r["norm_std"].is_number()) {
        hi.x.push_back(r["step"].get<double>());
        lo.x.push_back(r["step"].get<double>());
        hi.y.push_back(r["norm_mean"].get<double>() + r["norm_std"].get<double>());
        lo.y.push_back(r["norm_mean"].get<double>() - r["norm_std"].get<double>());
      }
    if (!hi.x.empty()) {
      series.push_back(hi);
      series.push_back(lo);
    }
  }
  return series;
}

void training_section(Doc& doc, const Training& training) {
  doc.heading("Training");
  const std::vector<std::pair<std::string, std::string>> fields{
      {"loss", "loss"}, {"acc", "accuracy"}, {"lr", "learning rate"}, {"norm_mean", "feature norm (mean)"},
      {"batch_mean", "AdaFace batch_mean (EMA)"}, {"img_s", "images / s"}};
  for (const auto& [field, label] : fields) {
    PlotOptions o;
    o.title = "Training: " + label;
    o.x_label = "step";
    o.y_label = label;
    o.log_y = field == "lr";
    doc.plot(o, training_series(training, field));
    if (field == "batch_mean") plot_z_quantiles(doc, training);  // the margin those statistics give
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [run, recs] : training) {
    const json& last = recs.back();
    rows.push_back({run, std::to_string(recs.size()), last.contains("step") ? num(last["step"], 0) : "–",
                    num(last.value("loss", json()), 4), num(last.value("acc", json()), 4),
                    num(last.value("norm_mean", json()), 3), num(last.value("img_s", json()), 1)});
  }
  doc.table("Last training record", {"run", "records", "step", "loss", "acc", "norm mean", "img/s"}, rows);
}

// The page around the sections: title, the run list, and the script that
// marks which figures drew (see report.h).
std::string html_page(const std::string& title, const std::vector<fs::path>& runs, const Doc& doc) {
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape_markup(title) +
                     "</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
                     "figure.plot{display:inline-block;margin:0.5em;vertical-align:top}"
                     "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
                     "text-align:right}caption{font-weight:bold;text-align:left}</style></head>\n<body>\n<h1>" +
                     escape_markup(title) + "</h1>\n<p>Runs: ";
  for (size_t i = 0; i < runs.size(); ++i) html += (i ? ", " : "") + escape_markup(runs[i].string());
  html += "</p>\n";
  for (const auto& s : doc.sections) html += s;
  html += R"(<script>
(function () {
  var figs = document.querySelectorAll('figure.plot'), drawn = 0;
  figs.forEach(function (f) {
    var svg = f.querySelector('svg'), ok = false;
    if (svg) {
      var series = svg.querySelectorAll('.series');
      ok = series.length > 0;
      series.forEach(function (s) { var b = s.getBBox(); if (!(b.width > 0 || b.height > 0)) ok = false; });
    }
    f.setAttribute('data-drawn', ok ? '1' : '0');
    if (ok) drawn++;
  });
  document.body.setAttribute('data-plots-total', String(figs.length));
  document.body.setAttribute('data-plots-drawn', String(drawn));
})();
</script>
</body></html>
)";
  return html;
}

}  // namespace

std::string build_report(const std::vector<fs::path>& runs, ReportStats* stats, const std::string& title) {
  require(!runs.empty(), "report: no run folders given");
  const RunFiles in = read_runs(runs);
  Doc doc;
  // Sections in a fixed order, each only when some run has its kind.
  const std::vector<std::pair<const char*, void (*)(Doc&, const std::vector<Item>&)>> sections{
      {"eval.verify", verification_section}, {"eval.ijb", ijb_section},         {"eval.ijbs", surveillance_section},
      {"eval.rank", rank_section},           {"eval.quality", quality_section}, {"eval.cluster", cluster_section}};
  for (const auto& [kind, render] : sections)
    if (const auto it = in.by_kind.find(kind); it != in.by_kind.end()) render(doc, it->second);
  if (!in.training.empty()) training_section(doc, in.training);
  if (stats) {
    stats->plots = doc.plots;
    stats->tables = doc.tables;
    stats->runs = static_cast<int>(runs.size());
    stats->json_files = in.json_files;
  }
  return html_page(title, runs, doc);
}

}  // namespace qface::eval
