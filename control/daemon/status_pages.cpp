#include "status_pages.hpp"

#include <chrono>
#include <memory>

#include "prometheus.hpp"
#include "status_document.hpp"
#include "status_page.hpp"

namespace sluice::daemon {

namespace json = boost::json;

std::string render_status_json(const OpRegistry& ops) {
  const protocol::StatusCall call = [&ops](std::string_view op, const json::object& args)
      -> std::variant<json::value, std::string> {
    const OpRegistry::Handler* handler = ops.find(op);
    if (!handler) return std::string("not served by this daemon");
    OpResult result = handler->run(args);
    if (!result) return result.error().message;
    return std::move(*result);
  };
  return json::serialize(protocol::compose_status(call)) + "\n";
}

std::variant<bool, std::string> status_page_enabled(std::string_view option,
                                                    const boost::asio::ip::tcp::endpoint& endpoint) {
  if (option == "on") return true;
  if (option == "off") return false;
  if (option == "auto") return endpoint.address().is_loopback();
  return "--status-page '" + std::string(option) + "': expected on, off or auto";
}

std::vector<metrics::Page> http_pages(const OpRegistry& ops, std::function<std::string()> render_metrics,
                                      bool status_page) {
  std::vector<metrics::Page> pages{{"/metrics", std::string(metrics::content_type), std::move(render_metrics)}};
  if (!status_page) return pages;
  // One document a second at most, whoever asks: every open page polls
  // each second, and composing walks every op on the daemon's one thread.
  struct Cached {
    std::chrono::steady_clock::time_point at{};
    std::string body;
  };
  auto cached = std::make_shared<Cached>();
  constexpr auto reuse_for = std::chrono::seconds(1);
  auto status_json = [&ops, cached, reuse_for] {
    const auto now = std::chrono::steady_clock::now();
    if (cached->body.empty() || now - cached->at >= reuse_for) {
      cached->body = render_status_json(ops);
      cached->at = now;
    }
    return cached->body;
  };
  // The page is one document with its script and style inline and draws its
  // charts as inline SVG: nothing else may load, and it talks only to its
  // own origin (/status.json). A page that injected markup could not run it.
  std::vector<std::pair<std::string, std::string>> page_headers{
      {"Content-Security-Policy",
       "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"}};
  pages.push_back({"/", std::string(metrics::status_page_content_type),
                   [] { return std::string(metrics::status_page_html()); }, std::move(page_headers)});
  pages.push_back({"/status.json", std::string(metrics::status_json_content_type), status_json});
  return pages;
}

}  // namespace sluice::daemon
