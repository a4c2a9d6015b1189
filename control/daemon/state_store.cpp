#include "state_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <filesystem>

namespace sluice::daemon {
namespace {

// The file holds secrets of a kind (what the box lets through): not world-readable.
constexpr mode_t state_file_mode = 0640;

// state.yaml's first line when the prefix lists are kept apart: "# prefix lists: prefixes.<G>.list ...".
constexpr std::string_view prefix_header_start = "# prefix lists: prefixes.";

std::string prefix_header(std::uint64_t generation) {
  return std::string(prefix_header_start) + std::to_string(generation) +
         ".list and its .journal (kept apart from this file: they can hold millions of entries)\n";
}

std::optional<std::uint64_t> header_generation(std::string_view text) {
  if (!text.starts_with(prefix_header_start)) return std::nullopt;
  text.remove_prefix(prefix_header_start.size());
  std::uint64_t generation = 0;
  const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), generation);
  if (status != std::errc{} || std::string_view(end, text.data() + text.size()).substr(0, 6) != ".list ") return std::nullopt;
  return generation;
}

// The state without its prefix lists (written apart), copied section by section: no copy of a million entries.
config::DesiredState without_prefix_lists(const config::DesiredState& state) {
  config::DesiredState out;
  out.interfaces = state.interfaces;
  out.defaults = state.defaults;
  out.filter = state.filter;
  out.rules = state.rules;
  out.limits = state.limits;
  out.lb = state.lb;
  out.forward = state.forward;
  return out;
}

// Appends all of `bytes` and fsyncs them; on error the file is cut back to `length`.
Result<void> append_synced(const std::string& path, std::size_t length, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return maps::make_error("open", path, errno, maps::ErrnoSubject::Path);
  auto fail = [&](std::string_view what, int err) {
    (void)!::ftruncate(fd, static_cast<off_t>(length));  // best effort: a torn tail is ignored by the loader anyway
    ::close(fd);
    return maps::make_error(what, path, err, maps::ErrnoSubject::Path);
  };
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + written, bytes.size() - written, static_cast<off_t>(length + written));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("append to", errno);
    written += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd) != 0) return fail("fdatasync", errno);
  ::close(fd);
  return {};
}

template <class T>
void take(std::optional<T>& into, const std::optional<T>& from) {
  if (from) into = from;
}

dataplane::AttachMode to_dataplane(protocol::AttachMode mode) {
  return mode == protocol::AttachMode::Skb ? dataplane::AttachMode::Skb : dataplane::AttachMode::Native;
}

}  // namespace

config::DesiredState overlay(config::DesiredState live, const config::DesiredState& wanted) {
  take(live.interfaces, wanted.interfaces);
  take(live.prefix_lists, wanted.prefix_lists);
  take(live.rules, wanted.rules);
  take(live.limits, wanted.limits);
  take(live.lb, wanted.lb);  // one section: settings and VIPs together
  take(live.forward, wanted.forward);  // one section: settings, groups and routes
  if (wanted.filter) {
    config::FilterSection merged = live.filter.value_or(config::FilterSection{});
    take(merged.default_policy, wanted.filter->default_policy);
    live.filter = merged;
  }
  if (wanted.defaults) {
    config::Defaults merged = live.defaults.value_or(config::Defaults{});
    const config::Defaults& w = *wanted.defaults;
    take(merged.end_verdict, w.end_verdict);
    take(merged.tail_call_fail_verdict, w.tail_call_fail_verdict);
    take(merged.malformed_verdict, w.malformed_verdict);
    take(merged.non_ip_verdict, w.non_ip_verdict);
    take(merged.drop_fragments, w.drop_fragments);
    take(merged.stages, w.stages);
    take(merged.drop_sample_every, w.drop_sample_every);
    live.defaults = merged;
  }
  return live;
}

bool is_whole(const config::DesiredState& state) {
  if (!state.interfaces || !state.defaults || !state.filter || !state.filter->default_policy || !state.prefix_lists ||
      !state.rules || !state.limits || !state.lb || !state.forward)
    return false;
  const config::Defaults& d = *state.defaults;
  return d.end_verdict && d.tail_call_fail_verdict && d.malformed_verdict && d.non_ip_verdict && d.drop_fragments &&
         d.stages && d.drop_sample_every;
}

