// The documentation is held to the code: every relative link and image of
// README.md and docs/*.md resolves (file and heading anchor), the full
// example of docs/config-reference.md loads through the real loader and
// passes what `apply --dry-run` checks off this host, and every `sluicectl`
// command line of docs/cli.md names real subcommands and flags of the real
// sluicectl (read from its CLI11 --help, not from a list kept here).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>
#include <unistd.h>

#include "desired_state.hpp"
#include "filter_rules.hpp"
#include "forward_model.hpp"
#include "lb_model.hpp"
#include "markdown.hpp"
#include "netns_lab.hpp"

namespace sluice::test {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = SLUICE_SOURCE_DIR;
// A docs file longer than this is a sign it holds two concepts (the project's limit for any file).
constexpr std::size_t kMaxDocLines = 800;

using markdown::is_fence;
using markdown::lines_of;
using markdown::read_text;
using markdown::yaml_blocks;

std::vector<fs::path> markdown_files() {
  std::vector<fs::path> out{kSource / "README.md"};
  for (const auto& entry : fs::directory_iterator(kSource / "docs"))
    if (entry.path().extension() == ".md") out.push_back(entry.path());
  std::sort(out.begin() + 1, out.end());
  return out;
}

// A line without its inline code spans (`...`): links there are examples, not links.
std::string without_code_spans(const std::string& line) {
  return std::regex_replace(line, std::regex("`[^`]*`"), "");
}

// GitHub's anchor of a heading: lower case, punctuation but '-' and '_' gone,
// spaces to '-'; a repeated heading gets -1, -2, ...
std::set<std::string> anchors_of(const fs::path& file) {
  std::set<std::string> out;
  std::map<std::string, int> seen;
  bool in_fence = false;
  for (const auto& line : lines_of(read_text(file))) {
    if (is_fence(line)) in_fence = !in_fence;
    if (in_fence) continue;
    std::smatch m;
    if (!std::regex_match(line, m, std::regex(R"(^#{1,6} +(.*?) *$)"))) continue;
    std::string slug;
    for (unsigned char c : m[1].str()) {
      if (std::isalnum(c) || c == '-' || c == '_') slug += static_cast<char>(std::tolower(c));
      else if (c == ' ') slug += '-';
      else if (c >= 0x80) slug += static_cast<char>(c);  // letters of other scripts stay
    }
    const int n = seen[slug]++;
    out.insert(n == 0 ? slug : slug + "-" + std::to_string(n));
  }
  return out;
}

struct Link {
  std::string target;
  int line = 0;
};

std::vector<Link> links_of(const fs::path& file) {
  std::vector<Link> out;
  const std::regex link(R"(!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\))");
  bool in_fence = false;
  int number = 0;
  for (const auto& raw : lines_of(read_text(file))) {
    ++number;
    if (is_fence(raw)) in_fence = !in_fence;
    if (in_fence) continue;
    const std::string line = without_code_spans(raw);
    for (auto it = std::sregex_iterator(line.begin(), line.end(), link); it != std::sregex_iterator(); ++it)
      out.push_back(Link{(*it)[1], number});
  }
  return out;
}

// Why a link does not resolve; empty: it does.
std::string broken(const fs::path& from, const std::string& target) {
  if (std::regex_search(target, std::regex("^[a-z]+:"))) return "";  // http:, https:, mailto: are not checked here
  const auto hash = target.find('#');
  const std::string path = target.substr(0, hash);
  const std::string anchor = hash == std::string::npos ? "" : target.substr(hash + 1);
  const fs::path resolved = path.empty() ? from : (from.parent_path() / path).lexically_normal();
  if (!fs::exists(resolved)) return "no file " + resolved.string();
  if (anchor.empty()) return "";
  if (resolved.extension() != ".md") return "anchor #" + anchor + " into a file that is not markdown";
  if (!anchors_of(resolved).count(anchor)) return "no heading with anchor #" + anchor + " in " + resolved.string();
  return "";
}

TEST(DocsLinks, EveryRelativeLinkAndImageResolves) {
  const auto files = markdown_files();
  ASSERT_GE(files.size(), 10u) << "README.md and docs/*.md";
  std::size_t checked = 0;
  for (const auto& file : files) {
    for (const auto& link : links_of(file)) {
      ++checked;
      const std::string why = broken(file, link.target);
      EXPECT_EQ(why, "") << file.filename().string() << ":" << link.line << ": (" << link.target << ")";
    }
  }
  EXPECT_GE(checked, 30u) << "the index alone links every docs file";
}

TEST(DocsLinks, ReadmeIndexesEveryDocsFileAndTheArchitecturePicture) {
  std::set<std::string> linked;
  for (const auto& link : links_of(kSource / "README.md")) linked.insert(link.target.substr(0, link.target.find('#')));
  for (const auto& entry : fs::directory_iterator(kSource / "docs"))
    EXPECT_TRUE(linked.count("docs/" + entry.path().filename().string()))
        << "README.md does not link docs/" << entry.path().filename().string();
  EXPECT_TRUE(read_text(kSource / "README.md").find("![") != std::string::npos) << "the picture is shown, not only linked";
}

TEST(DocsLinks, EachFileStaysUnderTheLineLimit) {
  for (const auto& file : markdown_files())
    EXPECT_LE(lines_of(read_text(file)).size(), kMaxDocLines) << file.string();
}

TEST(DocsLinks, TheAnchorRulesAreGitHubs) {
  const fs::path scratch = fs::temp_directory_path() / ("sluice-docs-anchor-" + std::to_string(::getpid()) + ".md");
  std::ofstream(scratch) << "# Load balancer in sluiced (ops, YAML, health checks)\n## `route sync` for BIRD\n"
                            "```\n# not a heading\n```\n## Twice\n## Twice\n";
  const auto anchors = anchors_of(scratch);
  fs::remove(scratch);
  EXPECT_EQ(anchors, (std::set<std::string>{"load-balancer-in-sluiced-ops-yaml-health-checks", "route-sync-for-bird",
                                            "twice", "twice-1"}));
  EXPECT_NE(broken(kSource / "README.md", "docs/filter.md#no-such-heading"), "");
  EXPECT_NE(broken(kSource / "README.md", "docs/no-such-file.md"), "");
}

// ---- docs/config-reference.md ----

TEST(DocsConfigReference, TheFullExampleLoadsAndValidatesWithEverySection) {
  const auto blocks = yaml_blocks(kSource / "docs" / "config-reference.md");
  ASSERT_FALSE(blocks.empty()) << "docs/config-reference.md has no ```yaml block";
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    SCOPED_TRACE("yaml block " + std::to_string(i + 1));
    auto parsed = config::parse_desired_state(blocks[i]);
    ASSERT_TRUE(parsed) << parsed.error().to_string();
    // Interfaces get made-up ifindexes: which ones this host has is sluiced's check, not the document's.
    std::uint32_t next_ifindex = 100;
    auto rules = config::to_filter_rule_set(*parsed, [&](const std::string&) -> std::optional<std::uint32_t> {
      return next_ifindex++;
    });
    ASSERT_TRUE(rules) << rules.error().message;
    auto valid = filter::validate(*rules);
    EXPECT_TRUE(valid) << (valid ? "" : valid.error().message);
    if (parsed->lb) {
      auto lb_valid = lb::validate(*parsed->lb);
      EXPECT_TRUE(lb_valid) << (lb_valid ? "" : lb_valid.error().message);
    }
    if (parsed->forward) {
      auto problem = config::validate_forward(*parsed->forward);
      EXPECT_FALSE(problem) << problem.value_or("");
    }
  }
  // The first block is the full example: every section the loader knows is in it.
  auto full = config::parse_desired_state(blocks.front());
  ASSERT_TRUE(full);
  EXPECT_TRUE(full->interfaces && full->defaults && full->filter && full->prefix_lists && full->rules && full->limits &&
              full->lb && full->forward)
      << "a section is missing from the full example";
  ASSERT_TRUE(full->defaults && full->lb && full->forward);
  const auto& d = *full->defaults;
  EXPECT_TRUE(d.end_verdict && d.tail_call_fail_verdict && d.malformed_verdict && d.non_ip_verdict && d.drop_fragments &&
              d.stages && d.drop_sample_every)
      << "a defaults key is missing from the full example";
  EXPECT_TRUE(full->forward->sync) << "forward.sync is missing from the full example";
  EXPECT_FALSE(full->forward->groups.empty());
}

