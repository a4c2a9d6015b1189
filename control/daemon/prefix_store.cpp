#include "prefix_store.hpp"

#include <charconv>
#include <cstdio>

namespace sluice::daemon {
namespace {

constexpr std::string_view snapshot_header = "sluice-prefix-lists 1";

std::uint64_t fnv1a(std::string_view bytes, std::uint64_t hash = 1469598103934665603ull) {
  for (unsigned char byte : bytes) hash = (hash ^ byte) * 1099511628211ull;
  return hash;
}

std::string hex(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// "b 198.18.0.0/24", "a 2001:db8::/32 pass-track", "b 198.18.1.0/24 rate-limit web".
std::string entry_words(const ListedPrefix& listed) {
  std::string out = listed.allow ? "a " : "b ";
  out += listed.spec.prefix;
  if (listed.spec.action) out += " " + std::string(filter::to_string(*listed.spec.action));
  if (listed.spec.rate_class) out += " " + *listed.spec.rate_class;
  return out;
}

std::uint64_t entry_hash(const ListedPrefix& listed) { return fnv1a(entry_words(listed)); }

std::vector<std::string_view> words_of(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t at = 0;
  while (at < line.size()) {
    const std::size_t end = std::min(line.find(' ', at), line.size());
    if (end > at) words.push_back(line.substr(at, end - at));
    at = end + 1;
  }
  return words;
}

// The words after the list letter: prefix [action [class]].
std::optional<std::string> parse_entry(std::span<const std::string_view> words, bool allow, ListedPrefix& out) {
  if (words.empty() || words.size() > 3) return "expected a prefix, an optional action and class";
  auto prefix = maps::parse_prefix(words[0]);
  if (!prefix) return prefix.error().message;
  out.allow = allow;
  out.spec = config::PrefixEntry{maps::to_string(*prefix), std::nullopt, std::nullopt};
  if (out.spec.prefix != words[0]) return "prefix '" + std::string(words[0]) + "' is not in canonical form";
  if (words.size() >= 2) {
    auto action = filter::parse_action(words[1]);
    if (!action) return action.error().message;
    out.spec.action = *action;
  }
  if (words.size() == 3) {
    if (!config::is_class_name(words[2])) return "bad class name '" + std::string(words[2]) + "'";
    out.spec.rate_class = std::string(words[2]);
  }
  return std::nullopt;
}

Error at_line(const std::string& path, std::size_t line, const std::string& reason) {
  return maps::make_error_because("read prefix lists", path + ":" + std::to_string(line), reason, EINVAL);
}

}  // namespace

void PrefixListIndex::rebuild(const config::PrefixLists& lists) {
  where_.clear();
  where_.reserve(lists.block.size() + lists.allow.size());
  digest_ = 0;
  for (bool allow : {false, true}) {
    const auto& list = allow ? lists.allow : lists.block;
    for (std::size_t i = 0; i < list.size(); ++i) {
      where_[list[i].prefix] = {allow, i};
      digest_ += entry_hash({allow, list[i]});
    }
  }
}

std::uint64_t PrefixListIndex::digest_of(const config::PrefixLists& lists) {
  std::uint64_t digest = 0;
  for (const auto& entry : lists.block) digest += entry_hash({false, entry});
  for (const auto& entry : lists.allow) digest += entry_hash({true, entry});
  return digest;
}

std::optional<ListedPrefix> PrefixListIndex::find(const config::PrefixLists& lists, const std::string& prefix) const {
  auto at = where_.find(prefix);
  if (at == where_.end()) return std::nullopt;
  const auto& list = at->second.first ? lists.allow : lists.block;
  return ListedPrefix{at->second.first, list[at->second.second]};
}

PrefixChange PrefixListIndex::apply(config::PrefixLists& lists, const PrefixChange& change) {
  auto at = where_.find(change.prefix);
  PrefixChange inverse{change.prefix, std::nullopt};
  if (at != where_.end()) {
    auto& list = at->second.first ? lists.allow : lists.block;
    inverse.now = ListedPrefix{at->second.first, list[at->second.second]};
    if (change.now && change.now->allow == at->second.first) {
      // Same list: rewritten in place (one lookup: a block load of a million listed prefixes).
      digest_ -= entry_hash(*inverse.now);
      list[at->second.second] = change.now->spec;
      digest_ += entry_hash(*change.now);
      return inverse;
    }
  }
  if (at != where_.end()) {
    auto& list = at->second.first ? lists.allow : lists.block;
    const std::size_t hole = at->second.second;
    digest_ -= entry_hash({at->second.first, list[hole]});
    const bool in_allow = at->second.first;
    where_.erase(at);
    if (hole + 1 != list.size()) {
      list[hole] = std::move(list.back());
      where_[list[hole].prefix] = {in_allow, hole};
    }
    list.pop_back();
  }
  if (change.now) {
    auto& list = change.now->allow ? lists.allow : lists.block;
    list.push_back(change.now->spec);
    where_[change.prefix] = {change.now->allow, list.size() - 1};
    digest_ += entry_hash(*change.now);
  }
  return inverse;
}

std::string prefix_snapshot_name(std::uint64_t generation) { return "prefixes." + std::to_string(generation) + ".list"; }
std::string prefix_journal_name(std::uint64_t generation) { return "prefixes." + std::to_string(generation) + ".journal"; }

Result<std::string> snapshot_text(const config::PrefixLists& lists) {
  std::string out(snapshot_header);
  out += '\n';
  out.reserve((lists.block.size() + lists.allow.size()) * 24 + 64);
  std::uint64_t hash = fnv1a("");
  std::size_t count = 0;
  for (bool allow : {false, true}) {
    for (const auto& entry : allow ? lists.allow : lists.block) {
      std::string line = entry_words({allow, entry});
      if (line.size() + 1 > kMaxPrefixStoreLineBytes)
        return maps::make_error_because("write prefix lists", entry.prefix,
                                        "its line would be over " + std::to_string(kMaxPrefixStoreLineBytes) + " bytes",
                                        EINVAL);
      line += '\n';
      hash = fnv1a(line, hash);
      out += line;
      ++count;
    }
  }
  out += "end " + std::to_string(count) + " " + hex(hash) + "\n";
  return out;
}

Result<config::PrefixLists> parse_snapshot(std::string_view text, const std::string& path) {
  config::PrefixLists lists;
  std::size_t number = 0, at = 0, count = 0;
  std::uint64_t hash = fnv1a("");
  bool ended = false;
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    ++number;
    if (end == std::string_view::npos) return at_line(path, number, "the last line has no newline (a truncated file)");
    const std::string_view line = text.substr(at, end - at);
    const std::string_view with_newline = text.substr(at, end - at + 1);
    at = end + 1;
    if (ended) return at_line(path, number, "text after the end line");
    if (line.size() >= kMaxPrefixStoreLineBytes) return at_line(path, number, "line over " + std::to_string(kMaxPrefixStoreLineBytes) + " bytes");
    if (number == 1) {
      if (line != snapshot_header) return at_line(path, number, "not a prefix-list snapshot (expected '" + std::string(snapshot_header) + "')");
      continue;
    }
    const auto words = words_of(line);
    if (!words.empty() && words[0] == "end") {
      if (words.size() != 3 || words[1] != std::to_string(count) || words[2] != hex(hash))
        return at_line(path, number, "the end line does not match the " + std::to_string(count) + " entries before it (a damaged file)");
      ended = true;
      continue;
    }
    if (words.empty() || (words[0] != "a" && words[0] != "b")) return at_line(path, number, "expected 'a' or 'b' and a prefix");
    ListedPrefix listed;
    if (auto problem = parse_entry(std::span(words).subspan(1), words[0] == "a", listed)) return at_line(path, number, *problem);
    (listed.allow ? lists.allow : lists.block).push_back(std::move(listed.spec));
    hash = fnv1a(with_newline, hash);
    ++count;
  }
  if (!ended) return at_line(path, number, "no end line (a truncated file)");
  return lists;
}

Result<std::string> journal_record(const std::vector<PrefixChange>& changes) {
  std::string out;
  for (const auto& change : changes) {
    std::string line = change.now ? "+ " + entry_words(*change.now) : "- " + change.prefix;
    if (line.size() + 1 > kMaxPrefixStoreLineBytes)
      return maps::make_error_because("write prefix journal", change.prefix,
                                      "its line would be over " + std::to_string(kMaxPrefixStoreLineBytes) + " bytes", EINVAL);
    out += line + "\n";
  }
  out += "= " + std::to_string(changes.size()) + " " + hex(fnv1a(out)) + "\n";
  return out;
}

Result<Replayed> replay_journal(std::string_view text, const std::string& path, config::PrefixLists& lists,
                                PrefixListIndex& index) {
  Replayed replayed;
  std::size_t at = 0, number = 0, record_start = 0;
  std::vector<PrefixChange> pending;
  while (at < text.size()) {
    const std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) break;  // torn: never fsynced whole
    ++number;
    const std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.size() >= kMaxPrefixStoreLineBytes) return at_line(path, number, "line over " + std::to_string(kMaxPrefixStoreLineBytes) + " bytes");
    const auto words = words_of(line);
    if (words.empty()) return at_line(path, number, "empty line");
    if (words[0] == "=") {
      const std::string_view body = text.substr(record_start, at - record_start - line.size() - 1);
      if (words.size() != 3 || words[1] != std::to_string(pending.size()) || words[2] != hex(fnv1a(body))) {
        // A damaged record is the end of what was written whole; anything after it never counted.
        break;
      }
      for (const auto& change : pending) index.apply(lists, change);
      pending.clear();
      ++replayed.records;
      replayed.whole_bytes = at;
      record_start = at;
      continue;
    }
    PrefixChange change;
    if (words[0] == "-" && words.size() == 2) {
      change.prefix = std::string(words[1]);
    } else if (words[0] == "+" && words.size() >= 3 && (words[1] == "a" || words[1] == "b")) {
      ListedPrefix listed;
      if (auto problem = parse_entry(std::span(words).subspan(2), words[1] == "a", listed)) return at_line(path, number, *problem);
      change.prefix = listed.spec.prefix;
      change.now = std::move(listed);
    } else {
      return at_line(path, number, "expected '+ a|b PREFIX ...', '- PREFIX' or '= COUNT HASH'");
    }
    pending.push_back(std::move(change));
  }
  replayed.torn_bytes = text.size() - replayed.whole_bytes;
  return replayed;
}

}  // namespace sluice::daemon