StateStore::StateStore(std::string state_dir) : state_dir_(std::move(state_dir)) {}

std::string StateStore::path() const { return state_dir_ + "/" + std::string(state_file); }

Result<std::optional<config::DesiredState>> StateStore::read() {
  if (state_dir_.empty()) return std::optional<config::DesiredState>{};
  auto text = read_file(path(), config::kMaxDocumentBytes);
  if (!text) return text.error();
  if (!*text) {
    remove_other_generations();
    return std::optional<config::DesiredState>{};
  }
  auto parsed = config::parse_desired_state(**text);
  if (!parsed) return maps::make_error_because("read desired state", path(), parsed.error().to_string(), EINVAL);
  generation_ = header_generation(**text);
  if (generation_) {
    const std::string snapshot_path = state_dir_ + "/" + prefix_snapshot_name(*generation_);
    auto snapshot = read_file(snapshot_path, kMaxSnapshotBytes);
    if (!snapshot) return snapshot.error();
    if (!*snapshot)
      return maps::make_error_because("read prefix lists", snapshot_path, path() + " names it, but it is missing", ENOENT);
    auto lists = parse_snapshot(**snapshot, snapshot_path);
    if (!lists) return lists.error();
    PrefixListIndex index;
    index.rebuild(*lists);
    const std::string journal_path = state_dir_ + "/" + prefix_journal_name(*generation_);
    // The bound the accept path keeps (it compacts before a record would cross it), plus a torn record's room.
    auto journal = read_file(journal_path, kJournalCompactBytes + kJournalCompactBytes);
    if (!journal) return journal.error();
    if (!*journal) return maps::make_error_because("read prefix lists", journal_path, path() + " names it, but it is missing", ENOENT);
    auto replayed = replay_journal(**journal, journal_path, *lists, index);
    if (!replayed) return replayed.error();
    if (replayed->torn_bytes) {
      // Never fsynced whole, so never reported accepted: cut off, so the next record follows a whole one.
      if (::truncate(journal_path.c_str(), static_cast<off_t>(replayed->whole_bytes)) != 0)
        return maps::make_error("cut the torn record off", journal_path, errno, maps::ErrnoSubject::Path);
    }
    journal_bytes_ = replayed->whole_bytes;
    persisted_digest_ = index.digest();
    parsed->prefix_lists = std::move(*lists);
  }
  remove_other_generations();
  return std::optional<config::DesiredState>{std::move(*parsed)};
}

void StateStore::remove_other_generations() const {
  // Leftovers of a change killed before its state.yaml rename, and their temp files.
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(state_dir_, error)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name.starts_with("prefixes.") || name.starts_with(".prefixes.");
    if (!ours) continue;
    if (generation_ && (name == prefix_snapshot_name(*generation_) || name == prefix_journal_name(*generation_))) continue;
    std::filesystem::remove(entry.path(), error);
  }
}

void StateStore::ensure_index() const {
  if (!index_stale_) return;
  index_.rebuild(live_.prefix_lists.value_or(config::PrefixLists{}));
  index_stale_ = false;
}

std::optional<ListedPrefix> StateStore::find_prefix(const std::string& prefix) const {
  if (!live_.prefix_lists) return std::nullopt;
  ensure_index();
  return index_.find(*live_.prefix_lists, prefix);
}

