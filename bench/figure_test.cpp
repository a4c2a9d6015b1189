// The contract between sluice-bench and its sections: quantiles, the
// too-wide flag, the JSON both ways, and malformed JSON refused by name.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <functional>

#include "bench_support.hpp"
#include "figure.hpp"

namespace {

using namespace sluice::bench;
namespace json = boost::json;

TEST(FigureSummarize, QuantilesInterpolateBetweenClosestRanks) {
  const Spread spread = summarize({5, 1, 4, 2, 3});
  EXPECT_EQ(spread.samples, 5u);
  EXPECT_DOUBLE_EQ(spread.min, 1);
  EXPECT_DOUBLE_EQ(spread.q1, 2);
  EXPECT_DOUBLE_EQ(spread.median, 3);
  EXPECT_DOUBLE_EQ(spread.q3, 4);
  EXPECT_DOUBLE_EQ(spread.max, 5);
  const Spread even = summarize({10, 20, 30, 40});
  EXPECT_DOUBLE_EQ(even.q1, 17.5);
  EXPECT_DOUBLE_EQ(even.median, 25);
  EXPECT_DOUBLE_EQ(even.q3, 32.5);
  const Spread one = summarize({7});
  EXPECT_DOUBLE_EQ(one.min, 7);
  EXPECT_DOUBLE_EQ(one.max, 7);
  EXPECT_THROW(summarize({}), std::invalid_argument);
}

TEST(FigureTooWide, FlagsAnInterquartileRangeAboveAQuarterOfTheMedian) {
  EXPECT_FALSE(too_wide(summarize({1.0, 1.0, 1.1, 1.1})));
  EXPECT_TRUE(too_wide(summarize({1.0, 1.0, 2.0, 2.0})));
  EXPECT_TRUE(too_wide(Spread{}));  // a zero median cannot be judged
}

TEST(FigurePaired, RatiosArePerRoundNotOfMedians) {
  // baseline 10, 20, 10; path 20, 20, 30 -> ratios 2, 1, 3
  std::vector<double> base = {10, 20, 10}, path = {20, 20, 30};
  std::size_t b = 0, p = 0;
  const Paired paired = time_paired([&] { return base[b++]; }, [&] { return path[p++]; }, 3);
  EXPECT_DOUBLE_EQ(paired.ratio.median, 2);
  EXPECT_DOUBLE_EQ(paired.ratio.min, 1);
  EXPECT_DOUBLE_EQ(paired.ratio.max, 3);
  EXPECT_DOUBLE_EQ(paired.value.median, 20);
  EXPECT_DOUBLE_EQ(paired.baseline.median, 10);
}

Figure sample_figure() {
  Figure figure;
  figure.section = "filter";
  figure.group = "rules";
  figure.name = "sluice: last rule matches, 4,096 rules";
  figure.unit = "ns/packet";
  figure.value = summarize({100, 110, 120});
  figure.baseline = "empty XDP_DROP";
  figure.ratio = summarize({4, 4.5, 5});
  figure.baseline_value = summarize({24, 25, 26});
  figure.curve = "rules";
  figure.x = 4096;
  figure.series = "sluice, last rule";
  figure.map_bytes = 123456;
  figure.note = "verdict XDP_DROP";
  return figure;
}

TEST(FigureJson, SectionRoundTrips) {
  SectionReport report;
  report.section = "filter";
  report.machine = read_machine(1);
  report.figures = {sample_figure()};
  Figure plain;
  plain.section = "filter";
  plain.group = "g";
  plain.name = "no ratio";
  plain.unit = "bytes";
  plain.value = summarize({1});
  report.figures.push_back(plain);
  report.notes = {"memory, idle: 1 MiB"};
  const SectionReport back = section_from_json(json::parse(json::serialize(to_json(report))));
  EXPECT_EQ(back.section, "filter");
  EXPECT_EQ(back.machine.pinned_cpu, 1);
  EXPECT_EQ(back.machine.kernel, report.machine.kernel);
  ASSERT_EQ(back.figures.size(), 2u);
  const Figure& f = back.figures[0];
  EXPECT_EQ(f.name, sample_figure().name);
  EXPECT_EQ(f.baseline, "empty XDP_DROP");
  ASSERT_TRUE(f.ratio && f.baseline_value && f.x && f.map_bytes);
  EXPECT_DOUBLE_EQ(f.ratio->median, 4.5);
  EXPECT_DOUBLE_EQ(f.baseline_value->q3, 25.5);
  EXPECT_DOUBLE_EQ(*f.x, 4096);
  EXPECT_EQ(*f.map_bytes, 123456u);
  EXPECT_EQ(f.series, "sluice, last rule");
  EXPECT_EQ(f.curve, "rules");
  EXPECT_EQ(f.note, "verdict XDP_DROP");
  EXPECT_FALSE(back.figures[1].ratio);
  EXPECT_FALSE(back.figures[1].x);
  EXPECT_EQ(back.notes, report.notes);
}

// Parses `mutate`d JSON of the sample figure; the error must name `field`.
void expect_rejected(const std::function<void(json::object&)>& mutate, const std::string& field) {
  json::object object = to_json(sample_figure());
  mutate(object);
  try {
    figure_from_json(object);
    ADD_FAILURE() << "accepted " << json::serialize(object);
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find(field), std::string::npos) << error.what();
  }
}

