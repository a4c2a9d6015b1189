#include "lb_commands.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <ostream>
#include <vector>

#include "command_support.hpp"
#include "decimal.hpp"
#include "lb_config.hpp"
#include "lb_model.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;

constexpr std::string_view gap = "  ";
constexpr std::uint32_t max_check_ms = lb::kCheckIntervalMsMax;
constexpr std::uint32_t max_check_count = lb::kCheckCountMax;
constexpr std::uint32_t max_conn_timeout_s = lb::kConnTimeoutMaxS;
constexpr double percent = 100.0;

std::string share_text(const json::object& object) {
  const auto* value = object.if_contains("share");
  if (!value || !value->is_number()) return "-";
  std::array<char, 32> out{};
  std::snprintf(out.data(), out.size(), "%.1f%%", value->to_number<double>() * percent);
  return out.data();
}

class Table {
 public:
  explicit Table(std::vector<std::string> headers, std::vector<bool> right = {})
      : headers_(std::move(headers)), right_(std::move(right)) {
    right_.resize(headers_.size());
  }
  void add(std::vector<std::string> row) {
    row.resize(headers_.size());
    rows_.push_back(std::move(row));
  }
  void print(std::ostream& out) const {
    std::vector<std::size_t> widths;
    for (const auto& header : headers_) widths.push_back(header.size());
    for (const auto& row : rows_)
      for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    auto line = [&](const std::vector<std::string>& cells) {
      std::string text;
      for (std::size_t i = 0; i < cells.size(); ++i) {
        const std::string pad(widths[i] - cells[i].size(), ' ');
        if (i) text += gap;
        if (right_[i]) text += pad + cells[i];
        else text += i + 1 == cells.size() ? cells[i] : cells[i] + pad;
      }
      out << text << '\n';
    };
    line(headers_);
    for (const auto& row : rows_) line(row);
  }

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

void render_vip_list(std::ostream& out, const json::value& result) {
  const auto& vips = array_of(object_of(result, "vip.list result"), "vips");
  if (vips.empty()) {
    out << "no VIPs\n";
    return;
  }
  Table table({"VIP", "ID", "TABLE", "L2", "CHECK", "BACKENDS", "PACKETS", "BYTES", "CONNS"},
              {false, true, true, false, false, true, true, true, true});
  for (const auto& item : vips) {
    const auto& vip = object_of(item, "vip");
    std::string check = "-";
    if (const auto* c = vip.if_contains("check"); c && c->is_object()) check = text(c->as_object(), "spec");
    table.add({text(vip, "vip"), text(vip, "vip_id"), text(vip, "table_size"), text(vip, "l2_dsr"), check,
               text(vip, "backends_in_table") + "/" + text(vip, "backends"), text(vip, "packets"), text(vip, "bytes"),
               text(vip, "new_conns")});
  }
  table.print(out);
}

void render_backend_list(std::ostream& out, const json::value& result) {
  const auto& backends = array_of(object_of(result, "backend.list result"), "backends");
  if (backends.empty()) {
    out << "no backends\n";
    return;
  }
  Table table({"VIP", "BACKEND", "ID", "WEIGHT", "STATE", "HEALTH", "SHARE", "PACKETS", "BYTES", "CONNS"},
              {false, false, true, true, false, false, true, true, true, true});
  for (const auto& item : backends) {
    const auto& backend = object_of(item, "backend");
    table.add({text(backend, "vip"), text(backend, "address"), text(backend, "backend_id"), text(backend, "weight"),
               text(backend, "state"), text(backend, "health"), share_text(backend), text(backend, "packets"),
               text(backend, "bytes"), text(backend, "new_conns")});
  }
  table.print(out);
}

void print_pairs(std::ostream& out, const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::size_t width = 0;
  for (const auto& [key, value] : pairs) width = std::max(width, key.size());
  for (const auto& [key, value] : pairs) out << key << std::string(width - key.size(), ' ') << gap << value << '\n';
}

void render_settings(std::ostream& out, const json::object& s) {
  print_pairs(out, {{"encap source v4", text(s, "encap_source_v4")},
                    {"encap source v6", text(s, "encap_source_v6")},
                    {"entropy source", text(s, "entropy_source")},
                    {"egress", text(s, "egress")},
                    {"next hop mac", text(s, "next_hop_mac")},
                    {"src mac", text(s, "src_mac")},
                    {"mtu", text(s, "mtu") == "0" ? "0 (no check)" : text(s, "mtu")},
                    {"conn timeout", text(s, "conn_timeout_s") + "s"}});
}

void render_lb_show(std::ostream& out, const json::value& result) {
  const auto& show = object_of(result, "lb.show result");
  const auto* settings = show.if_contains("settings");
  if (!settings || !settings->is_object()) throw LbBadReply("field settings missing");
  render_settings(out, settings->as_object());
  std::vector<std::pair<std::string, std::string>> more{{"vips", text(show, "vips")},
                                                        {"stage", text(show, "stage_enabled") == "yes" ? "on" : "off (no VIP)"}};
  if (const auto* conns = show.if_contains("conns"); conns && conns->is_object()) {
    const auto& c = conns->as_object();
    more.emplace_back("connections v4", text(c, "v4") + " of " + text(c, "v4_capacity"));
    more.emplace_back("connections v6", text(c, "v6") + " of " + text(c, "v6_capacity"));
  }
  if (const auto* events = show.if_contains("events"); events && events->is_object()) {
    const auto& e = events->as_object();
    more.emplace_back("events", "conn insert failed " + text(e, "conn_insert_failed") + ", reselected " +
                                    text(e, "reselected") + ", corrupt table " + text(e, "corrupt_table"));
  }
  if (const auto* health = show.if_contains("health"); health && health->is_object()) {
    const auto& h = health->as_object();
    more.emplace_back("health changes", "down " + text(h, "went_down") + ", up " + text(h, "went_up"));
  }
  print_pairs(out, more);
}

// ---- local checks (sluiced checks again; these catch typos before anything is sent) ----

CLI::Validator vip_validator() {
  return check_with("ADDR[:PORT]/PROTO", [](const std::string& text) -> std::string {
    if (auto key = lb::parse_vip_key(text); !key) return key.error().message;
    return {};
  });
}

CLI::Validator check_validator() {
  return check_with("tcp:PORT|http:PORT/PATH", [](const std::string& text) -> std::string {
    if (auto check = lb::parse_health_check(text); !check) return check.error().message;
    return {};
  });
}

// What the parsed command line holds; shared by the callbacks, alive as long as the App.
struct LbArgs {
  std::string vip;
  std::string address;
  std::optional<std::uint32_t> table_size;
  bool l2 = false;
  std::optional<std::string> check;
  std::optional<std::uint32_t> check_interval_ms, check_timeout_ms, check_rise, check_fall;
  std::optional<std::uint32_t> weight;
  std::optional<std::string> mac;
  std::optional<std::string> vip_filter;
  std::vector<std::string> encap_sources;
  std::optional<std::string> entropy, egress, next_hop_mac, src_mac;
  std::optional<std::uint32_t> mtu, conn_timeout;
};

void add_vip(CLI::App& app, const std::shared_ptr<LbArgs>& a, const std::function<void(LbAction)>& set_action) {
  auto* vip = app.add_subcommand("vip", "Load-balanced services (VIPs): address, port and protocol");
  vip->require_subcommand(1);

  auto* add = vip->add_subcommand("add", "Add a VIP (it gets a pass rule after your filter rules; see rule list)");
  add->add_option("VIP", a->vip, "ADDR[:PORT]/PROTO, e.g. 198.18.0.10:80/tcp, [2001:db8::10]:443/tcp, 198.18.0.10/udp")
      ->required()
      ->check(vip_validator());
  add_decimal(add, "--table-size", a->table_size, 1, SLUICE_LB_MAGLEV_SIZE_MAX,
              "Maglev table size, a prime (default " + std::to_string(SLUICE_LB_MAGLEV_SIZE_DEFAULT) + ")");
  add->add_flag("--l2", a->l2, "L2 direct server return: rewrite the destination MAC only (backends need --mac)");
  add->add_option("--check", a->check, "Health check: tcp:PORT or http:PORT/PATH")->check(check_validator());
  add_decimal(add, "--check-interval-ms", a->check_interval_ms, 1, max_check_ms, "Between checks (default 2000)");
  add_decimal(add, "--check-timeout-ms", a->check_timeout_ms, 1, max_check_ms, "Per check (default 1000)");
  add_decimal(add, "--check-rise", a->check_rise, 1, max_check_count, "Successes that bring a backend back (default 2)");
  add_decimal(add, "--check-fall", a->check_fall, 1, max_check_count, "Failures that take it out (default 3)");
  add->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      json::object args{{"vip", a->vip}};
      if (a->table_size) args["table_size"] = *a->table_size;
      if (a->l2) args["l2_dsr"] = true;
      if (a->check) args["check"] = *a->check;
      struct Tuning {
        const char* key;
        const char* flag;
        const std::optional<std::uint32_t>* value;
      };
      for (const Tuning& tuning : {Tuning{"check_interval_ms", "--check-interval-ms", &a->check_interval_ms},
                                   Tuning{"check_timeout_ms", "--check-timeout-ms", &a->check_timeout_ms},
                                   Tuning{"check_rise", "--check-rise", &a->check_rise},
                                   Tuning{"check_fall", "--check-fall", &a->check_fall}}) {
        if (!*tuning.value) continue;
        if (!a->check) return ctx.usage(std::string(tuning.flag) + " needs --check");
        args[tuning.key] = **tuning.value;
      }
      return ctx.call("vip.add", args, [&](const json::value& r) {
        ctx.out << "added vip " << text(object_of(r, "vip.add result"), "vip") << '\n';
      });
    });
  });

  auto* del = vip->add_subcommand("del", "Remove a VIP, its backends and its pass rule");
  del->add_option("VIP", a->vip, "ADDR[:PORT]/PROTO as vip list shows it")->required()->check(vip_validator());
  del->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      return ctx.call("vip.del", {{"vip", a->vip}}, [&](const json::value& r) {
        ctx.out << "deleted vip " << text(object_of(r, "vip.del result"), "vip") << '\n';
      });
    });
  });

  auto* list = vip->add_subcommand("list", "Show the VIPs with their counters");
  list->callback([set_action] {
    set_action([](LbContext& ctx) {
      return ctx.call("vip.list", {}, [&](const json::value& r) { render_vip_list(ctx.out, r); });
    });
  });
}

