#include "state_store.hpp"

#include <unistd.h>

#include <cerrno>

namespace sluice::daemon {
namespace {

// The file holds secrets of a kind (what the box lets through): not world-readable.
constexpr mode_t state_file_mode = 0640;

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
      !state.rules || !state.limits || !state.lb)
    return false;
  const config::Defaults& d = *state.defaults;
  return d.end_verdict && d.tail_call_fail_verdict && d.malformed_verdict && d.non_ip_verdict && d.drop_fragments &&
         d.stages && d.drop_sample_every;
}

StateStore::StateStore(std::string state_dir) : state_dir_(std::move(state_dir)) {}

std::string StateStore::path() const { return state_dir_ + "/" + std::string(state_file); }

Result<std::optional<config::DesiredState>> StateStore::read() const {
  if (state_dir_.empty()) return std::optional<config::DesiredState>{};
  auto text = read_file(path(), config::kMaxDocumentBytes);
  if (!text) return text.error();
  if (!*text) return std::optional<config::DesiredState>{};
  auto parsed = config::parse_desired_state(**text);
  if (!parsed) return maps::make_error_because("read desired state", path(), parsed.error().to_string(), EINVAL);
  return std::optional<config::DesiredState>{std::move(*parsed)};
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
    if (auto written = write_file_atomically(path(), config::to_yaml(next), state_file_mode, before_rename_); !written) return written;
  }
  live_ = std::move(next);
  return {};
}

}  // namespace sluice::daemon
