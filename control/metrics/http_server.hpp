#pragma once
// sluiced's read-only HTTP endpoint (/metrics, the status page and its
// JSON): HTTP/1.1 over Boost.Beast, one coroutine per connection on the
// daemon's io_context. Bounded in every direction: request header size,
// idle time, and connections (a scraper that stalls is cut off, it never
// holds the daemon). Only GET and HEAD (405 otherwise), only the pages it
// was given (404 otherwise); a request never changes anything.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::metrics {

// "127.0.0.1:9630", "[::1]:9630"; the error names the text and what is wrong.
std::variant<boost::asio::ip::tcp::endpoint, std::string> parse_listen_address(std::string_view text);

// One path the server answers: its body is rendered per request (an
// exception is answered 500 with its message).
struct Page {
  std::string path;  // exact target, "/metrics"; a query string is not part of it
  std::string content_type;
  std::function<std::string()> render;
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
