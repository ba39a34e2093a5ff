#include "tools/training_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

namespace simdnn::tools {
namespace {

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", std::isfinite(v) ? v : 0.0);
  return buf;
}

std::string text(double x, double y, const std::string& s, const char* anchor = "middle",
                 int size = 12, const char* extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + std::to_string(size) +
         "\" text-anchor=\"" + anchor + "\"" + extra + ">" + escape_xml(s) + "</text>\n";
}

struct Series {
  std::string name;
  std::vector<double> values;
  const char* colour;
};

// One line chart in the box (x0, y0, w, h): axes, ticks, a legend and the series. The legend
// goes where the curves usually are not: top right for a falling loss, bottom right for a
// rising accuracy.
std::string line_panel(const std::string& title, const std::vector<int>& epochs,
                       const std::vector<Series>& series, double x0, double y0, double w,
                       double h, bool unit_range) {
  std::string svg = text(x0 + w / 2, y0 - 12, title, "middle", 14, " font-weight=\"bold\"");
  double lo = unit_range ? 0.0 : 1e300, hi = unit_range ? 1.0 : -1e300;
  if (!unit_range) {
    for (const Series& s : series) {
      for (double v : s.values) {
        if (!std::isfinite(v)) continue;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
    if (lo > hi) lo = 0.0, hi = 1.0;
    const double pad = std::max((hi - lo) * 0.1, 1e-3);
    lo = std::max(0.0, lo - pad);
    hi += pad;
  } else {
    // Accuracy: zoom to the data's range (rounded to 0.05), which is usually high and narrow.
    double min_v = 1.0;
    for (const Series& s : series) {
      for (double v : s.values) {
        if (std::isfinite(v)) min_v = std::min(min_v, v);
      }
    }
    lo = std::max(0.0, std::floor(min_v * 20.0 - 1.0) / 20.0);
    hi = 1.0;
  }
  const int first = epochs.empty() ? 1 : epochs.front(), last = epochs.empty() ? 1 : epochs.back();
  auto px = [&](int epoch) {
    return last == first ? x0 + w / 2 : x0 + w * (epoch - first) / static_cast<double>(last - first);
  };
  auto py = [&](double v) { return y0 + h - h * (std::clamp(v, lo, hi) - lo) / (hi - lo); };
  svg += "<rect x=\"" + num(x0) + "\" y=\"" + num(y0) + "\" width=\"" + num(w) + "\" height=\"" +
         num(h) + "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double v = lo + (hi - lo) * t / 4.0;
    char label[32];
    std::snprintf(label, sizeof label, "%.3g", v);
    svg += "<line x1=\"" + num(x0) + "\" x2=\"" + num(x0 + w) + "\" y1=\"" + num(py(v)) +
           "\" y2=\"" + num(py(v)) + "\" stroke=\"#ddd\"/>\n";
    svg += text(x0 - 6, py(v) + 4, label, "end", 11);
  }
  const int step = std::max(1, (last - first) / 8);
  for (int e = first; e <= last; e += step) svg += text(px(e), y0 + h + 16, std::to_string(e), "middle", 11);
  svg += text(x0 + w / 2, y0 + h + 34, "epoch", "middle", 12);
  double legend_y = unit_range ? y0 + h - 8 - 16.0 * (series.size() - 1) : y0 + 16;
  for (const Series& s : series) {
    std::string points;
    for (size_t i = 0; i < s.values.size(); ++i) {
      points += (i ? " " : "") + num(px(epochs[i])) + "," + num(py(s.values[i]));
    }
    svg += "<polyline class=\"series\" data-series=\"" + escape_xml(s.name) + "\" points=\"" +
           points + "\" fill=\"none\" stroke=\"" + s.colour + "\" stroke-width=\"2\"/>\n";
    for (size_t i = 0; i < s.values.size(); ++i) {
      svg += "<circle cx=\"" + num(px(epochs[i])) + "\" cy=\"" + num(py(s.values[i])) +
             "\" r=\"3\" fill=\"" + s.colour + "\"/>\n";
    }
    svg += "<line x1=\"" + num(x0 + w - 110) + "\" x2=\"" + num(x0 + w - 90) + "\" y1=\"" +
           num(legend_y - 4) + "\" y2=\"" + num(legend_y - 4) + "\" stroke=\"" + s.colour +
           "\" stroke-width=\"2\"/>\n";
    svg += text(x0 + w - 85, legend_y, s.name, "start", 11);
    legend_y += 16;
  }
  return svg;
}

}  // namespace

std::string training_plot_svg(const TrainingPlot& plot) {
  const double width = 1240, height = 470;
  std::string svg =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" +
      num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) +
      "\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += text(width / 2, 24, plot.title, "middle", 16, " font-weight=\"bold\"");

  std::vector<int> epochs;
  std::vector<double> loss, acc, val_loss, val_acc;
  bool validation = !plot.epochs.empty();
  for (const EpochResult& r : plot.epochs) {
    epochs.push_back(r.epoch);
    loss.push_back(r.loss);
    acc.push_back(r.accuracy);
    validation = validation && r.validation.has_value();
    val_loss.push_back(r.validation ? r.validation->loss : 0.0);
    val_acc.push_back(r.validation ? r.validation->accuracy : 0.0);
  }
  std::vector<Series> losses{{"train", loss, "#1f77b4"}}, accuracies{{"train", acc, "#1f77b4"}};
  if (validation) {
    losses.push_back({"validation", val_loss, "#ff7f0e"});
    accuracies.push_back({"validation", val_acc, "#ff7f0e"});
  }
  svg += line_panel("loss (cross-entropy)", epochs, losses, 70, 80, 300, 300, false);
  svg += line_panel("accuracy", epochs, accuracies, 450, 80, 300, 300, true);
  if (!validation) {
    svg += text(410, 450, "no validation curve: train with --val-split to hold data out",
                "middle", 11, " fill=\"#666\"");
  }

  // The confusion matrix: rows true class, columns predicted.
  const size_t n = plot.confusion.size();
  const double mx = 880, my = 80, side = 300;
  svg += text(mx + side / 2, my - 12, "confusion matrix", "middle", 14, " font-weight=\"bold\"");
  svg += text(mx + side / 2, my + side + 34, plot.confusion_label, "middle", 11);
  if (n > 0) {
    const double cell = side / static_cast<double>(n);
    for (size_t t = 0; t < n; ++t) {
      const size_t row_total =
          std::accumulate(plot.confusion[t].begin(), plot.confusion[t].end(), size_t{0});
      for (size_t p = 0; p < n && p < plot.confusion[t].size(); ++p) {
        const size_t count = plot.confusion[t][p];
        const double share = row_total ? static_cast<double>(count) / row_total : 0.0;
        const int shade = static_cast<int>(std::lround(255.0 * (1.0 - share)));
        char fill[16];
        std::snprintf(fill, sizeof fill, "#%02x%02xff", shade, shade);
        svg += "<rect class=\"cell\" x=\"" + num(mx + p * cell) + "\" y=\"" + num(my + t * cell) +
               "\" width=\"" + num(cell) + "\" height=\"" + num(cell) + "\" fill=\"" + fill +
               "\" stroke=\"#ccc\"/>\n";
        if (n <= 20) {
          svg += text(mx + (p + 0.5) * cell, my + (t + 0.5) * cell + 4, std::to_string(count),
                      "middle", n <= 10 ? 10 : 7,
                      share > 0.5 ? " fill=\"white\"" : " fill=\"black\"");
        }
      }
      const std::string name = t < plot.class_names.size() ? plot.class_names[t] : std::to_string(t);
      if (n <= 20) svg += text(mx - 4, my + (t + 0.5) * cell + 4, name, "end", 10);
    }
    svg += text(mx + side / 2, my + side + 16, "predicted class (columns 0.." +
                std::to_string(n - 1) + ")", "middle", 11);
    svg += text(mx + side + 14, my + side / 2, "true class", "middle", 11,
                (" transform=\"rotate(90 " + num(mx + side + 14) + " " + num(my + side / 2) + ")\"").c_str());
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace simdnn::tools
