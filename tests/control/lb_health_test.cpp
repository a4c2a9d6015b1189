// The balancer's built-in health checks against real servers: the checker
// runs in the box namespace, TCP and HTTP servers (the test's own Asio
// acceptors) in the client namespace of a TwoHostLab. A backend goes Down
// after exactly `fall` failed probes and Up after `rise` good ones; a
// connect that gets no answer ends at the timeout; a VIP without a check
// is never probed. Every wait is bounded.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "health_checker.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::lb {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

constexpr std::uint16_t server_port = 8080;
constexpr std::uint32_t interval_ms = 100;  // the model's minimum: the test stays short
constexpr std::uint32_t timeout_ms = 50;
constexpr std::uint32_t rise = 2;
constexpr std::uint32_t fall = 3;
constexpr auto phase_deadline = 5s;

// A server of the test's own in the namespace it is made in: accepts and
// answers (HTTP: the status line of `status`), until stopped.
class Server {
 public:
  Server(asio::io_context& io, const test::Netns& ns, bool http) : io_(io), ns_(ns), http_(http) {}
  ~Server() { stop(); }
  void start() {
    test::EnterNetns in(ns_);  // the socket lives in the namespace it was made in
    acceptor_ = std::make_shared<asio::ip::tcp::acceptor>(
        io_, asio::ip::tcp::endpoint(asio::ip::make_address(test::TwoHostLab::client_v4), server_port));
    asio::co_spawn(io_, serve(acceptor_, http_, status_), asio::detached);
  }
  void stop() {
    if (!acceptor_) return;
    boost::system::error_code ignored;
    acceptor_->close(ignored);
    acceptor_.reset();
  }
  void answer(int status) { *status_ = status; }

 private:
  static asio::awaitable<void> serve(std::shared_ptr<asio::ip::tcp::acceptor> acceptor, bool http,
                                     std::shared_ptr<int> status) {
    for (;;) {
      auto [ec, socket] = co_await acceptor->async_accept(use_tuple);
      if (ec) co_return;
      if (!http) continue;  // a TCP check needs the handshake only; the socket closes here
      std::string request;
      auto [read_ec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(request, 4096), "\r\n\r\n", use_tuple);
      if (read_ec) continue;
      const std::string answer = "HTTP/1.0 " + std::to_string(*status) + " X\r\nContent-Length: 0\r\n\r\n";
      co_await asio::async_write(socket, asio::buffer(answer), use_tuple);
    }
  }

  asio::io_context& io_;
  const test::Netns& ns_;
  bool http_;
  std::shared_ptr<int> status_ = std::make_shared<int>(200);
  std::shared_ptr<asio::ip::tcp::acceptor> acceptor_;
};

struct Reported {
  Health health;
  std::uint64_t successes;
  std::uint64_t failures;
};

class HealthLab : public ::testing::Test {
 protected:
  void SetUp() override { SLUICE_REQUIRE_NETNS(); }

  LbConfig config(HealthCheck::Kind kind, const char* backend = test::TwoHostLab::client_v4) {
    HealthCheck check;
    check.kind = kind;
    check.port = server_port;
    check.http_path = "/healthz";
    check.interval_ms = interval_ms;
    check.timeout_ms = timeout_ms;
    check.rise = rise;
    check.fall = fall;
    Vip vip;
    vip.key = *parse_vip_key("198.18.0.10:80/tcp");
    vip.check = check;
    vip.backends.push_back(Backend{*parse_address(backend)});
    LbConfig out;
    out.vips.push_back(vip);
    return out;
  }

  // Runs the io_context until pred() or the deadline; true when pred() held.
  bool run_until(const std::function<bool()>& pred, std::chrono::steady_clock::duration deadline = phase_deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (!pred() && std::chrono::steady_clock::now() < end) {
      if (io_.stopped()) io_.restart();
      io_.run_for(10ms);
    }
    return pred();
  }

  void make_checker() {
    checker_ = std::make_unique<HealthChecker>(io_, [this](const VipKey&, const Address&, Health health) {
      auto status = checker_->status();
      reports_.push_back({health, status.empty() ? 0 : status[0].successes, status.empty() ? 0 : status[0].failures});
    });
  }

  asio::io_context io_;
  std::optional<test::TwoHostLab> lab_;
  std::vector<Reported> reports_;
  std::unique_ptr<HealthChecker> checker_;
};

