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
#include "ops.hpp"
#include "system.hpp"
#include "xdp_attachment.hpp"

namespace sluice::daemon {

using OpResult = boost::system::result<boost::json::value, protocol::ProtocolError>;

inline constexpr std::string_view entry_prog_name = "sluice_entry";
inline constexpr std::string_view entry_prog_pin = "prog_entry";
inline constexpr std::string_view interfaces_file = "interfaces.json";

struct ServicePaths {
  std::string pin_dir;
  std::string state_dir;
};

class Service {
 public:
  Service(dataplane::Dataplane& plane, ServicePaths paths, std::string version);

  // At startup: finds the interfaces of <state-dir>/interfaces.json, keeps
  // attachments that run a sluice entry program, re-attaches missing ones
  // (cold start), and pins the entry program. Problems with one interface are
  // logged and do not stop the others.
  void restore_interfaces();

  OpResult status() const;
  OpResult attach(const protocol::AttachArgs& args);
  OpResult detach(const protocol::DetachArgs& args);
  OpResult config_get() const;
  OpResult config_set(const protocol::ConfigPatch& patch);
  OpResult stats() const;
  // shutdown {"detach":true}: detaches every interface, removes the pins and
  // the interface state. The caller stops the daemon afterwards.
  OpResult detach_everything();

  const std::vector<InterfaceRecord>& interfaces() const noexcept { return interfaces_; }

 private:
  std::string interfaces_path() const;
  Result<void> save_interfaces(const std::vector<InterfaceRecord>& interfaces);
  Result<void> pin_entry_program();

  dataplane::Dataplane& plane_;
  ServicePaths paths_;
  std::string version_;
  std::chrono::steady_clock::time_point started_;
  std::vector<InterfaceRecord> interfaces_;
};

// The config as the protocol shows it, and a patch applied to a config.
boost::json::object config_to_json(const sluice_config& config);
sluice_config apply_patch(sluice_config config, const protocol::ConfigPatch& patch);

}  // namespace sluice::daemon
