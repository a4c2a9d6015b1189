#include "filter_fixture.hpp"

#include <stdexcept>

namespace sluice::test {

void FilterTest::SetUp() {
  XdpPipelineTest::SetUp();
  if (IsSkipped() || HasFatalFailure()) return;
  auto table = filter::FilterTable::open(*plane_, table_options_);
  ASSERT_TRUE(table) << table.error().message;
  table_.emplace(std::move(*table));
}

void FilterTest::replace(const filter::RuleSet& set) {
  auto replaced = table_->replace(set);
  ASSERT_TRUE(replaced) << replaced.error().message;
}

maps::Prefix cidr(const std::string& text) {
  auto parsed = maps::parse_prefix(text);
  if (!parsed) throw std::invalid_argument(parsed.error().message);
  return *parsed;
}

PacketBuilder ether() { return PacketBuilder().eth("02:00:00:00:00:01", "02:00:00:00:00:02"); }

}  // namespace sluice::test