void add_backend(CLI::App& app, const std::shared_ptr<LbArgs>& a, const std::function<void(LbAction)>& set_action) {
  auto* backend = app.add_subcommand("backend", "The servers behind a VIP");
  backend->require_subcommand(1);
  auto vip_and_address = [&](CLI::App* command) {
    command->add_option("VIP", a->vip, "ADDR[:PORT]/PROTO")->required()->check(vip_validator());
    command->add_option("ADDR", a->address, "The backend's IPv4 or IPv6 address")->required()->check(address_validator());
  };

  auto* add = backend->add_subcommand("add", "Add a backend to a VIP");
  vip_and_address(add);
  add_decimal(add, "--weight", a->weight, 1, SLUICE_LB_WEIGHT_MAX, "Relative share of new flows (default 1)");
  add->add_option("--mac", a->mac, "The backend's MAC on this segment (L2 DSR VIPs)")->check(mac_validator());
  add->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      json::object args{{"vip", a->vip}, {"address", a->address}};
      if (a->weight) args["weight"] = *a->weight;
      if (a->mac) args["mac"] = *a->mac;
      return ctx.call("backend.add", args, [&](const json::value& r) {
        const auto& o = object_of(r, "backend.add result");
        ctx.out << "added backend " << text(o, "address") << " to " << text(o, "vip") << '\n';
      });
    });
  });

  auto* set = backend->add_subcommand("set", "Change a backend's weight (its table share follows)");
  vip_and_address(set);
  add_decimal(set, "--weight", a->weight, 1, SLUICE_LB_WEIGHT_MAX, "Relative share of new flows")->required();
  set->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      return ctx.call("backend.set", {{"vip", a->vip}, {"address", a->address}, {"weight", *a->weight}},
                      [&](const json::value& r) {
                        const auto& o = object_of(r, "backend.set result");
                        ctx.out << "backend " << text(o, "address") << " of " << text(o, "vip") << ": weight "
                                << text(o, "weight") << '\n';
                      });
    });
  });

  auto* drain = backend->add_subcommand("drain", "Take no new flows; its existing connections stay");
  vip_and_address(drain);
  drain->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      return ctx.call("backend.drain", {{"vip", a->vip}, {"address", a->address}}, [&](const json::value& r) {
        const auto& o = object_of(r, "backend.drain result");
        ctx.out << "draining backend " << text(o, "address") << " of " << text(o, "vip") << '\n';
      });
    });
  });

  auto* del = backend->add_subcommand("del", "Remove a backend; its connections pick again");
  vip_and_address(del);
  del->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      return ctx.call("backend.del", {{"vip", a->vip}, {"address", a->address}}, [&](const json::value& r) {
        const auto& o = object_of(r, "backend.del result");
        ctx.out << "deleted backend " << text(o, "address") << " of " << text(o, "vip") << '\n';
      });
    });
  });

  auto* list = backend->add_subcommand("list", "Show backends: state, health, share of the table, counters");
  list->add_option("VIP", a->vip_filter, "Only this VIP's")->check(vip_validator());
  list->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      json::object args;
      if (a->vip_filter) args["vip"] = *a->vip_filter;
      return ctx.call("backend.list", args, [&](const json::value& r) { render_backend_list(ctx.out, r); });
    });
  });
}

