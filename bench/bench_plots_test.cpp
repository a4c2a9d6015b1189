// sluice-bench's runner pieces: the child a section runs as (output,
// exit, deadline), and the plots (which figures make a curve, the gnuplot
// script, a real PNG drawn by gnuplot).
#include <gtest/gtest.h>

#include <fstream>
#include <unistd.h>

#include "bench_plots.hpp"
#include "child_process.hpp"

namespace sluice::bench {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("sluice-bench-test." + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

Spread around(double median) { return summarize({median * 0.9, median, median * 1.1}); }

Figure point(std::string series, double x, double ns, double floor) {
  Figure f;
  f.section = "filter";
  f.group = "rules";
  f.name = series + " at " + std::to_string(static_cast<int>(x));
  f.unit = "ns/packet";
  f.value = around(ns);
  f.baseline = "empty XDP_DROP";
  f.ratio = around(ns / floor);
  f.baseline_value = around(floor);
  f.curve = "rules";
  f.x = x;
  f.series = std::move(series);
  return f;
}

TEST(BenchChild, CapturesStdoutAndTheExitAndKeepsStderrApart) {
  TempDir dir;
  const auto result = run_child({"sh", "-c", "echo figures; echo noise >&2; exit 3"}, dir.path / "err",
                                std::chrono::seconds(10));
  EXPECT_EQ(result.out, "figures\n");
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_FALSE(result.timed_out);
  std::ifstream err(dir.path / "err");
  std::string line;
  std::getline(err, line);
  EXPECT_EQ(line, "noise");
  EXPECT_EQ(describe(result, std::chrono::seconds(10)), "exit 3");
}

TEST(BenchChild, AHangingChildIsKilledAtItsDeadline) {
  TempDir dir;
  const auto begun = std::chrono::steady_clock::now();
  // Its stdout closed, it still runs: the deadline holds there too.
  const auto closed = run_child({"sh", "-c", "exec >&-; sleep 20"}, dir.path / "err", std::chrono::seconds(1));
  const auto hung = run_child({"sleep", "20"}, dir.path / "err", std::chrono::seconds(1));
  EXPECT_LT(std::chrono::steady_clock::now() - begun, std::chrono::seconds(10));
  for (const auto& result : {closed, hung}) {
    EXPECT_TRUE(result.timed_out);
    EXPECT_EQ(result.signal, SIGKILL);
    EXPECT_EQ(describe(result, std::chrono::seconds(1)), "timed out after 1 s and killed");
  }
}

TEST(BenchChild, AMissingProgramIsAnErrorNamingIt) {
  TempDir dir;
  try {
    run_child({"sluice-no-such-program"}, dir.path / "err", std::chrono::seconds(5));
    FAIL() << "a missing program ran";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("sluice-no-such-program"), std::string::npos) << e.what();
  }
}

TEST(BenchPlots, CurvesGroupTheirPointsAndTheFileNameNeverLeavesTheDirectory) {
  std::vector<Figure> figures{point("sluice, last rule", 1, 20, 5), point("sluice, last rule", 4096, 22, 5)};
  Figure lone = figures[0];
  lone.curve.clear();
  figures.push_back(lone);
  Figure other = figures[0];
  other.section = "lb";
  other.curve = "../../etc/vips";
  figures.push_back(other);
  const auto curves = curves_of(figures);
  ASSERT_EQ(curves.size(), 2u);
  EXPECT_EQ(curves[0].figures.size(), 2u);
  EXPECT_EQ(plot_file_name(curves[0]), "filter-rules.png");
  EXPECT_EQ(plot_file_name(curves[1]), "lb-.._.._etc_vips.png");
  EXPECT_EQ(plot_file_name(curves[1]).find('/'), std::string::npos);
}

TEST(BenchPlots, TheScriptDrawsSeriesFloorPeerAndMemoryWithTextQuoted) {
  Curve curve{"filter", "rules", {point("sluice, first rule", 4096, 30, 5), point("sluice, first rule", 1, 20, 5)}};
  curve.figures[0].map_bytes = 8 << 20;
  Figure peer = curve.figures[0];
  peer.x.reset();
  peer.series = "xdp-filter's 'tcp dport 80'\nset output '/etc/x'";
  peer.value = around(25);
  curve.figures.push_back(peer);
  const std::string script = gnuplot_script(curve, "filter-rules.png");
  EXPECT_NE(script.find("set terminal pngcairo noenhanced"), std::string::npos);
  EXPECT_NE(script.find("set logscale x"), std::string::npos) << "1 .. 4,096 spans decades";
  // Points in x order: median, q1, q3.
  const auto first = script.find("\n1 20 ");
  const auto last = script.find("\n4096 30 ");
  ASSERT_NE(first, std::string::npos) << script;
  ASSERT_NE(last, std::string::npos) << script;
  EXPECT_LT(first, last);
  EXPECT_NE(script.find("title 'floor: empty XDP_DROP'"), std::string::npos) << script;
  EXPECT_NE(script.find("25 with lines"), std::string::npos) << "the peer is a horizontal line";
  // Quotes doubled and the newline flattened: the title cannot end the command.
  EXPECT_NE(script.find("title 'xdp-filter''s ''tcp dport 80'' set output ''/etc/x'''"), std::string::npos) << script;
  EXPECT_EQ(script.find("\nset output '/etc/x'"), std::string::npos);
  EXPECT_NE(script.find("axes x1y2"), std::string::npos) << "map memory on the right axis";

  Curve empty{"filter", "rules", {peer}};
  EXPECT_THROW(gnuplot_script(empty, "x.png"), std::invalid_argument);
}

TEST(BenchPlots, GnuplotDrawsARealPngPerCurve) {
  if (::system("command -v gnuplot > /dev/null") != 0) GTEST_SKIP() << "gnuplot not installed (scripts/setup.sh)";
  TempDir dir;
  std::vector<Figure> figures;
  for (double x : {1.0, 64.0, 4096.0}) figures.push_back(point("sluice, last rule", x, 20 + x / 1000, 5));
  Figure linear = point("routed", 10, 40, 5);
  linear.section = "forward";
  linear.curve = "routes";
  figures.push_back(linear);
  const auto written = write_plots(figures, dir.path / "plots");
  ASSERT_EQ(written.size(), 2u);
  for (const fs::path& png : written) {
    std::ifstream in(png, std::ios::binary);
    char magic[8] = {};
    in.read(magic, sizeof magic);
    EXPECT_EQ(std::string(magic, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << png;
    EXPECT_GT(fs::file_size(png), 1000u) << png;
    EXPECT_TRUE(fs::exists(fs::path(png).replace_extension(".gp"))) << "the script stays beside its plot";
  }
}

}  // namespace
}  // namespace sluice::bench
