// sluiced's HTTP endpoint (control/metrics/http_server.*) under hostile
// clients, over real TCP in a private network namespace of this test
// process (its loopback: 127.0.0.1 is the server, 127.0.0.x the sources):
// a source holding sockets open (slowloris) is capped and answered 503 while
// another source is still served, the held sockets are closed at the header
// deadline, the global cap holds across sources, a 500 does not carry the
// exception's text, and a refused request with a body ends in a clean close
// the client reads (the 400, then EOF), not a reset.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "http_server.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What the server promises (http_server.hpp): 8 connections a source, 32 in
// all, a header within 2.5 s.
constexpr std::size_t per_source_cap = 8;
constexpr std::size_t global_cap = 32;
constexpr auto header_deadline = 2500ms;
// Slack for a loaded CI machine around the deadline; the old deadline (10 s) is far outside it.
constexpr auto deadline_slack = 2000ms;

// Empty when this process now runs in its own network namespace with lo up.
std::string enter_private_netns() {
  static const std::string why = [] {
    if (::unshare(CLONE_NEWNET) != 0) return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    const bool up = fd >= 0 && ::ioctl(fd, SIOCGIFFLAGS, &request) == 0 &&
                    (request.ifr_flags |= IFF_UP, ::ioctl(fd, SIOCSIFFLAGS, &request) == 0);
    if (fd >= 0) ::close(fd);
    return up ? std::string() : std::string("lo up: ") + std::strerror(errno);
  }();
  return why;
}

#define REQUIRE_PRIVATE_NETNS()                                                  \
  do {                                                                           \
    SLUICE_REQUIRE_PRIVILEGES();                                                 \
    if (auto why_ = enter_private_netns(); !why_.empty()) SLUICE_SKIP_OR_FAIL(why_); \
  } while (0)

// The server on its own io_context thread, on 127.0.0.1 and a free port.
class Served {
 public:
  explicit Served(std::vector<metrics::Page> pages) {
    server_.emplace(io_, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), std::move(pages));
    port_ = server_->local_endpoint().port();
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Served() {
    asio::post(io_, [this] { server_->stop(); });
    work_.reset();
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return port_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::optional<metrics::HttpServer> server_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// A blocking client connection from `source` (a loopback address); -1 on failure.
int connect_from(const std::string& source, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{}, to{};
  from.sin_family = to.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &from.sin_addr);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  to.sin_port = htons(port);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  for (std::size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

// What the client read until the server's end, and how it ended.
struct Read {
  std::string bytes;
  enum class End { Eof, Reset, Timeout } end = End::Timeout;
};

Read read_until_end(int fd, std::chrono::milliseconds timeout) {
  Read out;
  const auto until = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left <= 0ms) return out;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
    char chunk[4096];
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n == 0) return out.end = Read::End::Eof, out;
    if (n < 0) return out.end = errno == ECONNRESET ? Read::End::Reset : Read::End::Timeout, out;
    out.bytes.append(chunk, static_cast<std::size_t>(n));
  }
}

Read get(const std::string& source, std::uint16_t port, const std::string& path) {
  const int fd = connect_from(source, port);
  if (fd < 0) return {};
  send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  Read read = read_until_end(fd, 5000ms);
  ::close(fd);
  return read;
}

std::vector<metrics::Page> metrics_page() {
  return {{"/metrics", "text/plain; version=0.0.4", [] { return std::string("sluice_up 1\n"); }}};
}