void add_lb(CLI::App& app, const std::shared_ptr<LbArgs>& a, const std::function<void(LbAction)>& set_action) {
  auto* lb = app.add_subcommand("lb", "The load balancer as a whole: encapsulation, egress, timeouts");
  lb->require_subcommand(1);

  auto* set = lb->add_subcommand("set", "Change load-balancer settings (those not named keep their value)");
  set->add_option("--encap-source", a->encap_sources,
                  "Outer source address of encapsulated packets (once for IPv4, once for IPv6)")
      ->check(address_validator());
  set->add_option("--entropy", a->entropy, "on: outer source carries flow entropy (low bits from the flow hash)")
      ->check(CLI::IsMember({"on", "off"}));
  set->add_option("--egress", a->egress, "tx (back out the ingress port), redirect (devmap), forward (routed)")
      ->check(CLI::IsMember({"tx", "redirect", "forward"}));
  set->add_option("--next-hop-mac", a->next_hop_mac, "Destination MAC of encapsulated frames")->check(mac_validator());
  set->add_option("--src-mac", a->src_mac, "Source MAC of encapsulated frames")->check(mac_validator());
  add_decimal(set, "--mtu", a->mtu, 0, 65535, "Egress MTU: bigger packets get ICMP too-big (0: no check)");
  add_decimal(set, "--conn-timeout", a->conn_timeout, 1, max_conn_timeout_s, "Seconds before an idle flow picks again");
  set->callback([a, set_action] {
    set_action([a](LbContext& ctx) {
      json::object args;
      bool v4 = false, v6 = false;
      for (const auto& source : a->encap_sources) {
        auto address = lb::parse_address(source);
        if (!address) return ctx.usage("--encap-source: " + address.error().message);
        bool& seen = address->family == 4 ? v4 : v6;
        if (seen) return ctx.usage("--encap-source: one IPv4 and one IPv6 address at most, got two IPv" +
                                   std::to_string(address->family));
        seen = true;
        args[address->family == 4 ? "encap_source_v4" : "encap_source_v6"] = lb::to_string(*address);
      }
      if (a->entropy) args["entropy_source"] = *a->entropy == "on";
      if (a->egress) args["egress"] = *a->egress;
      if (a->next_hop_mac) args["next_hop_mac"] = *a->next_hop_mac;
      if (a->src_mac) args["src_mac"] = *a->src_mac;
      if (a->mtu) args["mtu"] = *a->mtu;
      if (a->conn_timeout) args["conn_timeout_s"] = *a->conn_timeout;
      if (args.empty()) return ctx.usage("lb set: name at least one setting (see sluicectl lb set --help)");
      return ctx.call("lb.set", args, [&](const json::value& r) { render_settings(ctx.out, object_of(r, "lb.set result")); });
    });
  });

  auto* show = lb->add_subcommand("show", "Show settings, connection-table fill and the stage's events");
  show->callback([set_action] {
    set_action([](LbContext& ctx) {
      return ctx.call("lb.show", {}, [&](const json::value& r) { render_lb_show(ctx.out, r); });
    });
  });
}

}  // namespace

void add_lb_commands(CLI::App& app, const std::function<void(LbAction)>& set_action) {
  auto args = std::make_shared<LbArgs>();
  add_vip(app, args, set_action);
  add_backend(app, args, set_action);
  add_lb(app, args, set_action);
}

std::optional<std::string> lb_event_line(const json::value& event) {
  if (!event.is_object()) return std::nullopt;
  const auto& object = event.as_object();
  const auto* type = object.if_contains("type");
  if (!type || !type->is_string() || type->as_string() != "lb_health") return std::nullopt;
  return "lb health: backend " + text(object, "backend") + " of " + text(object, "vip") + " is " + text(object, "health");
}

}  // namespace sluice::cli
