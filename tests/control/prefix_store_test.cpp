// The prefix lists' own files (control/daemon/prefix_store.hpp) through
// StateStore: a commit writes a snapshot generation named by state.yaml;
// block changes append fsynced journal records; a torn last record (a crash
// mid-append: never reported accepted) is ignored and cut off; a damaged
// snapshot refuses the start naming file and line; the journal is compacted
// at the bound the loader accepts.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "state_store.hpp"

namespace sluice::daemon {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/sluice-prefix-store-XXXXXX";
    path = ::mkdtemp(name);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

config::DesiredState with_lists(std::vector<config::PrefixEntry> block, std::vector<config::PrefixEntry> allow = {}) {
  config::DesiredState state;
  state.rules.emplace();
  state.prefix_lists = config::PrefixLists{std::move(block), std::move(allow)};
  return state;
}

PrefixChange add(std::string prefix, bool allow = false) {
  return {prefix, ListedPrefix{allow, config::PrefixEntry{prefix, std::nullopt, std::nullopt}}};
}

TEST(PrefixStore, ChangesAreJournalledAndReadBackExactly) {
  TempDir dir;
  StateStore store(dir.path);
  ASSERT_TRUE(store.commit(with_lists({{"198.18.0.0/24", std::nullopt, std::nullopt}})));
  ASSERT_TRUE(store.prefix_generation());
  const std::string yaml = slurp(store.path());
  EXPECT_EQ(yaml.find("198.18.0.0/24"), std::string::npos) << "state.yaml holds no prefix:\n" << yaml;
  EXPECT_TRUE(yaml.starts_with("# prefix lists: prefixes." + std::to_string(*store.prefix_generation()) + ".list"));
  ASSERT_TRUE(store.commit_prefix_changes({add("198.18.1.0/24"), add("2001:db8::/32", true)}));
  ASSERT_TRUE(store.commit_prefix_changes({{"198.18.0.0/24", std::nullopt}}));
  EXPECT_EQ(slurp(store.path()), yaml) << "a block change does not rewrite state.yaml";
  const std::string journal = slurp(dir.path + "/" + prefix_journal_name(*store.prefix_generation()));
  EXPECT_NE(journal.find("+ b 198.18.1.0/24\n+ a 2001:db8::/32\n= 2 "), std::string::npos) << journal;
  EXPECT_NE(journal.find("- 198.18.0.0/24\n= 1 "), std::string::npos) << journal;

  StateStore reopened(dir.path);
  auto back = reopened.read();
  ASSERT_TRUE(back && *back) << (back ? "" : back.error().message);
  ASSERT_TRUE((*back)->prefix_lists);
  EXPECT_EQ((*back)->prefix_lists->block, (std::vector<config::PrefixEntry>{{"198.18.1.0/24", std::nullopt, std::nullopt}}));
  EXPECT_EQ((*back)->prefix_lists->allow, (std::vector<config::PrefixEntry>{{"2001:db8::/32", std::nullopt, std::nullopt}}));
}

TEST(PrefixStore, ATornLastRecordIsIgnoredAndCutOff) {
  TempDir dir;
  StateStore store(dir.path);
  ASSERT_TRUE(store.commit(with_lists({})));
  ASSERT_TRUE(store.commit_prefix_changes({add("198.18.1.0/24")}));
  const std::string journal_path = dir.path + "/" + prefix_journal_name(*store.prefix_generation());
  const std::string whole = slurp(journal_path);
  // A crash mid-append: a record without its "=" line, the last line cut.
  std::ofstream(journal_path, std::ios::app) << "+ b 198.18.2.0/24\n+ b 198.18.3.0/2";
  StateStore reopened(dir.path);
  auto back = reopened.read();
  ASSERT_TRUE(back && *back) << (back ? "" : back.error().message);
  EXPECT_EQ((*back)->prefix_lists->block, (std::vector<config::PrefixEntry>{{"198.18.1.0/24", std::nullopt, std::nullopt}}))
      << "only the record that was whole (fsynced, reported accepted) counts";
  EXPECT_EQ(slurp(journal_path), whole) << "the torn record is cut off, so the next one follows a whole one";
  // A record whose "=" line does not match what precedes it is torn too.
  std::ofstream(journal_path, std::ios::app) << "+ b 198.18.4.0/24\n= 1 0000000000000000\n";
  StateStore again(dir.path);
  auto third = again.read();
  ASSERT_TRUE(third && *third);
  EXPECT_EQ((*third)->prefix_lists->block.size(), 1u);
}

TEST(PrefixStore, ADamagedSnapshotRefusesTheStartNamingFileAndLine) {
  TempDir dir;
  StateStore store(dir.path);
  ASSERT_TRUE(store.commit(with_lists({{"198.18.0.0/24", std::nullopt, std::nullopt}, {"198.18.1.0/24", std::nullopt, std::nullopt}})));
  const std::string snapshot = dir.path + "/" + prefix_snapshot_name(*store.prefix_generation());
  std::string text = slurp(snapshot);
  text.replace(text.find("198.18.1.0/24"), 13, "198.18.1.9/24");
  std::ofstream(snapshot, std::ios::trunc) << text;
  StateStore reopened(dir.path);
  auto back = reopened.read();
  ASSERT_FALSE(back);
  EXPECT_NE(back.error().message.find(snapshot + ":3"), std::string::npos) << back.error().message;
  EXPECT_NE(back.error().message.find("198.18.1.9/24"), std::string::npos) << back.error().message;
  // Cut short: no end line.
  std::ofstream(snapshot, std::ios::trunc) << text.substr(0, text.find("198.18.1"));
  StateStore cut(dir.path);
  auto truncated = cut.read();
  ASSERT_FALSE(truncated);
  EXPECT_NE(truncated.error().message.find("truncated"), std::string::npos) << truncated.error().message;
}

TEST(PrefixStore, TheJournalIsCompactedAtTheBoundTheLoaderAccepts) {
  TempDir dir;
  StateStore store(dir.path);
  ASSERT_TRUE(store.commit(with_lists({})));
  const auto first = *store.prefix_generation();
  // Records of 10,000 changes each (a block.add's most) until the journal would cross kJournalCompactBytes.
  std::size_t added = 0;
  while (store.prefix_generation() == first) {
    std::vector<PrefixChange> batch;
    for (int i = 0; i < 10'000; ++i, ++added)
      batch.push_back(add(std::to_string(1 + (added >> 16)) + "." + std::to_string(added >> 8 & 0xff) + "." +
                          std::to_string(added & 0xff) + ".0/24"));
    ASSERT_TRUE(store.commit_prefix_changes(batch));
    ASSERT_LE(store.journal_bytes(), kJournalCompactBytes);
  }
  EXPECT_EQ(store.journal_bytes(), 0u) << "a new generation starts with an empty journal";
  EXPECT_FALSE(fs::exists(dir.path + "/" + prefix_journal_name(first))) << "the old generation's files go";
  StateStore reopened(dir.path);
  auto back = reopened.read();
  ASSERT_TRUE(back && *back) << (back ? "" : back.error().message);
  EXPECT_EQ((*back)->prefix_lists->block.size(), added);
}

}  // namespace
}  // namespace sluice::daemon
