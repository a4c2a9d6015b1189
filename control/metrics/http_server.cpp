#include "http_server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <charconv>
#include <chrono>


namespace sluice::metrics {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// A scrape is one small GET; a client idle this long is gone or hostile.
constexpr std::chrono::seconds connection_idle_limit{10};
// Request headers beyond this are refused (a GET /metrics needs a few hundred bytes).
constexpr std::uint32_t max_request_header_bytes = 8 * 1024;
// Concurrent scrapers beyond this are turned away at accept.
constexpr std::size_t max_connections = 32;

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
      if (connections >= max_connections) continue;  // closes the socket
      asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    auto self = shared_from_this();
    ++connections;
    struct Release {
      std::size_t& n;
      ~Release() { --n; }
    } release{connections};
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      stream.expires_after(connection_idle_limit);
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
        // A status page polled every second must never show a cached answer.
        response.set(http::field::cache_control, "no-store");
        try {
          response.body() = page->render();
        } catch (const std::exception& e) {
          response.result(http::status::internal_server_error);
          response.set(http::field::content_type, "text/plain; charset=utf-8");
          response.body() = std::string(page->path) + " unavailable: " + e.what() + "\n";
        }
      }
      const bool head = request.method() == http::verb::head;
      response.prepare_payload();
      if (head) response.body().clear();
      auto [write_ec, written] = co_await http::async_write(stream, response, use_tuple);
      if (write_ec || !response.keep_alive()) break;
    }
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