TEST(FigureJson, MalformedFiguresAreRejectedNamingTheField) {
  expect_rejected([](json::object& o) { o.erase("name"); }, "'name'");
  expect_rejected([](json::object& o) { o["unit"] = 3; }, "'unit'");
  expect_rejected([](json::object& o) { o["value"] = "fast"; }, "'value'");
  expect_rejected([](json::object& o) { o["value"].as_object().erase("median"); }, "'median'");
  expect_rejected([](json::object& o) { o["value"].as_object()["min"] = 1000; }, "'value'");  // min > median
  expect_rejected([](json::object& o) { o["ratio"].as_object()["samples"] = 0; }, "ratio.samples");
  expect_rejected([](json::object& o) { o.erase("baseline"); }, "baseline");
  expect_rejected([](json::object& o) { o["x"] = "many"; }, "'x'");
  expect_rejected([](json::object& o) { o["map_bytes"] = -1; }, "map_bytes");
  expect_rejected([](json::object& o) { o["series"] = json::array{}; }, "'series'");
}

TEST(FigureJson, MalformedSectionsAreRejectedNamingTheField) {
  SectionReport report;
  report.section = "lb";
  report.machine = read_machine(-1);
  json::object object = to_json(report);
  object["schema"] = "sluice-bench/0";
  EXPECT_THROW(section_from_json(object), std::invalid_argument);
  object = to_json(report);
  object["machine"].as_object().erase("kernel");
  try {
    section_from_json(object);
    ADD_FAILURE() << "accepted a machine without a kernel";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("'kernel'"), std::string::npos) << error.what();
  }
  object = to_json(report);
  object["figures"] = json::object{};
  EXPECT_THROW(section_from_json(object), std::invalid_argument);
  object = to_json(report);
  object["notes"] = json::array{1};
  EXPECT_THROW(section_from_json(object), std::invalid_argument);
}

TEST(FigureTable, MarksTooWideRowsAndShowsTheRatio) {
  Figure wide = sample_figure();
  wide.ratio = summarize({1, 1, 3, 3, 5});
  std::ostringstream out;
  print_figure_table(out, {sample_figure(), wide});
  const std::string text = out.str();
  EXPECT_NE(text.find("== filter =="), std::string::npos) << text;
  EXPECT_NE(text.find("4.50 (4.00-5.00)"), std::string::npos) << text;
  EXPECT_NE(text.find("3.00 [1.00-3.00]"), std::string::npos) << text;
  EXPECT_EQ(text.find("(4.00-5.00)        ~"), std::string::npos) << text;  // the narrow row is not marked
  EXPECT_NE(text.find("~ empty XDP_DROP"), std::string::npos) << text;
}

}  // namespace

namespace {

std::string section_text(const std::function<void(json::object&)>& mutate = {}) {
  SectionReport report;
  report.section = "filter";
  report.machine = read_machine(0);
  report.figures = {sample_figure()};
  json::object object = to_json(report);
  if (mutate) mutate(object);
  return json::serialize(object);
}

void expect_output_rejected(const std::string& text, const std::string& section, const std::string& reason) {
  try {
    check_section_output(text, section);
    ADD_FAILURE() << "accepted " << text;
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find(reason), std::string::npos) << error.what();
  }
}

TEST(SectionOutput, AcceptsAWholeSection) {
  const SectionReport report = check_section_output(section_text() + "\n", "filter");
  ASSERT_EQ(report.figures.size(), 1u);
  EXPECT_DOUBLE_EQ(report.figures[0].ratio->median, 4.5);
}

TEST(SectionOutput, RefusesWhatSluiceBenchCouldNotMerge) {
  expect_output_rejected(section_text().substr(0, 40), "filter", "not JSON");
  expect_output_rejected(section_text() + " trailing", "filter", "not JSON");
  expect_output_rejected(section_text(), "lb", "expected 'lb'");
  expect_output_rejected(section_text([](json::object& o) { o["figures"] = json::array{}; }), "filter", "no figures");
  // A time without its ratio: the figure sluice-bench exists to avoid.
  expect_output_rejected(section_text([](json::object& o) { o["figures"].as_array()[0].as_object().erase("ratio"); }),
                         "filter", "without a ratio");
  expect_output_rejected(
      section_text([](json::object& o) { o["figures"].as_array()[0].as_object().erase("baseline_value"); }), "filter",
      "without a baseline_value");
  expect_output_rejected(
      section_text([](json::object& o) { o["figures"].as_array()[0].as_object()["section"] = "lb"; }), "filter",
      "section 'lb'");
}

}  // namespace