TEST(DocsConfigReference, ABrokenExampleIsRefused) {
  // What the test above relies on: the loader refuses what the reference would get wrong.
  EXPECT_FALSE(config::parse_desired_state("lb:\n  settings:\n    mtu: 100\n"));
  EXPECT_FALSE(config::parse_desired_state("defaults:\n  no_such_key: 1\n"));
}

// ---- docs/cli.md against the real sluicectl ----

struct Command {
  std::set<std::string> flags;                 // long and short options of this command
  std::map<std::string, std::string> subcommands;  // name -> path ("block add")
};

std::string help_of(const std::string& path) {
  const auto run = run_command(std::string(SLUICECTL_PATH) + (path.empty() ? "" : " " + path) + " --help");
  EXPECT_EQ(run.exit_code, 0) << "sluicectl " << path << " --help: " << run.output;
  return run.output;
}

// CLI11's help: "Options:" lines name flags, "Subcommands:" lines name children.
Command parse_help(const std::string& path, const std::string& help) {
  Command out;
  enum { None, Options, Subcommands } section = None;
  const std::regex heading(R"(^([A-Za-z ]+):\s*$)");
  const std::regex flag(R"((^|[\s,])(--?[A-Za-z][A-Za-z0-9-]*))");
  const std::regex child(R"(^  ([a-z][a-z0-9-]*)\b)");
  for (const auto& line : lines_of(help)) {
    std::smatch m;
    if (std::regex_match(line, m, heading)) {
      std::string name = m[1];
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      section = name.find("subcommand") != std::string::npos ? Subcommands
                : name.find("option") != std::string::npos || name.find("flag") != std::string::npos ? Options
                                                                                                        : None;
      continue;
    }
    if (section == Subcommands && std::regex_search(line, m, child)) {
      out.subcommands[m[1]] = path.empty() ? m[1].str() : path + " " + m[1].str();
    } else if (section == Options && line.rfind("  -", 0) == 0) {
      const std::string names = line.substr(0, line.find("  ", 2));  // the option column, not its description
      for (auto it = std::sregex_iterator(names.begin(), names.end(), flag); it != std::sregex_iterator(); ++it)
        out.flags.insert((*it)[2]);
    }
  }
  return out;
}

