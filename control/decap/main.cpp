// sluice-decap: the backend side of sluice's load balancer. Everything but
// the command line is in decap_host.cpp.
#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>

#include <cstdarg>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "decap_host.hpp"

namespace {

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;  // as CLI11's own errors

int fail(const std::string& message, int code = exit_failure) {
  std::fprintf(stderr, "sluice-decap: %s\n", message.c_str());
  return code;
}

// libbpf's messages (the verifier's log of a refused load) only with --verbose:
// the error sluice-decap prints names what failed.
bool verbose = false;
int print_libbpf_message(libbpf_print_level level, const char* format, va_list args) {
  if (!verbose || level == LIBBPF_DEBUG) return 0;
  return std::vfprintf(stderr, format, args);
}

}  // namespace

int main(int argc, char** argv) {
  namespace decap = sluice::decap;
  CLI::App app{"sluice-decap: strip sluice's IP-in-IP / IPv6 encapsulation on a backend (XDP)"};
  app.require_subcommand(1);
  app.fallthrough();  // --bpffs and --verbose before or after the command
  std::string pin_root = decap::default_pin_root;
  app.add_option("--bpffs", pin_root, "bpffs directory of the pinned maps (one subdirectory per interface)")
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "print libbpf's messages (e.g. the verifier log of a refused load)");

  std::string ifname, mode_text = "native";
  std::vector<std::string> addresses, sources;
  bool any_source = false;
  CLI::App* attach = app.add_subcommand("attach", "attach to IFACE, or refresh its accepted addresses");
  attach->add_option("IFACE", ifname, "interface the encapsulated packets arrive on")->required();
  attach->add_option("--address", addresses,
                     "outer destination to accept besides the interface's own addresses (repeatable)");
  attach->add_option("--source", sources,
                     "outer source prefix to decapsulate from: a balancer's encap source (repeatable; re-running "
                     "attach replaces the set)");
  attach->add_flag("--any-source", any_source,
                   "decapsulate from every outer source (unsafe: a forged tunnel gets any inner source past the edge)");
  attach->add_option("--mode", mode_text, "native or skb")->capture_default_str();

  CLI::App* detach = app.add_subcommand("detach", "detach from IFACE and remove its pins");
  detach->add_option("IFACE", ifname, "interface")->required();

  std::optional<std::string> only;
  bool as_json = false;
  CLI::App* status = app.add_subcommand("status", "per interface: attached, mode, addresses, counters");
  status->add_option("IFACE", only, "only this interface");
  status->add_flag("--json", as_json, "JSON for scripts");

  CLI11_PARSE(app, argc, argv);
  libbpf_set_print(print_libbpf_message);

  if (attach->parsed()) {
    auto mode = sluice::dataplane::parse_attach_mode(mode_text);
    if (!mode) return fail("--mode '" + mode_text + "': expected native or skb", exit_usage);
    decap::AttachRequest request{ifname, *mode, addresses, sources, any_source, pin_root};
    auto report = decap::attach(request);
    if (!report) return fail(report.error().message);
    std::printf("%s sluice-decap on %s (%s, program id %u), accepting", report->already_attached ? "refreshed" : "attached",
                ifname.c_str(), std::string(sluice::dataplane::to_string(report->program.mode)).c_str(),
                report->program.prog_id);
    for (const auto& a : report->addresses) std::printf(" %s", decap::address_text(a.key).c_str());
    std::printf(" from");
    for (const auto& source : report->sources) std::printf(" %s", decap::source_text(source).c_str());
    std::printf("\n");
    return 0;
  }
  if (detach->parsed()) {
    auto report = decap::detach(ifname, pin_root);
    if (!report) return fail(report.error().message);
    if (!report->was_attached && !report->had_pins) std::printf("sluice-decap was not attached to %s\n", ifname.c_str());
    else std::printf("detached sluice-decap from %s\n", ifname.c_str());
    return 0;
  }
  auto interfaces = decap::status(pin_root, only);
  if (!interfaces) return fail(interfaces.error().message);
  std::fputs((as_json ? decap::status_json(*interfaces) : decap::status_text(*interfaces)).c_str(), stdout);
  return 0;
}
