// The one table format of sluice-bench and of every section run by hand.
#include <algorithm>
#include <iomanip>
#include <sstream>

#include "bench_support.hpp"

namespace sluice::bench {

std::string format_spread(const Spread& spread, int precision) {
  // Quartiles of fewer than four rounds are interpolations of two or three
  // numbers: show the range they came from instead.
  constexpr std::uint32_t quartile_rounds_min = 4;
  std::ostringstream text;
  text << std::fixed << std::setprecision(precision) << spread.median;
  if (spread.samples >= quartile_rounds_min)
    text << " [" << spread.q1 << "-" << spread.q3 << "]";
  else if (spread.samples > 1)
    text << " (" << spread.min << "-" << spread.max << ")";
  return text.str();
}

// The ratio is what a row is judged by; a figure without one, by its value.
bool judged_too_wide(const Figure& figure) {
  return figure.ratio ? too_wide(*figure.ratio) : too_wide(figure.value);
}

void print_figure_table(std::ostream& out, const std::vector<Figure>& figures) {
  constexpr int group_width = 18, name_width = 52, value_width = 16, ratio_width = 22;
  constexpr int value_precision = 1, ratio_precision = 2;
  std::string section, group;
  for (const Figure& figure : figures) {
    if (figure.section != section) {
      section = figure.section;
      group.clear();
      out << "\n== " << section << " ==\n"
          << std::left << std::setw(group_width) << "group" << std::setw(name_width) << "figure" << std::right
          << std::setw(value_width) << "value" << "  " << std::left << std::setw(ratio_width)
          << "x baseline [q1-q3]" << "  baseline\n";
    }
    const bool wide = judged_too_wide(figure);
    std::ostringstream unit_value;
    unit_value << std::fixed << std::setprecision(value_precision) << figure.value.median << " "
               << (figure.unit == "ns/packet" ? "ns" : figure.unit);
    // A group or name longer than its column still ends in a space before the next one.
    const std::string shown_group = figure.group == group ? "" : figure.group;
    out << std::left << std::setw(group_width) << shown_group
        << (shown_group.size() >= static_cast<std::size_t>(group_width) ? " " : "") << std::setw(name_width)
        << figure.name << (figure.name.size() >= static_cast<std::size_t>(name_width) ? " " : "") << std::right << std::setw(value_width) << unit_value.str() << "  " << std::left
        << std::setw(ratio_width) << (figure.ratio ? format_spread(*figure.ratio, ratio_precision) : "")
        << (wide ? std::string(too_wide_mark) + " " : "  ") << figure.baseline << "\n";
    group = figure.group;
  }
  if (std::any_of(figures.begin(), figures.end(), judged_too_wide))
    out << "\n" << too_wide_mark << ": interquartile range above " << static_cast<int>(too_wide_iqr_share * 100)
        << "% of the median; too noisy to judge\n";
}

}  // namespace sluice::bench
