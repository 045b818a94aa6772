#include "qface/core/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "qface/core/error.h"

namespace qface {
namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  double map(double v) const {  // to [0, 1]
    double a = log ? std::log10(v) : v;
    double l = log ? std::log10(lo) : lo, h = log ? std::log10(hi) : hi;
    return (a - l) / (h - l);
  }
  std::vector<double> ticks() const {
    std::vector<double> t;
    if (log) {
      for (double e = std::floor(std::log10(lo)); e <= std::ceil(std::log10(hi)); e += 1) {
        double v = std::pow(10.0, e);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t.push_back(v);
      }
      return t;
    }
    double span = hi - lo;
    double raw = span / 6;
    double mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
      if (m * mag >= raw) {
        step = m * mag;
        break;
      }
    for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
      t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
    return t;
  }
};

bool usable(double v, bool log) { return std::isfinite(v) && (!log || v > 0); }

Axis make_axis(const std::vector<PlotSeries>& series, bool is_x, bool log, std::optional<double> lo,
               std::optional<double> hi) {
  double mn = std::numeric_limits<double>::infinity(), mx = -mn;
  for (const auto& s : series) {
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.x[i], is_x ? log : false) || !usable(s.y[i], is_x ? false : log)) continue;
      double v = is_x ? s.x[i] : s.y[i];
      if (!usable(v, log)) continue;
      mn = std::min(mn, v);
      mx = std::max(mx, v);
    }
  }
  Axis a;
  a.log = log;
  if (!std::isfinite(mn)) fail("plot: no finite points to draw");
  if (mn == mx) {
    double pad = log ? mn * 0.5 : (mn == 0 ? 1.0 : std::abs(mn) * 0.1);
    mn -= pad;
    mx += log ? mx : pad;
  } else if (!log) {
    double pad = (mx - mn) * 0.04;
    mn -= pad;
    mx += pad;
  }
  a.lo = lo.value_or(mn);
  a.hi = hi.value_or(mx);
  if (!(a.hi > a.lo)) fail("plot: empty axis range [{}, {}]", a.lo, a.hi);
  return a;
}

std::string tick_label(double v, bool log) {
  if (log) return fmt::format("1e{}", static_cast<int>(std::lround(std::log10(v))));
  std::string s = fmt::format("{:.6g}", v);
  return s;
}

}  // namespace

std::string render_svg(const PlotOptions& o, const std::vector<PlotSeries>& series) {
  const Axis ax = make_axis(series, true, o.log_x, o.x_min, o.x_max);
  const Axis ay = make_axis(series, false, o.log_y, o.y_min, o.y_max);
  const double left = 64, right = 16 + (series.size() > 1 ? 150 : 0), top = o.title.empty() ? 16 : 36,
               bottom = 48;
  const double pw = o.width - left - right, ph = o.height - top - bottom;
  auto px = [&](double v) { return left + std::clamp(ax.map(v), -0.02, 1.02) * pw; };
  auto py = [&](double v) { return top + (1 - std::clamp(ay.map(v), -0.02, 1.02)) * ph; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      o.width, o.height);
  if (!o.title.empty())
    svg += fmt::format("<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
                       left + pw / 2, escape_markup(o.title));
  // grid and ticks
  for (double t : ax.ticks()) {
    double x = px(t);
    svg += fmt::format("<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{0:.2f}\" y2=\"{2:.2f}\" stroke=\"#e5e5e5\"/>\n", x,
                       top, top + ph);
    svg += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\">{}</text>\n", x, top + ph + 16,
                       tick_label(t, ax.log));
  }
  for (double t : ay.ticks()) {
    double y = py(t);
    svg += fmt::format("<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{2:.2f}\" y2=\"{1:.2f}\" stroke=\"#e5e5e5\"/>\n",
                       left, y, left + pw);
    svg += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"end\">{}</text>\n", left - 6, y + 4,
                       tick_label(t, ay.log));
  }
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", left,
                     top, pw, ph);
  svg += fmt::format("<text x=\"{:.2f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + pw / 2,
                     o.height - 10, escape_markup(o.x_label));
  svg += fmt::format(
      "<text x=\"14\" y=\"{0:.2f}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {0:.2f})\">{1}</text>\n",
      top + ph / 2, escape_markup(o.y_label));

  int drawn = 0;
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const std::string color = s.color.empty() ? kPalette[k % std::size(kPalette)] : s.color;
    std::string pts;
    int n = 0;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!usable(s.x[i], ax.log) || !usable(s.y[i], ay.log)) continue;
      if (s.style == PlotSeries::Style::kLine) {
        pts += fmt::format("{:.2f},{:.2f} ", px(s.x[i]), py(s.y[i]));
      } else {
        pts += fmt::format("<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"2\"/>", px(s.x[i]), py(s.y[i]));
      }
      ++n;
    }
    if (n == 0) continue;
    ++drawn;
    if (s.style == PlotSeries::Style::kLine)
      svg += fmt::format("<polyline class=\"series\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\" points=\"{}\"/>\n",
                         color, pts);
    else
      svg += fmt::format("<g class=\"series\" fill=\"{}\" fill-opacity=\"0.6\">{}</g>\n", color, pts);
    if (series.size() > 1) {
      double ly = top + 14 + 18 * static_cast<double>(k);
      svg += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"12\" height=\"4\" fill=\"{}\"/>", left + pw + 10,
                         ly - 4, color);
      svg += fmt::format("<text x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n", left + pw + 28, ly, escape_markup(s.label));
    }
  }
  if (drawn == 0) fail("plot: no series has a point to draw");
  svg += "</svg>\n";
  return svg;
}

std::string escape_markup(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace qface
