#pragma once
// sluiced's read-only HTTP endpoint (/metrics, the status page and its
// JSON): HTTP/1.1 over Boost.Beast, one coroutine per connection on the
// daemon's io_context. Bounded in every direction: request header size,
// the time to send a header (2.5 s, also between kept-alive requests),
// connections in all (32) and from one address (8; beyond either a 503
// with Connection: close), so a client that holds sockets open is cut off
// and never starves the others. Only GET and HEAD (405 otherwise), only the
// pages it was given (404 otherwise); a request never changes anything. An
// answer that ends the connection (400, 503) is followed by a graceful close
// (send side shut, the rest of the request drained briefly): the client
// reads it rather than a reset.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace sluice::metrics {

// "127.0.0.1:9630", "[::1]:9630"; the error names the text and what is wrong.
std::variant<boost::asio::ip::tcp::endpoint, std::string> parse_listen_address(std::string_view text);

// One path the server answers: its body is rendered per request (an
// exception is logged and answered 500 with a generic body: its text is not
// for whoever reaches the port).
struct Page {
  std::string path;  // exact target, "/metrics"; a query string is not part of it
  std::string content_type;
  std::function<std::string()> render;
  // Sent with the page's 200 (the status page's Content-Security-Policy).
  std::vector<std::pair<std::string, std::string>> headers{};
};

class HttpServer {
 public:
  // Binds now (so a taken port fails at startup, not later); serving starts with start().
  HttpServer(boost::asio::io_context& io, const boost::asio::ip::tcp::endpoint& endpoint, std::vector<Page> pages);
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();

  void start();
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace sluice::metrics
