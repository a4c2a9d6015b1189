#pragma once
// sluice-bench's plots: one PNG per scaling curve (Figure.curve), drawn by
// gnuplot (Debian's gnuplot-nox). Each series is a line of medians with its
// interquartile bar; the floor (the baseline timed in the same rounds) is a
// dashed line under it; a peer measured once (a figure on the curve without
// x) is a horizontal line; map memory, where the figures carry it, is drawn
// on the right axis. A plot reads without the table: title, axes and units
// are all on it.
#include <filesystem>
#include <string>
#include <vector>

#include "figure.hpp"

namespace sluice::bench {

struct Curve {
  std::string section;
  std::string name;  // Figure.curve
  std::vector<Figure> figures;
};

// The curves among `figures`, in the order they first appear (figures
// without a curve are left out).
std::vector<Curve> curves_of(const std::vector<Figure>& figures);

// The file a curve is drawn into: "<section>-<curve>.png", every character
// outside [A-Za-z0-9._-] made '_' (a curve name never picks a directory).
std::string plot_file_name(const Curve& curve);

// The gnuplot script drawing `curve` into `png`. Text from the figures is
// quoted for gnuplot (never interpreted: noenhanced, quotes doubled).
// Throws std::invalid_argument when the curve has no point to draw.
std::string gnuplot_script(const Curve& curve, const std::filesystem::path& png);

// Draws every curve into `dir` (created if missing) with `gnuplot`, keeping
// each script beside its PNG (to redraw by hand); returns the PNGs written.
// Throws std::runtime_error naming the curve when gnuplot fails.
std::vector<std::filesystem::path> write_plots(const std::vector<Figure>& figures, const std::filesystem::path& dir);

}  // namespace sluice::bench
