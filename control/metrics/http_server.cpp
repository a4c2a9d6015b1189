#include "http_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <chrono>
#include <map>

namespace sluice::metrics {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// A scrape is one small GET: its whole header arrives in one round trip. A
// client that has not sent one within this is gone or holding the socket
// (slowloris); the same bound covers the wait for a kept-alive connection's
// next request.
constexpr std::chrono::milliseconds header_deadline{2500};
// Writing one answer (the status document is the largest, a few hundred KiB at most).
constexpr std::chrono::seconds write_deadline{10};
// Request headers beyond this are refused (a GET /metrics needs a few hundred bytes).
constexpr std::uint32_t max_request_header_bytes = 8 * 1024;
// Concurrent connections beyond this are answered 503 and closed.
constexpr std::size_t max_connections = 32;
// Concurrent connections from one address beyond this are answered 503:
// one client holding sockets open must not take every slot. A Prometheus
// and a browser tab (up to 6 connections a host) fit.
constexpr std::size_t max_connections_per_source = 8;
// Refusals (the 503s) being written at once; beyond it a connection is closed unanswered.
constexpr std::size_t max_refusals = max_connections;
// Closing after an answer that ends the connection (a 400 with a body
// unread, a 503): send side shut, what the client still sends read and
// dropped for at most this long and this many bytes, so the client reads
// the answer instead of a reset (closing with unread data sends RST).
constexpr std::chrono::milliseconds linger_deadline{500};
constexpr std::size_t max_linger_bytes = 1024 * 1024;

constexpr std::string_view refusal =
    "HTTP/1.1 503 Service Unavailable\r\nServer: sluiced\r\nConnection: close\r\nRetry-After: 1\r\n"
    "X-Content-Type-Options: nosniff\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 29\r\n\r\n"
    "too many connections, retry\r\n";
static_assert(refusal.size() - refusal.find("\r\n\r\n") - 4 == 29, "Content-Length of the refusal body");

// Shuts the send side and drops what the client still sends (bounded), then closes.
asio::awaitable<void> close_gracefully(beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(linger_deadline);
  std::array<char, 16 * 1024> scratch;
  for (std::size_t drained = 0; !ec && drained < max_linger_bytes;) {
    auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(scratch), use_tuple);
    ec = read_ec;
    drained += n;
  }
  stream.socket().close(ec);
}

// The Host header of a request this server answers: absent (HTTP/1.0), an
// IPv4 or [IPv6] literal, or localhost, with an optional port.
bool plain_host(std::string_view host) {
  if (host.empty()) return true;
  if (host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    boost::system::error_code ec;
    asio::ip::make_address_v6(std::string(host.substr(1, close - 1)), ec);
    return !ec && (close + 1 == host.size() || host[close + 1] == ':');
  }
  const std::string_view name = host.substr(0, host.find(':'));
  if (name == "localhost") return true;
  boost::system::error_code ec;
  asio::ip::make_address_v4(std::string(name), ec);
  return !ec;
}

}  // namespace