TEST(HttpServer, ASourceHoldingSocketsIsCappedWith503AnotherIsServedAndTheHeldAreClosedAtTheDeadline) {
  REQUIRE_PRIVATE_NETNS();
  Served served(metrics_page());
  const std::string hostile = "127.0.0.2";
  // Each held socket sends half a request and never the rest.
  std::vector<int> held;
  const auto opened = Clock::now();
  for (std::size_t i = 0; i < per_source_cap; ++i) {
    const int fd = connect_from(hostile, served.port());
    ASSERT_GE(fd, 0) << std::strerror(errno);
    ASSERT_TRUE(send_all(fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    held.push_back(fd);
  }
  // One more from the same source: answered 503 at once, and closed.
  const int over = connect_from(hostile, served.port());
  ASSERT_GE(over, 0);
  const Read refused = read_until_end(over, 2000ms);
  ::close(over);
  EXPECT_TRUE(refused.bytes.starts_with("HTTP/1.1 503")) << "[" << refused.bytes << "]";
  EXPECT_NE(refused.bytes.find("Connection: close"), std::string::npos) << refused.bytes;
  EXPECT_EQ(refused.end, Read::End::Eof) << "the 503 ends in a clean close";

  // Another source is served meanwhile.
  const Read other = get("127.0.0.3", served.port(), "/metrics");
  EXPECT_TRUE(other.bytes.starts_with("HTTP/1.1 200")) << other.bytes;
  EXPECT_NE(other.bytes.find("sluice_up 1"), std::string::npos) << other.bytes;

  // The held sockets are closed by the server at the header deadline.
  for (const int fd : held) {
    const Read end = read_until_end(fd, header_deadline + deadline_slack);
    EXPECT_NE(end.end, Read::End::Timeout) << "a held socket was still open after the header deadline";
    EXPECT_TRUE(end.bytes.empty()) << "a half request got an answer: " << end.bytes;
    ::close(fd);
  }
  const auto closed_after = Clock::now() - opened;
  EXPECT_GE(closed_after, header_deadline - 500ms) << "closed before the deadline";
  EXPECT_LE(closed_after, header_deadline + deadline_slack);
  // The source's slots are free again.
  EXPECT_TRUE(get(hostile, served.port(), "/metrics").bytes.starts_with("HTTP/1.1 200"));
}

TEST(HttpServer, TheGlobalCapHoldsAcrossSources) {
  REQUIRE_PRIVATE_NETNS();
  Served served(metrics_page());
  std::vector<int> held;
  // Each source up to its own cap, until the global cap is reached.
  for (std::size_t i = 0; i < global_cap; ++i) {
    const std::string source = "127.0.1." + std::to_string(1 + i / per_source_cap);
    const int fd = connect_from(source, served.port());
    ASSERT_GE(fd, 0);
    held.push_back(fd);
  }
  // Accepts run in order on the server's thread: a GET that is served proves all before it were counted.
  const Read fresh = get("127.0.2.1", served.port(), "/metrics");
  EXPECT_TRUE(fresh.bytes.starts_with("HTTP/1.1 503")) << "[" << fresh.bytes << "]";
  for (const int fd : held) ::close(fd);
}

TEST(HttpServer, A500CarriesNoExceptionTextAndEveryAnswerSaysNosniff) {
  REQUIRE_PRIVATE_NETNS();
  std::vector<metrics::Page> pages = metrics_page();
  pages.push_back({"/boom", "text/plain", []() -> std::string {
                     throw std::runtime_error("open /var/lib/sluice/secret-path: Permission denied");
                   }});
  Served served(std::move(pages));
  const Read boom = get("127.0.0.1", served.port(), "/boom");
  EXPECT_TRUE(boom.bytes.starts_with("HTTP/1.1 500")) << boom.bytes;
  EXPECT_EQ(boom.bytes.find("secret-path"), std::string::npos) << boom.bytes;
  EXPECT_EQ(boom.bytes.find("Permission denied"), std::string::npos) << boom.bytes;
  for (const std::string path : {"/metrics", "/boom", "/nope"})
    EXPECT_NE(get("127.0.0.1", served.port(), path).bytes.find("X-Content-Type-Options: nosniff"),
              std::string::npos)
        << path;
}

TEST(HttpServer, ARefusedRequestWithABodyEndsInACleanCloseTheClientReads) {
  REQUIRE_PRIVATE_NETNS();
  Served served(metrics_page());
  // The body in chunks with pauses, as a client streaming an upload sends
  // it: the server answers 400 from the header alone, and its close must
  // not reset the connection under the chunks still coming (a close with
  // unread data sends RST, and the client's next send fails with it, as
  // curl's did: "Connection reset by peer" instead of the 400).
  constexpr std::size_t chunks = 6, chunk_bytes = 32 * 1024;
  constexpr auto pause = 30ms;  // 6 x 30 ms stays inside the server's 500 ms drain
  const int fd = connect_from("127.0.0.1", served.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                               std::to_string(chunks * chunk_bytes) + "\r\n\r\n"));
  std::size_t sent = 0;
  for (std::size_t i = 0; i < chunks; ++i) {
    std::this_thread::sleep_for(pause);
    if (!send_all(fd, std::string(chunk_bytes, 'x'))) break;
    ++sent;
  }
  const int send_errno = errno;
  const Read answer = read_until_end(fd, 5000ms);
  ::close(fd);
  EXPECT_EQ(sent, chunks) << "a send failed: " << std::strerror(send_errno);
  EXPECT_TRUE(answer.bytes.starts_with("HTTP/1.1 400")) << "[" << answer.bytes.substr(0, 200) << "]";
  EXPECT_NE(answer.bytes.find("Connection: close"), std::string::npos);
  EXPECT_EQ(answer.end, Read::End::Eof) << "the client saw a reset instead of the server's close";
}

}  // namespace
}  // namespace sluice::test
