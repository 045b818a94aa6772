// Self-contained SVG charts (lines and scatter points, linear or log axes),
// used by `qface margin --plot` and by the HTML report. Written by hand: no
// Debian package offers a small C++ SVG plotting library.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace qface {

struct PlotSeries {
  enum class Style { kLine, kPoints };
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
  Style style = Style::kLine;
  std::string color;  // empty: taken from the palette
};

struct PlotOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  int width = 640;
  int height = 420;
  bool log_x = false;
  bool log_y = false;
  std::optional<double> x_min, x_max, y_min, y_max;
};

// Returns a complete <svg> element. Non-finite points (and non-positive ones on
// a log axis) are skipped. Throws qface::Error if no series has a point to draw.
std::string render_svg(const PlotOptions& options, const std::vector<PlotSeries>& series);

// Text made safe inside SVG or HTML elements and quoted attributes (&, <, >, ").
std::string escape_markup(const std::string& text);

}  // namespace qface