struct HttpServer::State : std::enable_shared_from_this<HttpServer::State> {
  State(asio::io_context& io, const tcp::endpoint& endpoint, std::vector<Page> p) : acceptor(io), pages(std::move(p)) {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) continue;  // EMFILE and friends: the next accept may work
      beast::error_code peer_ec;
      const auto peer = socket.remote_endpoint(peer_ec);
      if (peer_ec) continue;  // gone already; closes the socket
      const auto source = peer.address();
      if (connections >= max_connections || per_source[source] >= max_connections_per_source) {
        if (per_source[source] == 0) per_source.erase(source);
        if (refusals < max_refusals) {
          ++refusals;  // released by refuse()
          asio::co_spawn(acceptor.get_executor(), refuse(std::move(socket)), asio::detached);
        }
        continue;  // else closes the socket unanswered
      }
      // Counted here, not when serve() first runs: the next accept must see this one.
      ++connections;
      ++per_source[source];
      asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), source), asio::detached);
    }
  }

  // Over a cap: 503 with Connection: close, without reading the request.
  asio::awaitable<void> refuse(tcp::socket socket) {
    auto self = shared_from_this();
    struct Release {
      std::size_t& n;
      ~Release() { --n; }
    } release{refusals};
    beast::tcp_stream stream(std::move(socket));
    stream.expires_after(linger_deadline);
    auto [ec, written] = co_await asio::async_write(stream, asio::buffer(refusal), use_tuple);
    if (!ec) co_await close_gracefully(stream);
  }

  // The connection was counted by accept_loop; released here.
  asio::awaitable<void> serve(tcp::socket socket, asio::ip::address source) {
    auto self = shared_from_this();
    struct Release {
      State& state;
      asio::ip::address source;
      ~Release() {
        --state.connections;
        if (--state.per_source[source] == 0) state.per_source.erase(source);
      }
    } release{*this, source};
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    bool linger = false;  // the last answer ended the connection: close so the client reads it
    for (;;) {
      stream.expires_after(header_deadline);
      http::request_parser<http::empty_body> parser;
      parser.header_limit(max_request_header_bytes);
      // The header alone: a request with a body (a POST, or a GET that
      // carries one) is answered without reading it, and the connection
      // closed, so no body is ever buffered.
      auto [read_ec, read_bytes] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
      if (read_ec) break;
      const auto& request = parser.get();
      const bool has_body = !parser.is_done();
      http::response<http::string_body> response;
      response.version(request.version());
      response.keep_alive(request.keep_alive() && !has_body);
      response.set(http::field::server, "sluiced");
      // No body is ever read as another type than the one declared.
      response.set("X-Content-Type-Options", "nosniff");
      if (request.method() != http::verb::get && request.method() != http::verb::head) {
        response.result(http::status::method_not_allowed);
        response.set(http::field::allow, "GET, HEAD");
        response.body() = "only GET and HEAD\n";
      } else if (!plain_host(request[http::field::host])) {
        // DNS rebinding: a page of another site that resolved its name to
        // this address would read the box's state as same-origin. Only an
        // address literal or localhost names this server.
        response.result(http::status::misdirected_request);
        response.keep_alive(false);
        response.body() = "Host must be an address or localhost\n";
      } else if (has_body) {
        response.result(http::status::bad_request);
        response.body() = "a GET or HEAD carries no body\n";
      } else if (const Page* page = find(request.target()); !page) {
        response.result(http::status::not_found);
        response.body() = "not found: try /metrics\n";
      } else {
        response.result(http::status::ok);
        response.set(http::field::content_type, page->content_type);
        for (const auto& [name, value] : page->headers) response.set(name, value);
        // A status page polled every second must never show a cached answer.
        response.set(http::field::cache_control, "no-store");
        try {
          response.body() = page->render();
        } catch (const std::exception& e) {
          // The reason goes to the log: its text (paths, errno strings) is not for whoever can reach the port.
          spdlog::error("http {}: {}", page->path, e.what());
          response = {};
          response.version(request.version());
          response.keep_alive(request.keep_alive());
          response.set(http::field::server, "sluiced");
          response.set("X-Content-Type-Options", "nosniff");
          response.result(http::status::internal_server_error);
          response.set(http::field::content_type, "text/plain; charset=utf-8");
          response.body() = "internal error (see the sluiced log)\n";
        }
      }
      const bool head = request.method() == http::verb::head;
      response.prepare_payload();
      if (head) response.body().clear();
      stream.expires_after(write_deadline);
      auto [write_ec, written] = co_await http::async_write(stream, response, use_tuple);
      // end_of_stream: written whole, and the message says the connection ends (Connection: close).
      if (write_ec && write_ec != http::error::end_of_stream) break;
      if (write_ec || !response.keep_alive()) {
        linger = true;
        break;
      }
    }
    if (linger) co_await close_gracefully(stream);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  // The page of a request target; its query string ("/status.json?t=1", a browser's cache buster) is ignored.
  const Page* find(std::string_view target) const {
    target = target.substr(0, target.find('?'));
    for (const auto& page : pages)
      if (page.path == target) return &page;
    return nullptr;
  }

  tcp::acceptor acceptor;
  std::vector<Page> pages;
  std::size_t connections = 0;
  std::map<asio::ip::address, std::size_t> per_source;
  std::size_t refusals = 0;
};

std::variant<tcp::endpoint, std::string> parse_listen_address(std::string_view text) {
  const std::string quoted = "metrics address '" + std::string(text) + "'";
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const auto close = text.find("]:");
    if (close == std::string_view::npos) return quoted + ": expected [IPv6]:PORT";
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return quoted + ": expected ADDRESS:PORT";
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned number = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  constexpr unsigned max_port = 65535;
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || number > max_port)
    return quoted + ": port '" + std::string(port) + "' is not 0..65535";
  boost::system::error_code address_ec;
  const auto address = asio::ip::make_address(std::string(host), address_ec);
  if (address_ec) return quoted + ": '" + std::string(host) + "' is not an IP address";
  return tcp::endpoint(address, static_cast<unsigned short>(number));
}

HttpServer::HttpServer(asio::io_context& io, const tcp::endpoint& endpoint, std::vector<Page> pages)
    : state_(std::make_shared<State>(io, endpoint, std::move(pages))) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() { asio::co_spawn(state_->acceptor.get_executor(), state_->accept_loop(), asio::detached); }

void HttpServer::stop() {
  boost::system::error_code ignored;
  state_->acceptor.close(ignored);
}

tcp::endpoint HttpServer::local_endpoint() const { return state_->acceptor.local_endpoint(); }

}  // namespace sluice::metrics
