#include "bench_plots.hpp"

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>
#include <stdexcept>

#include "child_process.hpp"

namespace sluice::bench {
namespace {

// A spread across this many decades of x reads better on a log axis (1 .. 1,000,000 prefixes).
constexpr double log_axis_span = 100;
constexpr auto gnuplot_deadline = std::chrono::seconds(60);
constexpr double bytes_per_mib = 1024.0 * 1024.0;
constexpr int png_width = 960, png_height = 600;

// A gnuplot single-quoted string: only '' is special there; a newline would end the command.
std::string gnuplot_quoted(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += "''";
    else if (c == '\n' || c == '\r') out += ' ';
    else out += c;
  }
  return out + "'";
}

std::string series_of(const Figure& figure) { return figure.series.empty() ? figure.name : figure.series; }

}  // namespace

std::vector<Curve> curves_of(const std::vector<Figure>& figures) {
  std::vector<Curve> curves;
  for (const Figure& figure : figures) {
    if (figure.curve.empty()) continue;
    auto found = std::find_if(curves.begin(), curves.end(), [&](const Curve& c) {
      return c.section == figure.section && c.name == figure.curve;
    });
    if (found == curves.end()) {
      curves.push_back({figure.section, figure.curve, {}});
      found = std::prev(curves.end());
    }
    found->figures.push_back(figure);
  }
  return curves;
}

std::string plot_file_name(const Curve& curve) {
  std::string name = curve.section + "-" + curve.name;
  for (char& c : name) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-';
    if (!safe) c = '_';
  }
  if (name.front() == '.') name.front() = '_';
  return name + ".png";
}

std::string gnuplot_script(const Curve& curve, const std::filesystem::path& png) {
  // Points by series, in x order; references (no x) apart; the floor per x.
  std::map<std::string, std::vector<const Figure*>> series;
  std::vector<std::string> series_order;
  std::vector<const Figure*> references;
  std::map<double, double> floor;
  std::map<double, double> memory_mib;
  std::string unit, baseline;
  for (const Figure& figure : curve.figures) {
    if (unit.empty()) unit = figure.unit;
    if (figure.unit != unit) continue;  // one y axis per plot: the first figure's unit
    if (!figure.x) {
      references.push_back(&figure);
      continue;
    }
    const std::string name = series_of(figure);
    if (!series.count(name)) series_order.push_back(name);
    series[name].push_back(&figure);
    if (figure.baseline_value) {
      floor.try_emplace(*figure.x, figure.baseline_value->median);
      if (baseline.empty()) baseline = figure.baseline;
    }
    if (figure.map_bytes) memory_mib[*figure.x] = std::max(memory_mib[*figure.x], *figure.map_bytes / bytes_per_mib);
  }
  if (series.empty()) throw std::invalid_argument("curve '" + curve.name + "': no figure with an x to draw");

  double x_min = 0, x_max = 0;
  bool first = true;
  for (const auto& [name, points] : series)
    for (const Figure* point : points) {
      x_min = first ? *point->x : std::min(x_min, *point->x);
      x_max = first ? *point->x : std::max(x_max, *point->x);
      first = false;
    }

  std::ostringstream gp;
  gp << std::setprecision(10);
  gp << "set terminal pngcairo noenhanced size " << png_width << "," << png_height << "\n"
     << "set output " << gnuplot_quoted(png.string()) << "\n"
     << "set title " << gnuplot_quoted("sluice-bench " + curve.section + ": " + unit + " against " + curve.name) << "\n"
     << "set xlabel " << gnuplot_quoted(curve.name) << "\n"
     << "set ylabel " << gnuplot_quoted(unit + " (median, bars q1-q3)") << "\n"
     << "set key below\nset grid\nset yrange [0:*]\n";
  if (x_min > 0 && x_max / x_min >= log_axis_span) gp << "set logscale x\n";
  if (!memory_mib.empty()) gp << "set y2label 'map memory (MiB)'\nset y2tics\nset y2range [0:*]\n";

  auto sorted = [](std::vector<const Figure*> points) {
    std::sort(points.begin(), points.end(), [](const Figure* a, const Figure* b) { return *a->x < *b->x; });
    return points;
  };
  std::vector<std::string> plots;
  for (std::size_t i = 0; i < series_order.size(); ++i) {
    gp << "$series" << i << " << EOD\n";
    for (const Figure* point : sorted(series[series_order[i]]))
      gp << *point->x << " " << point->value.median << " " << point->value.q1 << " " << point->value.q3 << "\n";
    gp << "EOD\n";
    plots.push_back("$series" + std::to_string(i) + " using 1:2:3:4 with yerrorlines lw 2 title " +
                    gnuplot_quoted(series_order[i]));
  }
  if (!floor.empty()) {
    gp << "$floor << EOD\n";
    for (const auto& [x, value] : floor) gp << x << " " << value << "\n";
    gp << "EOD\n";
    plots.push_back("$floor using 1:2 with lines dt 2 lc 'black' title " + gnuplot_quoted("floor: " + baseline));
  }
  for (const Figure* reference : references) {
    std::ostringstream line;
    line << std::setprecision(10) << reference->value.median << " with lines dt 3 lw 2 title "
         << gnuplot_quoted(series_of(*reference));
    plots.push_back(line.str());
  }
  if (!memory_mib.empty()) {
    gp << "$memory << EOD\n";
    for (const auto& [x, mib] : memory_mib) gp << x << " " << mib << "\n";
    gp << "EOD\n";
    plots.push_back("$memory using 1:2 axes x1y2 with linespoints dt 4 lc 'gray40' title 'map memory (right axis)'");
  }
  gp << "plot ";
  for (std::size_t i = 0; i < plots.size(); ++i) gp << (i ? ", \\\n     " : "") << plots[i];
  gp << "\n";
  return gp.str();
}

std::vector<std::filesystem::path> write_plots(const std::vector<Figure>& figures, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::vector<std::filesystem::path> written;
  for (const Curve& curve : curves_of(figures)) {
    const std::filesystem::path png = dir / plot_file_name(curve);
    std::filesystem::path script = png;
    script.replace_extension(".gp");
    {
      std::ofstream out(script, std::ios::trunc);
      out << gnuplot_script(curve, png.filename());
      if (!out.flush()) throw std::runtime_error("plot " + curve.name + ": cannot write " + script.string());
    }
    std::filesystem::path errors = png;
    errors.replace_extension(".gnuplot.log");
    // Run in the plot dir, so the script names its PNG relatively and can be rerun there by hand.
    const ChildResult result =
        run_child({"sh", "-c", "cd \"$1\" && exec gnuplot \"$2\"", "sh", dir.string(), script.filename().string()},
                  errors, gnuplot_deadline);
    if (result.exit_code != 0 || !std::filesystem::exists(png)) {
      std::ifstream log(errors);
      std::stringstream text;
      text << log.rdbuf();
      throw std::runtime_error("plot " + curve.section + "/" + curve.name + ": gnuplot " +
                               describe(result, gnuplot_deadline) + ": " + text.str());
    }
    std::filesystem::remove(errors);
    written.push_back(png);
  }
  return written;
}

}  // namespace sluice::bench