// Every sluicectl command line of a markdown text: code-block lines and inline code spans, split at && and pipes.
std::vector<std::pair<int, std::string>> command_lines(const std::string& text) {
  std::vector<std::pair<int, std::string>> out;
  auto take = [&](int number, std::string piece) {
    piece = piece.substr(0, piece.find(" #"));  // a shell comment
    for (std::size_t at = piece.find("sluicectl "); at != std::string::npos; at = piece.find("sluicectl ", at + 1)) {
      if (at > 0 && piece[at - 1] != ' ' && piece[at - 1] != '(' && piece[at - 1] != '`') continue;
      std::string cmd = piece.substr(at + std::string("sluicectl ").size());
      for (const char* end : {" && ", " | ", "; ", ")"}) cmd = cmd.substr(0, cmd.find(end));
      out.emplace_back(number, cmd);
    }
  };
  bool in_fence = false;
  int number = 0;
  for (const auto& line : lines_of(text)) {
    ++number;
    if (is_fence(line)) {
      in_fence = !in_fence;
      continue;
    }
    if (in_fence || line.rfind("    ", 0) == 0) {
      take(number, line);
      continue;
    }
    const std::regex span("`(sluicectl [^`]*)`");
    for (auto it = std::sregex_iterator(line.begin(), line.end(), span); it != std::sregex_iterator(); ++it)
      take(number, (*it)[1]);
  }
  return out;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}

