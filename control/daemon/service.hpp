#pragma once
// The ops of sluiced on the data plane, one method per op. Arguments arrive
// parsed and validated (control/protocol); each method either does all of
// its change or none (rolling back what it did before a failure) and answers
// a JSON result or a ProtocolError. No I/O on the socket here.
#include <boost/json.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "dataplane.hpp"
#include "desired_state.hpp"
#include "filter_table.hpp"
#include "ops.hpp"
#include "state_store.hpp"
#include "system.hpp"
#include "xdp_attachment.hpp"

namespace sluice::daemon {

using OpResult = boost::system::result<boost::json::value, protocol::ProtocolError>;

inline constexpr std::string_view entry_prog_name = "sluice_entry";
inline constexpr std::string_view entry_prog_pin = "prog_entry";

struct ServicePaths {
  std::string pin_dir;
  std::string state_dir;
};

class Service {
 public:
  // The interfaces live in store.live().interfaces; attach and detach commit them there.
  Service(dataplane::Dataplane& plane, filter::FilterTable& table, StateStore& store, ServicePaths paths,
          std::string version);

  // At startup: finds the interfaces of the desired state, keeps
  // attachments that run a sluice entry program, re-attaches missing ones
  // (cold start), and pins the entry program. Problems with one interface are
  // logged and do not stop the others. Returns what leaves an interface not
  // enforcing this daemon's rules (an entry program on other maps that could
  // not be replaced): the start reports itself degraded with it.
  std::vector<std::string> restore_interfaces();
  // Kernel side of `apply`: detaches what `from` has and `to` has not,
  // attaches what `to` adds (a mode change is a detach and an attach). On an
  // error it undoes its own steps and says what failed. The caller commits.
  Result<void> reconcile_interfaces(const std::vector<config::InterfaceSpec>& from,
                                    const std::vector<config::InterfaceSpec>& to);

  OpResult status() const;
  OpResult attach(const protocol::AttachArgs& args);
  OpResult detach(const protocol::DetachArgs& args);
  OpResult config_get() const;
  OpResult stats() const;
  // shutdown {"detach":true}: detaches every interface, removes the pins and
  // empties the interfaces of the desired state (rules and the rest stay for
  // the next start). The caller stops the daemon afterwards.
  OpResult detach_everything();

  std::vector<InterfaceRecord> interfaces() const;

 private:
  Result<void> save_interfaces(const std::vector<InterfaceRecord>& interfaces);
  Result<void> pin_entry_program();

  dataplane::Dataplane& plane_;
  filter::FilterTable& table_;
  StateStore& store_;
  ServicePaths paths_;
  std::string version_;
  std::chrono::steady_clock::time_point started_;
};

// The defaults section as the data plane holds it now (every key set).
config::Defaults defaults_of(const sluice_config& config, const filter::FilterSettings& settings);
// The data plane config with the keys `defaults` sets changed.
sluice_config apply_defaults(sluice_config config, const config::Defaults& defaults);

// The config as the protocol shows it, and a patch applied to a config.
boost::json::object config_to_json(const sluice_config& config, std::uint32_t drop_sample_every = 0);
sluice_config apply_patch(sluice_config config, const protocol::ConfigPatch& patch);

}  // namespace sluice::daemon
