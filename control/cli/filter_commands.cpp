#include "filter_commands.hpp"

#include <netinet/in.h>

#include <limits>

#include "command_support.hpp"
#include "desired_state.hpp"
#include "filter_rules.hpp"
#include "ops.hpp"
#include "prefix.hpp"

namespace sluice::cli {
namespace {

using config::filter_reason;

// Rate classes are named as in the YAML's limits[].class (the daemon's desired state).
std::optional<json::value> class_value(std::string_view text, std::string& problem) {
  if (!config::is_class_name(text)) {
    problem = "bad class '" + std::string(text) + "': " + config::class_name_rule();
    return std::nullopt;
  }
  return json::value(json::string(text));
}

// "iface eth0 src 198.18.0.0/15 tcp dport 22 flags syn,!ack": the order of config::describe.
std::string rule_match_text(const json::object& rule) {
  std::string out;
  auto word = [&](std::string_view label, std::string value) {
    if (!out.empty()) out += ' ';
    if (!label.empty()) out += std::string(label) + ' ';
    out += value;
  };
  auto present = [&](std::string_view key) {
    const json::value* value = rule.if_contains(key);
    return value && !value->is_null() ? value : nullptr;
  };
  if (present("iface")) word("iface", field(rule, "iface"));
  if (present("src")) word("src", field(rule, "src"));
  if (present("dst")) word("dst", field(rule, "dst"));
  if (const json::value* proto = present("proto")) {
    const auto number = uint_field(rule, "proto");
    word("", number && *number <= 255 ? config::protocol_name(static_cast<std::uint8_t>(*number)) : text(proto));
  }
  if (present("sport")) word("sport", field(rule, "sport"));
  if (present("dport")) word("dport", field(rule, "dport"));
  if (const json::value* flags = present("tcp_flags")) {
    // A string ("syn,!ack") or the match itself ({"mask":18,"value":2}).
    std::string shown = text(flags);
    if (flags->is_object()) {
      const auto mask = uint_field(flags->as_object(), "mask"), value = uint_field(flags->as_object(), "value");
      if (mask && value && *mask <= 0xff && *value <= 0xff)
        shown = config::to_string(config::TcpFlagMatch{static_cast<std::uint8_t>(*mask), static_cast<std::uint8_t>(*value)});
    }
    word("flags", shown);
  }
  if (present("icmp_type")) word("icmp-type", field(rule, "icmp_type"));
  if (present("owner")) word("owned by", field(rule, "owner"));  // a VIP's pass rule
  return out.empty() ? "any" : out;
}

void render_rule_list(std::ostream& out, const json::value& result) {
  const json::object& object = as_object(result, "rule.list result");
  const json::array& rules = array_field(object, "rules");
  // Printed last: the policy is what happens after the last rule.
  const auto print_policy = [&] {
    if (object.if_contains("default_policy")) out << "default policy: " << field(object, "default_policy") << '\n';
  };
  if (rules.empty()) {
    out << "no rules\n";
    print_policy();
    return;
  }
  // A rule's id is its priority unless the daemon says otherwise; the
  // PRIORITY column appears only when some rule's differs from its id.
  bool separate_priority = false;
  for (const auto& item : rules) {
    const json::object& rule = as_object(item, "rule");
    if (rule.if_contains("id") && rule.if_contains("priority") && field(rule, "id") != field(rule, "priority"))
      separate_priority = true;
  }
  std::vector<Table::Column> columns{{"ID", Table::Align::Right}};
  if (separate_priority) columns.push_back({"PRIORITY", Table::Align::Right});
  for (auto column : {Table::Column{"ACTION"}, Table::Column{"PACKETS", Table::Align::Right},
                      Table::Column{"BYTES", Table::Align::Right}, Table::Column{"MATCH"}})
    columns.push_back(column);
  Table table(std::move(columns));
  for (const auto& item : rules) {
    const json::object& rule = item.as_object();
    std::vector<std::string> row{field(rule, rule.if_contains("id") ? "id" : "priority")};
    if (separate_priority) row.push_back(field(rule, "priority"));
    for (auto cell : {action_text(rule), field(rule, "packets"), field(rule, "bytes"), rule_match_text(rule)})
      row.push_back(std::move(cell));
    table.add(std::move(row));
  }
  table.print(out);
  print_policy();
}

void render_limit_list(std::ostream& out, const json::value& result) {
  const json::array& limits = array_field(as_object(result, "limit.list result"), "limits");
  if (limits.empty()) {
    out << "no rate-limit classes\n";
    return;
  }
  Table table({{"CLASS"},
               {"PPS", Table::Align::Right},
               {"BURST", Table::Align::Right},
               {"BPS", Table::Align::Right},
               {"SYN ONLY"},
               {"SOURCE"},
               {"AGGREGATE"}});
  for (const auto& item : limits) {
    const json::object& limit = as_object(item, "limit");
    const json::value* syn_only = limit.if_contains("syn_only");
    // bps 0 (or absent): bytes are not limited.
    const auto bps = uint_field(limit, "bps");
    // What a source is: the address cut to these prefix lengths.
    const std::string source = "/" + field(limit, "v4_prefix_len") + " /" + field(limit, "v6_prefix_len");
    // The bucket all sources share; rates of 0 (or absent): none in that dimension.
    std::string aggregate;
    const auto aggregate_pps = uint_field(limit, "aggregate_pps");
    const auto aggregate_bps = uint_field(limit, "aggregate_bps");
    if (aggregate_pps && *aggregate_pps)
      aggregate = "pps " + std::to_string(*aggregate_pps) + " burst " + field(limit, "aggregate_burst");
    if (aggregate_bps && *aggregate_bps) aggregate += (aggregate.empty() ? "bps " : " bps ") + std::to_string(*aggregate_bps);
    table.add({field(limit, "class"), field(limit, "pps"), field(limit, "burst"),
               bps && *bps ? std::to_string(*bps) : (bps ? "-" : field(limit, "bps")), syn_only ? text(syn_only) : "no",
               source, aggregate.empty() ? "-" : aggregate});
  }
  table.print(out);
}

// "198.18.0.1:40000", "[2001:db8::1]:53", or the address alone.
std::string endpoint_text(const json::object& flow, std::string_view addr_key, std::string_view port_key) {
  const std::string addr = field(flow, addr_key);
  const json::value* port = flow.if_contains(port_key);
  if (!port || port->is_null()) return addr;
  const bool v6 = addr.find(':') != std::string::npos;
  return (v6 ? "[" + addr + "]" : addr) + ":" + text(port);
}

// Per-direction counters ([a->b, b->a]) are shown summed.
std::string counter_text(const json::object& flow, std::string_view key) {
  const json::value* value = flow.if_contains(key);
  if (!value || !value->is_array()) return field(flow, key);
  std::uint64_t sum = 0;
  for (const auto& part : value->as_array()) {
    if (part.is_uint64()) sum += part.as_uint64();
    else if (part.is_int64() && part.as_int64() >= 0) sum += static_cast<std::uint64_t>(part.as_int64());
    else return text(value);
  }
  return std::to_string(sum);
}

void render_conn_list(std::ostream& out, const json::value& result) {
  const json::object& listing = as_object(result, "conn.list result");
  const json::array& flows = array_field(listing, "flows");
  const json::value* truncated = listing.if_contains("truncated");
  const std::string footer = truncated && truncated->is_bool() && truncated->as_bool()
                                 ? "showing " + std::to_string(flows.size()) + " of " + field(listing, "total") +
                                       " tracked flows (--limit N shows more)\n"
                                 : "";
  if (flows.empty()) {
    out << (footer.empty() ? "no tracked flows\n" : footer);
    return;
  }
  Table table({{"PROTO"},
               {"SOURCE"},
               {"DESTINATION"},
               {"STATE"},
               {"PACKETS", Table::Align::Right},
               {"BYTES", Table::Align::Right}});
  for (const auto& item : flows) {
    const json::object& flow = as_object(item, "flow");
    const auto proto = uint_field(flow, "proto");
    table.add({proto && *proto <= 255 ? config::protocol_name(static_cast<std::uint8_t>(*proto)) : field(flow, "proto"),
               endpoint_text(flow, "src", "sport"), endpoint_text(flow, "dst", "dport"), field(flow, "state"),
               counter_text(flow, "packets"), counter_text(flow, "bytes")});
  }
  table.print(out);
  out << footer;
}

CLI::Validator port_range_validator() {
  return check_with("PORT[-PORT]", [](const std::string& text) -> std::string {
    if (auto range = filter::parse_port_range(text); !range) return filter_reason(range.error());
    return {};
  });
}

CLI::Validator protocol_validator() {
  return check_with("PROTO", [](const std::string& text) -> std::string {
    if (auto proto = filter::parse_protocol(text); !proto) return filter_reason(proto.error());
    return {};
  });
}

CLI::Validator tcp_flags_validator() {
  return check_with("FLAGS", [](const std::string& text) -> std::string {
    if (auto flags = config::parse_tcp_flags(text); !flags) return flags.error();
    return {};
  });
}

CLI::Validator class_validator() {
  return check_with("CLASS", [](const std::string& text) -> std::string {
    std::string problem;
    if (!class_value(text, problem)) return problem;
    return {};
  });
}

// Canonical forms of what the validators above accepted (canonical_prefix: below).
std::string canonical_ports(const std::string& text) { return config::to_string(filter::parse_port_range(text).value()); }
std::string canonical_protocol(const std::string& text) {
  return config::protocol_name(filter::parse_protocol(text).value());
}
std::string canonical_tcp_flags(const std::string& text) { return config::to_string(*config::parse_tcp_flags(text)); }

// What the parsed command line holds; shared by the callbacks, alive as long as the App.
struct FilterArgs {
  std::optional<std::uint32_t> priority;
  std::optional<std::string> src, dst, proto, sport, dport, tcp_flags, rule_iface;
  std::optional<std::uint8_t> icmp_type;
  std::string rule_action;
  std::optional<std::uint32_t> rule_id;
  std::string class_name;
  std::optional<std::uint64_t> pps;
  std::optional<std::uint64_t> bps, burst;
  bool syn_only = false;
  std::optional<std::uint32_t> v4_prefix_len, v6_prefix_len;
  std::optional<std::uint64_t> aggregate_pps, aggregate_bps, aggregate_burst;
  std::optional<std::uint64_t> conn_limit;
  std::optional<std::string> policy;
};

void add_rule(CLI::App& app, const std::shared_ptr<FilterArgs>& a, const std::function<void(Action)>& set_action) {
  auto* rule = app.add_subcommand("rule", "Ordered first-match filter rules");
  rule->require_subcommand(1);

  auto* add = rule->add_subcommand("add", "Add a rule; every option given must match. Prints the new rule's id");
  add_decimal(add, "--priority", "--priority", a->priority, 0, std::numeric_limits<std::uint32_t>::max(),
              "Lower matches first (default: the daemon picks one after the last rule)");
  add->add_option("--src", a->src, "Source prefix")->check(prefix_validator());
  add->add_option("--dst", a->dst, "Destination prefix")->check(prefix_validator());
  add->add_option("--proto", a->proto, "tcp, udp, icmp, icmpv6 or a protocol number 0..255")->check(protocol_validator());
  add->add_option("--sport", a->sport, "Source port or range A-B (TCP/UDP)")->check(port_range_validator());
  add->add_option("--dport", a->dport, "Destination port or range A-B (TCP/UDP)")->check(port_range_validator());
  add->add_option("--tcp-flags", a->tcp_flags, "Comma-separated fin syn rst psh ack urg ece cwr; !flag: must be clear")
      ->check(tcp_flags_validator());
  add_decimal(add, "--icmp-type", "--icmp-type", a->icmp_type, 0, 255, "ICMP/ICMPv6 type 0..255");
  add->add_option("--iface", a->rule_iface, "Ingress interface")->check(interface_validator());
  add->add_option("--action", a->rule_action, "drop, pass, track (pass and track the connection) or limit:CLASS")
      ->required()
      ->check(action_validator(true));
  add->callback([a, set_action] {
    set_action([a](Context& ctx) {
      // Combinations that can never match are typos, not rules.
      std::optional<std::uint8_t> proto;
      if (a->proto) proto = filter::parse_protocol(*a->proto).value();
      if (a->src && a->dst &&
          filter::family_of(maps::parse_prefix(*a->src).value()) != filter::family_of(maps::parse_prefix(*a->dst).value()))
        return ctx.usage("--src " + *a->src + " and --dst " + *a->dst + " are of different address families: no packet matches both");
      const bool ports_proto = !proto || *proto == IPPROTO_TCP || *proto == IPPROTO_UDP;
      if (a->sport && !ports_proto) return ctx.usage("--sport " + *a->sport + " needs --proto tcp or udp, not " + *a->proto);
      if (a->dport && !ports_proto) return ctx.usage("--dport " + *a->dport + " needs --proto tcp or udp, not " + *a->proto);
      if (a->tcp_flags && proto && *proto != IPPROTO_TCP)
        return ctx.usage("--tcp-flags " + *a->tcp_flags + " needs --proto tcp, not " + *a->proto);
      if (a->icmp_type && proto && *proto != IPPROTO_ICMP && *proto != IPPROTO_ICMPV6)
        return ctx.usage("--icmp-type " + std::to_string(*a->icmp_type) + " needs --proto icmp or icmpv6, not " + *a->proto);
      if (a->icmp_type && (a->sport || a->dport || a->tcp_flags))
        return ctx.usage("--icmp-type cannot be combined with ports or --tcp-flags: no packet has both");
      {
        filter::FilterRule shape;  // the model's own check (the daemon refuses the same)
        if (a->src) shape.src = maps::parse_prefix(*a->src).value();
        if (a->dst) shape.dst = maps::parse_prefix(*a->dst).value();
        shape.protocol = proto;
        shape.icmp_type = a->icmp_type;
        if (auto problem = filter::unmatchable_icmp_problem(shape))
          return ctx.usage("--icmp-type " + std::to_string(*a->icmp_type) + " --proto " + *a->proto + ": " + *problem);
      }

      json::object args;
      if (a->priority) args["priority"] = *a->priority;
      if (a->src) args["src"] = canonical_prefix(*a->src);
      if (a->dst) args["dst"] = canonical_prefix(*a->dst);
      if (a->proto) args["proto"] = canonical_protocol(*a->proto);
      if (a->sport) args["sport"] = canonical_ports(*a->sport);
      if (a->dport) args["dport"] = canonical_ports(*a->dport);
      if (a->tcp_flags) args["tcp_flags"] = canonical_tcp_flags(*a->tcp_flags);
      if (a->icmp_type) args["icmp_type"] = static_cast<unsigned>(*a->icmp_type);
      if (a->rule_iface) args["iface"] = *a->rule_iface;
      std::string problem;
      auto action = parse_filter_action(a->rule_action, true, problem);
      if (!action) return ctx.usage("--action: " + problem);
      args["action"] = action->action;
      if (action->rate_class) args["rate_class"] = *action->rate_class;
      return ctx.call("rule.add", args, [&](const json::value& r) {
        const json::value* id = as_object(r, "rule.add result").if_contains("id");
        if (!id || !(id->is_int64() || id->is_uint64())) throw BadReply{"field id missing or not a number"};
        ctx.env().out << text(id) << '\n';
      });
    });
  });

  auto* del = rule->add_subcommand("del", "Delete a rule by id");
  add_decimal(del, "ID", "ID", a->rule_id, 0, std::numeric_limits<std::uint32_t>::max(),
              "The id rule add printed (rule list shows them)")
      ->required();
  del->callback([a, set_action] {
    set_action([a](Context& ctx) {
      return ctx.call("rule.del", {{"id", *a->rule_id}},
                      [&](const json::value&) { ctx.env().out << "deleted rule " << *a->rule_id << '\n'; });
    });
  });

  auto* list = rule->add_subcommand("list", "Show the rules in evaluation order with their hit counters");
  list->callback([set_action] {
    set_action([](Context& ctx) {
      return ctx.call("rule.list", {}, [&](const json::value& r) { render_rule_list(ctx.env().out, r); });
    });
  });
}

void add_filter(CLI::App& app, const std::shared_ptr<FilterArgs>& a, const std::function<void(Action)>& set_action) {
  auto* filter = app.add_subcommand("filter", "The filter as a whole: its default policy");
  filter->require_subcommand(1);
  auto* policy = filter->add_subcommand(
      "policy", "Show or set what happens to a packet no prefix-list entry, tracked flow or rule decided");
  policy->add_option("POLICY", a->policy, "drop (a default-drop firewall: allow with pass/track rules) or pass")
      ->check(pass_or_drop_validator());
  policy->callback([a, set_action] {
    set_action([a](Context& ctx) {
      if (!a->policy)
        return ctx.call("rule.list", {}, [&](const json::value& r) {
          ctx.env().out << field(as_object(r, "rule.list result"), "default_policy") << '\n';
        });
      return ctx.call("filter.policy", {{"policy", *a->policy}}, [&](const json::value& r) {
        ctx.env().out << "default policy: " << field(as_object(r, "filter.policy result"), "default_policy") << '\n';
      });
    });
  });
}

void add_limit(CLI::App& app, const std::shared_ptr<FilterArgs>& a, const std::function<void(Action)>& set_action) {
  auto* limit = app.add_subcommand("limit", "Rate-limit classes: token buckets per source prefix, and for all sources");
  limit->require_subcommand(1);

  auto* set = limit->add_subcommand("set", "Define or redefine a class (rules and prefixes use it as limit:CLASS)");
  set->add_option("CLASS", a->class_name, "Class name: " + config::class_name_rule())
      ->required()
      ->check(class_validator());
  add_decimal(set, "--pps", "--pps", a->pps, 1, filter::kMaxPacketsPerSec, "Packets per second per source")->required();
  add_decimal(set, "--bps", "--bps", a->bps, 1, filter::kMaxBytesPerSec, "Bytes per second per source (default: unlimited)");
  add_decimal(set, "--burst", "--burst", a->burst, 1, filter::kMaxPacketBurst,
              "Packets a source may send at once (default: one second of --pps)");
  set->add_flag("--syn-only", a->syn_only, "Only TCP SYNs (without ACK) spend tokens: a SYN-flood limit");
  set->add_option("--v4-prefix-len", a->v4_prefix_len,
                  "IPv4 sources sharing one bucket: the address cut to this length (default: 32)")
      ->check(CLI::Range(0u, 32u));
  set->add_option("--v6-prefix-len", a->v6_prefix_len,
                  "IPv6 sources sharing one bucket: the address cut to this length (default: 64, a site)")
      ->check(CLI::Range(0u, 128u));
  auto* aggregate_pps =
      set->add_option("--aggregate-pps", a->aggregate_pps,
                      "Packets per second of all sources together (a bucket they share; default: none)")
          ->check(CLI::Range(std::uint64_t{1}, filter::kMaxPacketsPerSec));
  set->add_option("--aggregate-bps", a->aggregate_bps, "Bytes per second of all sources together (default: none)")
      ->check(CLI::Range(std::uint64_t{1}, filter::kMaxBytesPerSec));
  set->add_option("--aggregate-burst", a->aggregate_burst,
                  "Packets all sources may send at once (default: one second of --aggregate-pps)")
      ->check(CLI::Range(std::uint64_t{1}, filter::kMaxPacketBurst))
      ->needs(aggregate_pps);
  set->callback([a, set_action] {
    set_action([a](Context& ctx) {
      std::string problem;
      auto class_id = class_value(a->class_name, problem);
      if (!class_id) return ctx.usage("CLASS: " + problem);
      json::object args{{"class", *class_id}, {"pps", *a->pps}};
      if (a->bps) args["bps"] = *a->bps;
      if (a->burst) args["burst"] = *a->burst;
      if (a->syn_only) args["syn_only"] = true;
      if (a->v4_prefix_len) args["v4_prefix_len"] = *a->v4_prefix_len;
      if (a->v6_prefix_len) args["v6_prefix_len"] = *a->v6_prefix_len;
      if (a->aggregate_pps) args["aggregate_pps"] = *a->aggregate_pps;
      if (a->aggregate_bps) args["aggregate_bps"] = *a->aggregate_bps;
      if (a->aggregate_burst) args["aggregate_burst"] = *a->aggregate_burst;
      return ctx.call("limit.set", args, [&](const json::value& r) {
        const json::value* created = as_object(r, "limit.set result").if_contains("created");
        const bool redefined = created && created->is_bool() && !created->as_bool();
        ctx.env().out << "rate class " << a->class_name << (redefined ? " redefined" : " created") << '\n';
      });
    });
  });

  auto* del = limit->add_subcommand("del", "Delete a class (refused while a rule or prefix uses it)");
  del->add_option("CLASS", a->class_name, "Class name")->required()->check(class_validator());
  del->callback([a, set_action] {
    set_action([a](Context& ctx) {
      std::string problem;
      auto class_id = class_value(a->class_name, problem);
      if (!class_id) return ctx.usage("CLASS: " + problem);
      return ctx.call("limit.del", {{"class", *class_id}},
                      [&](const json::value&) { ctx.env().out << "rate class " << a->class_name << " deleted\n"; });
    });
  });

  auto* list = limit->add_subcommand("list", "Show the rate-limit classes");
  list->callback([set_action] {
    set_action([](Context& ctx) {
      return ctx.call("limit.list", {}, [&](const json::value& r) { render_limit_list(ctx.env().out, r); });
    });
  });
}

void add_conn(CLI::App& app, const std::shared_ptr<FilterArgs>& a, const std::function<void(Action)>& set_action) {
  auto* conn = app.add_subcommand("conn", "The connection-tracking table");
  conn->require_subcommand(1);
  auto* list = conn->add_subcommand("list", "Show tracked flows (made by rules with --action track)");
  add_decimal(list, "--limit", "--limit", a->conn_limit, 1, protocol::max_conn_list_limit,
              "Show at most N flows (default: " + std::to_string(protocol::default_conn_list_limit) + ")");
  list->callback([a, set_action] {
    set_action([a](Context& ctx) {
      json::object args;
      if (a->conn_limit) args["limit"] = *a->conn_limit;
      return ctx.call("conn.list", args, [&](const json::value& r) { render_conn_list(ctx.env().out, r); });
    });
  });
}

}  // namespace

// The daemon's action back in the CLI's words: "limit:web", "track".
std::string action_text(const json::object& object) {
  const std::string action = field(object, "action");
  if (action == "rate-limit") return "limit:" + field(object, "rate_class");
  if (action == "pass-track") return "track";
  return action;
}

std::optional<FilterAction> parse_filter_action(std::string_view text, bool rule, std::string& problem) {
  const std::string expected = rule ? "drop, pass, track or limit:CLASS" : "drop, pass or limit:CLASS";
  if (text == "drop" || text == "pass") return FilterAction{std::string(text), std::nullopt};
  if (text == "track") {
    if (rule) return FilterAction{"pass-track", std::nullopt};
    problem = "bad action 'track': tracking is for rules, not prefix lists; expected " + expected;
    return std::nullopt;
  }
  constexpr std::string_view kLimit = "limit:";
  if (text.starts_with(kLimit)) {
    std::string why;
    auto rate_class = class_value(text.substr(kLimit.size()), why);
    if (!rate_class) {
      problem = "bad action '" + std::string(text) + "': " + why;
      return std::nullopt;
    }
    return FilterAction{"rate-limit", std::move(*rate_class)};
  }
  problem = "bad action '" + std::string(text) + "': expected " + expected;
  return std::nullopt;
}

CLI::Validator prefix_validator() {
  return check_with("CIDR", [](const std::string& text) -> std::string {
    if (auto prefix = maps::parse_prefix(text); !prefix) return prefix.error().message;
    return {};
  });
}

CLI::Validator action_validator(bool rule) {
  return check_with("ACTION", [rule](const std::string& text) -> std::string {
    std::string problem;
    if (!parse_filter_action(text, rule, problem)) return problem;
    return {};
  });
}

std::string canonical_prefix(const std::string& text) { return maps::to_string(maps::parse_prefix(text).value()); }

void add_filter_commands(CLI::App& app, const std::function<void(Action)>& set_action) {
  auto args = std::make_shared<FilterArgs>();
  add_rule(app, args, set_action);
  add_filter(app, args, set_action);
  add_limit(app, args, set_action);
  add_conn(app, args, set_action);
}

}  // namespace sluice::cli