// The flags a word names: "[--mode", "--action=drop", "-f|--follow" -> --mode, --action, -f --follow.
std::vector<std::string> flags_in(const std::string& word) {
  std::vector<std::string> out;
  const std::regex flag(R"(^[\[(]*(--?[A-Za-z][A-Za-z0-9-]*))");
  std::istringstream parts(word);
  for (std::string part; std::getline(parts, part, '|');) {
    std::smatch m;
    if (std::regex_search(part, m, flag)) out.push_back(m[1]);
  }
  return out;
}

class CliTree {
 public:
  const Command& at(const std::string& path) {
    auto it = commands_.find(path);
    if (it == commands_.end()) it = commands_.emplace(path, parse_help(path, help_of(path))).first;
    return it->second;
  }

 private:
  std::map<std::string, Command> commands_;
};

// Why the command line is not a real sluicectl command; empty: it is.
std::string check_command(CliTree& tree, const std::string& line) {
  const auto words = words_of(line);
  const Command& top = tree.at("");
  std::size_t i = 0;
  // Global options before the command ("--socket PATH", "--json").
  while (i < words.size() && !flags_in(words[i]).empty()) {
    for (const auto& f : flags_in(words[i]))
      if (!top.flags.count(f)) return "global option " + f + " is not one of sluicectl's";
    ++i;
    if (i < words.size() && flags_in(words[i]).empty() && !top.subcommands.count(words[i])) ++i;  // its value
  }
  if (i == words.size()) return "no command";
  if (words[i] == "COMMAND") return "";  // the synopsis line
  std::string path;
  const Command* command = &top;
  while (i < words.size() && command->subcommands.count(words[i])) {
    path = command->subcommands.at(words[i]);
    command = &tree.at(path);
    ++i;
  }
  if (path.empty()) return "'" + words[i] + "' is not a sluicectl command";
  if (!command->subcommands.empty()) {
    // A group needs one of its subcommands ("block" alone does nothing).
    return "'" + path + "' needs a subcommand" + (i < words.size() ? ", '" + words[i] + "' is none" : "");
  }
  for (; i < words.size(); ++i)
    for (const auto& f : flags_in(words[i]))
      if (!command->flags.count(f) && !top.flags.count(f)) return "'" + path + "' has no option " + f;
  return "";
}

TEST(DocsCli, EveryCommandLineNamesRealSubcommandsAndFlags) {
  CliTree tree;
  ASSERT_GE(tree.at("").subcommands.size(), 10u) << "sluicectl --help lists its commands";
  const auto commands = command_lines(read_text(kSource / "docs" / "cli.md"));
  ASSERT_GE(commands.size(), 40u) << "docs/cli.md shows every command";
  std::set<std::string> documented;
  for (const auto& [number, line] : commands) {
    EXPECT_EQ(check_command(tree, line), "") << "docs/cli.md:" << number << ": sluicectl " << line;
    auto words = words_of(line);
    std::string path;
    const Command* command = &tree.at("");
    for (const auto& w : words) {
      if (!command->subcommands.count(w)) {
        if (!path.empty()) break;
        continue;
      }
      path = command->subcommands.at(w);
      command = &tree.at(path);
    }
    documented.insert(path);
  }
  // And the other way round: every leaf command of the real CLI appears in the reference.
  std::vector<std::string> pending{""};
  while (!pending.empty()) {
    const std::string path = pending.back();
    pending.pop_back();
    const Command& command = tree.at(path);
    for (const auto& [name, child] : command.subcommands) pending.push_back(child);
    if (command.subcommands.empty() && !path.empty())
      EXPECT_TRUE(documented.count(path)) << "sluicectl " << path << " is not in docs/cli.md";
  }
}

TEST(DocsCli, AWrongCommandOrFlagIsCaught) {
  CliTree tree;
  EXPECT_NE(check_command(tree, "atach eth0"), "");
  EXPECT_NE(check_command(tree, "block"), "");
  EXPECT_NE(check_command(tree, "block add 198.18.0.0/15 --no-such-flag"), "");
  EXPECT_EQ(check_command(tree, "block add 198.18.0.0/15 --action drop"), "");
  EXPECT_EQ(check_command(tree, "--json status"), "");
}

}  // namespace
}  // namespace sluice::test