Result<void> StateStore::write_state(const config::DesiredState& state) {
  if (!state.prefix_lists) {
    // No prefix-list section (a partial state): none on disk either, so it reads back without one.
    if (auto written = write_file_atomically(path(), config::to_yaml(state), state_file_mode, before_rename_); !written)
      return written;
    generation_.reset();
    journal_bytes_ = 0;
    remove_other_generations();
    return {};
  }
  const config::PrefixLists& lists = *state.prefix_lists;
  const std::uint64_t digest = PrefixListIndex::digest_of(lists);
  const bool new_generation = !generation_ || digest != persisted_digest_;
  const std::uint64_t generation = new_generation ? generation_.value_or(0) + 1 : *generation_;
  if (new_generation) {
    auto text = snapshot_text(lists);
    if (!text) return text.error();
    if (auto written = write_file_atomically(state_dir_ + "/" + prefix_snapshot_name(generation), *text, state_file_mode); !written)
      return written;
    if (auto written = write_file_atomically(state_dir_ + "/" + prefix_journal_name(generation), "", state_file_mode); !written)
      return written;
  }
  // The commit point: state.yaml names the generation.
  if (auto written = write_file_atomically(path(), prefix_header(generation) + config::to_yaml(without_prefix_lists(state)),
                                           state_file_mode, before_rename_);
      !written)
    return written;
  if (new_generation) {
    generation_ = generation;
    persisted_digest_ = digest;
    journal_bytes_ = 0;
    remove_other_generations();
  }
  return {};
}

Result<void> StateStore::commit_prefix_changes(const std::vector<PrefixChange>& changes) {
  if (!live_.prefix_lists) {
    live_.prefix_lists.emplace();
    index_stale_ = true;
  }
  ensure_index();
  // A bulk change (a block load) would be a journal record bigger than a snapshot: compact right away.
  constexpr std::size_t shortest_record_line = 12;  // "- 0.0.0.0/0\n"
  const bool bulk = changes.size() * shortest_record_line > kJournalCompactBytes;
  auto record = bulk ? Result<std::string>(std::string()) : journal_record(changes);
  if (!record) return record.error();
  auto apply_all = [&] {
    std::vector<PrefixChange> inverse;
    inverse.reserve(changes.size());
    for (const auto& change : changes) inverse.push_back(index_.apply(*live_.prefix_lists, change));
    return inverse;
  };
  if (state_dir_.empty()) {
    apply_all();
    return {};
  }
  if (bulk || !generation_ || journal_bytes_ + record->size() > kJournalCompactBytes) {
    // Compaction: a new generation holding the lists with the changes.
    auto inverse = apply_all();
    if (auto written = write_state(live_); !written) {
      for (auto it = inverse.rbegin(); it != inverse.rend(); ++it) index_.apply(*live_.prefix_lists, *it);
      return written;
    }
    return {};
  }
  if (journal_hook_) journal_hook_("journal");
  const std::string journal_path = state_dir_ + "/" + prefix_journal_name(*generation_);
  if (auto appended = append_synced(journal_path, journal_bytes_, *record); !appended) return appended;
  if (journal_hook_) journal_hook_("journal-synced");
  journal_bytes_ += record->size();
  apply_all();
  persisted_digest_ = index_.digest();
  return {};
}

Result<std::optional<std::vector<config::InterfaceSpec>>> StateStore::read_legacy_interfaces() const {
  using Specs = std::optional<std::vector<config::InterfaceSpec>>;
  if (state_dir_.empty()) return Specs{};
  const std::string legacy = state_dir_ + "/" + std::string(legacy_interfaces_file);
  constexpr std::size_t max_legacy_bytes = 1 << 20;
  auto text = read_file(legacy, max_legacy_bytes);
  if (!text) return text.error();
  if (!*text) return Specs{};
  auto records = interfaces_from_json(**text, legacy);
  if (!records) return records.error();
  std::vector<config::InterfaceSpec> specs;
  for (const auto& record : *records) specs.push_back({record.name, to_dataplane(record.mode)});
  return Specs{std::move(specs)};
}

void StateStore::remove_legacy_interfaces() const {
  if (!state_dir_.empty()) ::unlink((state_dir_ + "/" + std::string(legacy_interfaces_file)).c_str());
}

Result<std::vector<std::string>> StateStore::sweep_temp_files() const {
  if (state_dir_.empty()) return std::vector<std::string>{};
  return daemon::sweep_temp_files(state_dir_, state_file);
}

Result<void> StateStore::commit(config::DesiredState next) {
  if (!state_dir_.empty()) {
    if (auto written = write_state(next); !written) return written;
  }
  const bool lists_changed = index_stale_ || !(next.prefix_lists == live_.prefix_lists);
  live_ = std::move(next);
  if (lists_changed) index_stale_ = true;
  return {};
}

}  // namespace sluice::daemon