TEST_F(HealthLab, TcpCheckDownAfterFallFailuresUpAfterRiseSuccesses) {
  lab_.emplace();
  Server server(io_, lab_->client, false);
  server.start();
  test::EnterNetns in_box(lab_->box);
  make_checker();
  checker_->reconcile(config(HealthCheck::Kind::Tcp));

  ASSERT_TRUE(run_until([&] { return !reports_.empty(); })) << "never reported up";
  EXPECT_EQ(reports_[0].health, Health::Up);
  EXPECT_EQ(reports_[0].successes, rise) << "up after exactly rise successes";
  EXPECT_EQ(reports_[0].failures, 0u);

  server.stop();  // connects are refused from now on
  ASSERT_TRUE(run_until([&] { return reports_.size() >= 2; })) << "never reported down";
  EXPECT_EQ(reports_[1].health, Health::Down);
  EXPECT_EQ(reports_[1].failures, fall) << "down after exactly fall failures";

  server.start();
  ASSERT_TRUE(run_until([&] { return reports_.size() >= 3; })) << "never came back";
  EXPECT_EQ(reports_[2].health, Health::Up);
  EXPECT_EQ(reports_[2].successes, reports_[1].successes + rise) << "back after exactly rise successes";
  EXPECT_EQ(reports_.size(), 3u) << "only transitions are reported";
  checker_->stop();
}

TEST_F(HealthLab, HttpCheckFollowsTheStatusCode) {
  lab_.emplace();
  Server server(io_, lab_->client, true);
  server.start();
  test::EnterNetns in_box(lab_->box);
  make_checker();
  checker_->reconcile(config(HealthCheck::Kind::Http));
  ASSERT_TRUE(run_until([&] { return !reports_.empty(); }));
  EXPECT_EQ(reports_[0].health, Health::Up);

  server.answer(503);  // the server answers, but not healthy
  ASSERT_TRUE(run_until([&] { return reports_.size() >= 2; }));
  EXPECT_EQ(reports_[1].health, Health::Down);
  EXPECT_EQ(reports_[1].failures, fall);

  server.answer(204);
  ASSERT_TRUE(run_until([&] { return reports_.size() >= 3; }));
  EXPECT_EQ(reports_[2].health, Health::Up);

  // The check removed: the backend is unchecked again (in the table), and no probe runs.
  LbConfig unchecked = config(HealthCheck::Kind::Http);
  unchecked.vips[0].check.reset();
  checker_->reconcile(unchecked);
  ASSERT_TRUE(run_until([&] { return reports_.size() >= 4; }));
  EXPECT_EQ(reports_[3].health, Health::Unchecked);
  EXPECT_TRUE(checker_->status().empty());
}

// A Down backend whose check is edited (here its interval) stays Down: it
// must not re-enter the table for new flows before the new check's rise.
TEST_F(HealthLab, ChangedCheckKeepsADownBackendDown) {
  lab_.emplace();
  Server server(io_, lab_->client, false);
  test::EnterNetns in_box(lab_->box);
  make_checker();
  checker_->reconcile(config(HealthCheck::Kind::Tcp));  // nothing listens: refused
  ASSERT_TRUE(run_until([&] { return !reports_.empty(); }));
  ASSERT_EQ(reports_[0].health, Health::Down);

  LbConfig edited = config(HealthCheck::Kind::Tcp);
  edited.vips[0].check->interval_ms = interval_ms + 50;
  checker_->reconcile(edited);
  io_.run_for(std::chrono::milliseconds(4 * (interval_ms + 50)));
  EXPECT_EQ(reports_.size(), 1u) << "no transition reported: it was Down and still fails";
  ASSERT_EQ(checker_->status().size(), 1u);
  EXPECT_EQ(checker_->status()[0].health, Health::Down);

  server.start();
  ASSERT_TRUE(run_until([&] { return reports_.size() >= 2; }));
  EXPECT_EQ(reports_[1].health, Health::Up);
  checker_->stop();
}

TEST_F(HealthLab, SilentBackendFailsAtTheTimeout) {
  lab_.emplace();
  test::EnterNetns in_box(lab_->box);
  make_checker();
  // On the lab's segment, but no host answers ARP for it: the connect never completes.
  const auto started = std::chrono::steady_clock::now();
  checker_->reconcile(config(HealthCheck::Kind::Tcp, "198.18.0.77"));
  ASSERT_TRUE(run_until([&] { return !reports_.empty(); }));
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(reports_[0].health, Health::Down);
  EXPECT_EQ(reports_[0].failures, fall);
  // fall probes of at most timeout_ms each, with interval_ms between them, plus scheduling slack.
  EXPECT_LT(took, std::chrono::milliseconds(fall * (timeout_ms + interval_ms) + 1000));
  checker_->stop();
}

TEST_F(HealthLab, VipWithoutCheckIsNeverProbed) {
  make_checker();
  LbConfig config_without = config(HealthCheck::Kind::Tcp, "198.18.0.77");
  config_without.vips[0].check.reset();
  checker_->reconcile(config_without);
  EXPECT_TRUE(checker_->status().empty());
  io_.run_for(std::chrono::milliseconds(3 * interval_ms));
  EXPECT_TRUE(reports_.empty());
}

}  // namespace
}  // namespace sluice::lb
