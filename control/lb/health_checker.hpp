#pragma once
// Built-in health checks of the balancer's backends, run by sluiced on its
// one io_context (C++20 coroutines): per VIP with a `check`, a TCP connect
// or an HTTP GET to each backend's address on the check's port (the VIP's
// port when the check names none), every interval_ms.
//
// A backend starts unchecked (in the table). `fall` failures in a row make
// it Down (out of the Maglev table for new flows; its connections stay),
// `rise` successes in a row make it Up again. Only transitions are
// reported. Backends of VIPs without a check are never probed: always up.
//
// Bounded: one probe in flight per backend (the next starts after the last
// ended), every connect, write and read within timeout_ms, an HTTP answer
// read into at most max_http_response_bytes.
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "lb_model.hpp"
#include "lb_table.hpp"

namespace sluice::lb {

inline constexpr std::size_t max_http_response_bytes = 1024;  // the status line is all we read

class HealthChecker {
 public:
  using Report = std::function<void(const VipKey& vip, const Address& backend, Health health)>;

  HealthChecker(boost::asio::io_context& io, Report report);
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;
  ~HealthChecker();

  // Follows `config`: probes start for new (VIP, backend) pairs with a
  // check, stop for those gone (a backend whose check was removed is
  // reported Unchecked, so it is back in the table). A pair whose check is
  // unchanged keeps its state and counts.
  void reconcile(const LbConfig& config);
  void stop();

  struct ProbeStatus {
    VipKey vip;
    Address backend;
    Health health = Health::Unchecked;
    std::uint64_t successes = 0;  // probes, in total
    std::uint64_t failures = 0;
  };
  std::vector<ProbeStatus> status() const;

  struct Probe;  // one (VIP, backend): its check loop's state

 private:
  boost::asio::io_context& io_;
  Report report_;
  std::map<std::pair<VipKey, Address>, std::shared_ptr<Probe>> probes_;
};

}  // namespace sluice::lb
