#include "status_pages.hpp"

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

std::vector<metrics::Page> http_pages(const OpRegistry& ops, std::function<std::string()> render_metrics) {
  return {
      {"/metrics", std::string(metrics::content_type), std::move(render_metrics)},
      {"/", std::string(metrics::status_page_content_type), [] { return std::string(metrics::status_page_html()); }},
      {"/status.json", std::string(metrics::status_json_content_type), [&ops] { return render_status_json(ops); }},
  };
}

}  // namespace sluice::daemon
