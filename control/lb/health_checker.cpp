#include "health_checker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <charconv>
#include <chrono>
#include <string>

namespace sluice::lb {
namespace {

namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr int http_ok_first = 200;
constexpr int http_ok_last = 399;  // 2xx and 3xx: the server answers; a redirect is not a failure

asio::ip::tcp::endpoint endpoint_of(const Address& address, std::uint16_t port) {
  if (address.family == 4) {
    asio::ip::address_v4::bytes_type bytes{};
    std::copy_n(address.bytes.begin(), bytes.size(), bytes.begin());
    return {asio::ip::address_v4(bytes), port};
  }
  asio::ip::address_v6::bytes_type bytes{};
  std::copy_n(address.bytes.begin(), bytes.size(), bytes.begin());
  return {asio::ip::address_v6(bytes), port};
}

// "HTTP/1.1 204 No Content\r\n" -> 204; anything else -> 0.
int status_code(std::string_view line) {
  if (!line.starts_with("HTTP/")) return 0;
  const auto space = line.find(' ');
  if (space == std::string_view::npos || line.size() < space + 4) return 0;
  int code = 0;
  const char* first = line.data() + space + 1;
  const auto [end, error] = std::from_chars(first, first + 3, code);
  if (error != std::errc{} || end != first + 3) return 0;
  return code;
}

}  // namespace

struct HealthChecker::Probe {
  Probe(asio::any_io_executor executor, VipKey vip_, Address backend_, HealthCheck check_, Report report_)
      : vip(vip_), backend(backend_), check(std::move(check_)), report(std::move(report_)), pause(executor) {}

  VipKey vip;
  Address backend;
  HealthCheck check;
  Report report;
  asio::steady_timer pause;  // between probes; cancelled by stop
  bool stopped = false;
  Health health = Health::Unchecked;
  std::uint32_t success_run = 0, failure_run = 0;
  std::uint64_t successes = 0, failures = 0;

  std::uint16_t port() const { return check.port ? check.port : vip.port; }

  // One check within timeout_ms in all (connect, request, status line).
  asio::awaitable<bool> once() {
    auto executor = co_await asio::this_coro::executor;
    asio::ip::tcp::socket socket(executor);
    asio::steady_timer deadline(executor, std::chrono::milliseconds(check.timeout_ms));
    const auto target = endpoint_of(backend, port());
    auto connected = co_await (socket.async_connect(target, use_tuple) || deadline.async_wait(use_tuple));
    if (connected.index() != 0 || std::get<0>(std::get<0>(connected))) co_return false;
    if (check.kind == HealthCheck::Kind::Tcp) co_return true;
    const std::string host = backend.family == 6 ? "[" + to_string(backend) + "]" : to_string(backend);
    const std::string request = "GET " + check.http_path + " HTTP/1.0\r\nHost: " + host +
                                "\r\nUser-Agent: sluiced-health\r\nConnection: close\r\n\r\n";
    auto written = co_await (asio::async_write(socket, asio::buffer(request), use_tuple) || deadline.async_wait(use_tuple));
    if (written.index() != 0 || std::get<0>(std::get<0>(written))) co_return false;
    std::string answer;
    auto read = co_await (asio::async_read_until(socket, asio::dynamic_buffer(answer, max_http_response_bytes), "\r\n",
                                                 use_tuple) ||
                          deadline.async_wait(use_tuple));
    if (read.index() != 0 || std::get<0>(std::get<0>(read))) co_return false;
    const int code = status_code(answer);
    co_return code >= http_ok_first && code <= http_ok_last;
  }

  void count(bool ok) {
    if (ok) {
      ++successes;
      ++success_run;
      failure_run = 0;
      if (health != Health::Up && success_run >= check.rise) transition(Health::Up);
    } else {
      ++failures;
      ++failure_run;
      success_run = 0;
      if (health != Health::Down && failure_run >= check.fall) transition(Health::Down);
    }
  }

  void transition(Health next) {
    health = next;
    if (report) report(vip, backend, next);
  }
};

namespace {

asio::awaitable<void> run_probe(std::shared_ptr<HealthChecker::Probe> probe) {
  while (!probe->stopped) {
    const bool ok = co_await probe->once();
    if (probe->stopped) break;
    probe->count(ok);
    probe->pause.expires_after(std::chrono::milliseconds(probe->check.interval_ms));
    co_await probe->pause.async_wait(use_tuple);
  }
}

}  // namespace

HealthChecker::HealthChecker(asio::io_context& io, Report report) : io_(io), report_(std::move(report)) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::reconcile(const LbConfig& config) {
  std::map<std::pair<VipKey, Address>, HealthCheck> wanted;
  for (const auto& vip : config.vips)
    if (vip.check)
      for (const auto& backend : vip.backends) wanted.emplace(std::pair{vip.key, backend.address}, *vip.check);
  // A backend whose check changed keeps the health it has until the new
  // check's rise/fall says otherwise: a Down backend must not re-enter the
  // table (and take new flows) just because the interval changed.
  std::map<std::pair<VipKey, Address>, Health> carried;
  for (auto it = probes_.begin(); it != probes_.end();) {
    auto found = wanted.find(it->first);
    if (found != wanted.end() && found->second == it->second->check) {
      ++it;
      continue;
    }
    auto& probe = *it->second;
    probe.stopped = true;
    probe.pause.cancel();
    if (found != wanted.end()) {
      carried.emplace(it->first, probe.health);
    } else if (probe.health != Health::Unchecked && report_) {
      // Its check (or its backend) is gone: back to unchecked, in the table.
      // Posted: reconcile runs inside a change of the table, which must not be re-entered.
      asio::post(io_, [report = report_, vip = probe.vip, backend = probe.backend] { report(vip, backend, Health::Unchecked); });
    }
    it = probes_.erase(it);
  }
  for (const auto& [key, check] : wanted) {
    if (probes_.contains(key)) continue;
    auto probe = std::make_shared<Probe>(io_.get_executor(), key.first, key.second, check, report_);
    if (auto kept = carried.find(key); kept != carried.end()) probe->health = kept->second;
    probes_.emplace(key, probe);
    asio::co_spawn(io_, run_probe(probe), asio::detached);
  }
}

void HealthChecker::stop() {
  for (auto& [key, probe] : probes_) {
    probe->stopped = true;
    probe->pause.cancel();
  }
  probes_.clear();
}

std::vector<HealthChecker::ProbeStatus> HealthChecker::status() const {
  std::vector<ProbeStatus> out;
  for (const auto& [key, probe] : probes_)
    out.push_back(ProbeStatus{probe->vip, probe->backend, probe->health, probe->successes, probe->failures});
  return out;
}

}  // namespace sluice::lb
