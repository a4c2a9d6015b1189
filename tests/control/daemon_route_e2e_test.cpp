// The forward stage through sluiced's socket, end to end: client <-> box <->
// server in namespaces this test creates, sluiced inside the box attached
// natively to both of its veth ports, the box's kernel forwarding off
// (net.ipv4.ip_forward=0, IPv6 forwarding 0) so only XDP can carry a packet
// across. Routes set through the socket carry ping (v4, v6) and 12 MB over
// TCP each way intact; route.del stops the traffic and route.add resumes it.
// Bad values (prefix, interface, group in use, CPU) change nothing, not even
// state.yaml; the forward bit is on only while a route exists; a kill -9 and
// restart brings the routes back exactly and traffic with them; `apply -f`
// takes a forward: section, config.show round-trips it; /metrics passes
// promtool; lb's egress forward needs a route.
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kClientMac = "02:5d:00:00:00:01";
constexpr const char* kBoxClientMac = "02:5d:00:00:00:02";
constexpr const char* kBoxServerMac = "02:5d:00:00:01:02";
constexpr const char* kServerMac = "02:5d:00:00:01:01";
constexpr std::size_t kTransferBytes = 12'000'000;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void must(const CommandResult& result, const std::string& what) {
  ASSERT_EQ(result.exit_code, 0) << what << ": " << result.output;
}

std::string error_of(ControlClient& client, const std::string& op, const json::object& args) {
  const auto reply = client.call(op, args);
  EXPECT_TRUE(reply.error) << op << " " << json::serialize(args) << " was accepted";
  return reply.error ? std::string(protocol::to_string(reply.error->code)) + ": " + reply.error->message : "";
}

bool forward_stage_on(ControlClient& client) { return client.result("config.get").at("stages").at("forward").as_bool(); }

// route.list without its counters: what a restart must bring back exactly.
json::array routes_of(ControlClient& client) {
  json::array out = client.result("route.list").at("routes").as_array();
  for (auto& route : out) {
    route.as_object().erase("packets");
    route.as_object().erase("bytes");
  }
  return out;
}

class DaemonRouteE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    SLUICE_REQUIRE_NETNS();
    const std::string pid = std::to_string(getpid());
    client_if_ = "rc" + pid, box_client_if_ = "rb" + pid, box_server_if_ = "rB" + pid, server_if_ = "rs" + pid;
    client_.emplace("sl-rt-client");
    box_.emplace("sl-rt-box");
    server_.emplace("sl-rt-server");
    must(run_command("ip link add " + client_if_ + " netns " + client_->name() + " address " + kClientMac +
                     " type veth peer name " + box_client_if_ + " netns " + box_->name() + " address " + kBoxClientMac),
         "client veth");
    must(run_command("ip link add " + server_if_ + " netns " + server_->name() + " address " + kServerMac +
                     " type veth peer name " + box_server_if_ + " netns " + box_->name() + " address " + kBoxServerMac),
         "server veth");
    must(client_->exec("ip addr add 198.18.0.1/24 dev " + client_if_ + " && ip -6 addr add 2001:db8::1/64 dev " +
                       client_if_ + " nodad && ip link set " + client_if_ +
                       " up && ip route add default via 198.18.0.2 && ip -6 route add default via 2001:db8::2"),
         "client addresses");
    must(server_->exec("ip addr add 198.18.1.1/24 dev " + server_if_ + " && ip -6 addr add 2001:db8:1::1/64 dev " +
                       server_if_ + " nodad && ip link set " + server_if_ +
                       " up && ip route add default via 198.18.1.2 && ip -6 route add default via 2001:db8:1::2"),
         "server addresses");
    must(box_->exec("ip addr add 198.18.0.2/24 dev " + box_client_if_ + " && ip -6 addr add 2001:db8::2/64 dev " +
                    box_client_if_ + " nodad && ip addr add 198.18.1.2/24 dev " + box_server_if_ +
                    " && ip -6 addr add 2001:db8:1::2/64 dev " + box_server_if_ + " nodad && ip link set " +
                    box_client_if_ + " up && ip link set " + box_server_if_ + " up"),
         "box addresses");
    // The kernel must not forward: only XDP carries packets across the box.
    must(box_->exec("sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0"), "forwarding off");
    ASSERT_EQ(box_->exec("sysctl -n net.ipv4.ip_forward").output, "0\n");
    ASSERT_EQ(box_->exec("sysctl -n net.ipv6.conf.all.forwarding").output, "0\n");
    // A native redirect into a veth reaches its peer only if the peer runs NAPI: a bare XDP_PASS on each end host.
    pass_prog_ = load_xdp_pass();
    ASSERT_GE(pass_prog_, 0) << std::strerror(errno);
    attach_pass(*client_, client_if_);
    attach_pass(*server_, server_if_);

    SluicedOptions options;
    options.netns = box_->name();
    options.metrics = "127.0.0.1:9647";
    daemon_.emplace(options);
    ASSERT_EQ(daemon_->start(), "");
    ControlClient client(daemon_->socket_path());
    for (const auto& ifname : {box_client_if_, box_server_if_}) client.result("attach", {{"iface", ifname}, {"mode", "native"}});
  }

  void TearDown() override {
    daemon_.reset();
    server_.reset();
    box_.reset();
    client_.reset();
    if (pass_prog_ >= 0) ::close(pass_prog_);
  }

  static int load_xdp_pass() {
    const bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
    };
    return bpf_prog_load(BPF_PROG_TYPE_XDP, "route_e2e_pass", "GPL", insns, 2, nullptr);
  }

  // One ethtool feature off (ETHTOOL_S*) on an interface of the calling thread's netns; 0 or -1 (errno set).
  static int ethtool_off(const std::string& ifname, std::uint32_t set_command) {
    const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    ethtool_value off{.cmd = set_command, .data = 0};
    ifreq request{};
    std::strncpy(request.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    request.ifr_data = reinterpret_cast<char*>(&off);
    const int rc = ::ioctl(sock, SIOCETHTOOL, &request);
    ::close(sock);
    return rc;
  }

  // veth leaves TCP/UDP checksums to "hardware"; a frame XDP redirects would leave without one: software checksums.
  void attach_pass(const Netns& ns, const std::string& ifname) {
    EnterNetns in(ns);
    ASSERT_EQ(ethtool_off(ifname, ETHTOOL_STXCSUM), 0) << "tx checksum off on " << ifname;
    const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    ASSERT_GT(ifindex, 0) << ifname;
    ASSERT_EQ(bpf_xdp_attach(ifindex, pass_prog_, XDP_FLAGS_DRV_MODE, nullptr), 0) << ifname;
  }

  // The routes that carry the lab's traffic, through the socket.
  void add_routes(ControlClient& client) {
    for (const char* prefix : {"198.18.0.0/24", "2001:db8::/64"})
      client.result("route.add", {{"prefix", prefix}, {"via", std::string(prefix).find(':') == std::string::npos ? "198.18.0.1" : "2001:db8::1"},
                                  {"dev", box_client_if_}, {"mac", kClientMac}});
    for (const char* prefix : {"198.18.1.0/24", "2001:db8:1::/64"})
      client.result("route.add", {{"prefix", prefix}, {"via", std::string(prefix).find(':') == std::string::npos ? "198.18.1.1" : "2001:db8:1::1"},
                                  {"dev", box_server_if_}, {"mac", kServerMac}});
    for (const char* prefix : {"198.18.0.2/32", "198.18.1.2/32", "2001:db8::2/128", "2001:db8:1::2/128"})
      client.result("route.add", {{"prefix", prefix}, {"to_stack", true}});
  }

  bool ping(const Netns& from, const char* to, int count = 3) const {
    return from.exec(std::string("ping -c ") + std::to_string(count) + " -i 0.2 -W 1 " + to, 10s).exit_code == 0;
  }

  void transfer(Netns& sender, Netns& receiver, const char* addr, int port, const std::filesystem::path& dir) {
    const auto sent = dir / "sent.bin", got = dir / "got.bin";
    must(run_command("head -c " + std::to_string(kTransferBytes) + " /dev/urandom > " + sent.string()), "payload");
    const pid_t listener = receiver.spawn("exec nc -l " + std::string(addr) + " " + std::to_string(port) + " > " + got.string());
    CommandResult sent_by;
    for (int attempt = 0; attempt < 20; ++attempt) {  // until the listener is up
      std::this_thread::sleep_for(100ms);
      sent_by = sender.exec("nc -N -w 5 " + std::string(addr) + " " + std::to_string(port) + " < " + sent.string(), 30s);
      if (sent_by.exit_code == 0 || sent_by.output.find("refused") == std::string::npos) break;
    }
    const int received = receiver.wait(listener, 10000ms);  // before any ASSERT: no listener outlives the test
    ASSERT_EQ(sent_by.exit_code, 0) << "nc to " << addr << ": " << sent_by.output;
    EXPECT_EQ(received, 0);
    ASSERT_EQ(std::filesystem::file_size(got), kTransferBytes) << "bytes lost";
    const auto sums = run_command("sha256sum < " + sent.string() + " && sha256sum < " + got.string()).output;
    EXPECT_EQ(sums.substr(0, 64), sums.substr(sums.find('\n') + 1, 64)) << "bytes changed";
  }

  std::optional<Netns> client_, box_, server_;
  std::optional<SluicedProcess> daemon_;
  std::string client_if_, box_client_if_, box_server_if_, server_if_;
  int pass_prog_ = -1;
};

TEST_F(DaemonRouteE2E, RoutesFromTheSocketCarryPingAndTcpOnlyThroughXdp) {
  ControlClient client(daemon_->socket_path());
  EXPECT_FALSE(ping(*client_, "198.18.1.1", 1)) << "no route yet: the box's kernel must not forward";
  EXPECT_FALSE(forward_stage_on(client));
  add_routes(client);
  EXPECT_TRUE(forward_stage_on(client));
  EXPECT_TRUE(ping(*client_, "198.18.1.1")) << "IPv4 across the box";
  EXPECT_TRUE(ping(*client_, "2001:db8:1::1")) << "IPv6 across the box";
  EXPECT_TRUE(ping(*server_, "198.18.0.1")) << "IPv4 back";
  EXPECT_TRUE(ping(*server_, "2001:db8::1")) << "IPv6 back";

  const auto dir = std::filesystem::temp_directory_path() / ("sluice-route-e2e-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  transfer(*client_, *server_, "198.18.1.1", 5401, dir);  // client -> server
  transfer(*server_, *client_, "198.18.0.1", 5402, dir);  // server -> client
  transfer(*client_, *server_, "2001:db8:1::1", 5403, dir);
  std::filesystem::remove_all(dir);

  // Counted per route and per next hop.
  std::uint64_t routed = 0;
  const json::value listed = client.result("route.list");
  for (const auto& route : listed.at("routes").as_array())
    if (route.at("prefix") == json::value("198.18.1.0/24")) routed = route.at("packets").to_number<std::uint64_t>();
  EXPECT_GT(routed, kTransferBytes / 1500) << "the route to the server counted the transfer";
  std::uint64_t to_server = 0;
  const json::value hops = client.result("nexthop.list");
  for (const auto& hop : hops.at("next_hops").as_array())
    if (hop.at("next_hop") == json::value("198.18.1.1@" + box_server_if_)) to_server = hop.at("packets").to_number<std::uint64_t>();
  EXPECT_GE(to_server, routed);

  // Removed at run time: nothing crosses; re-added: traffic resumes.
  client.result("route.del", {{"prefix", "198.18.1.0/24"}});
  EXPECT_FALSE(ping(*client_, "198.18.1.1", 2)) << "a removed route still carries traffic";
  EXPECT_TRUE(ping(*client_, "2001:db8:1::1", 1)) << "the other routes still do";
  client.result("route.add", {{"prefix", "198.18.1.0/24"}, {"via", "198.18.1.1"}, {"dev", box_server_if_}, {"mac", kServerMac}});
  EXPECT_TRUE(ping(*client_, "198.18.1.1")) << "the re-added route carries traffic again";

  // /metrics: the forward families, linted by promtool.
  const auto scrape = box_->exec("curl -sf http://127.0.0.1:9647/metrics");
  ASSERT_EQ(scrape.exit_code, 0) << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_forward_route_packets_total{prefix=\"198.18.0.0/24\"}"), std::string::npos) << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_forward_next_hop_packets_total{next_hop=\"198.18.1.1@" + box_server_if_), std::string::npos);
  EXPECT_NE(scrape.output.find("sluice_forward_packets_total{outcome=\"routed\"}"), std::string::npos);
  EXPECT_NE(scrape.output.find("sluice_forward_stage_enabled 1"), std::string::npos);
  EXPECT_NE(scrape.output.find("sluice_forward_cpumap_queue_size"), std::string::npos);
  ASSERT_EQ(run_command("command -v promtool").exit_code, 0) << "promtool is needed to lint /metrics";
  const auto checked = box_->exec("curl -sf http://127.0.0.1:9647/metrics | promtool check metrics");
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(checked.output, "") << "promtool lint findings";
}

// A port whose peer takes no redirected frames: the forward stage counts
// them routed, the kernel drops them after the program returned, and only its
// xdp tracepoints see that. sluiced counts them by port and errno.
TEST_F(DaemonRouteE2E, FramesAPortRefusesAfterTheRedirectAreCountedByPortAndErrno) {
  ControlClient client(daemon_->socket_path());
  add_routes(client);
  ASSERT_TRUE(ping(*client_, "198.18.1.1", 1)) << "the lab routes before the port breaks";
  auto scrape = [&] {
    const auto scraped = box_->exec("curl -sf http://127.0.0.1:9647/metrics");
    EXPECT_EQ(scraped.exit_code, 0) << scraped.output;
    return scraped.output;
  };
  // Where the kernel notices depends on its version: a veth whose peer cannot take XDP frames refuses them at the
  // redirect (6.x: the port does not advertise ndo_xdp_xmit, EOPNOTSUPP) or in the bulk transmit (ENXIO).
  const std::vector<std::string> failure_samples = {
      "sluice_xdp_redirect_errors_total{dev=\"" + box_client_if_ + "\",errno=\"EOPNOTSUPP\"} ",
      "sluice_xdp_xmit_drops_total{dev=\"" + box_client_if_ + "\",to=\"" + box_server_if_ + "\",errno=\"ENXIO\"} "};
  auto drops = [&]() -> std::optional<std::uint64_t> {
    const std::string text = scrape();
    std::optional<std::uint64_t> total;
    for (const auto& sample : failure_samples)
      if (const auto at = text.find(sample); at != std::string::npos)
        total = total.value_or(0) + std::stoull(text.substr(at + sample.size()));
    return total;
  };
  const std::string before = scrape();
  EXPECT_NE(before.find("sluice_xdp_redirect_error_watch{tracepoint=\"xdp_devmap_xmit\"} 1"), std::string::npos)
      << before;
  EXPECT_EQ(drops(), std::nullopt) << "nothing refused while the peer runs XDP";
  EXPECT_NE(before.find("sluice_xdp_redirect_error_watch{tracepoint=\"xdp_redirect_err\"} 1"), std::string::npos);

  // The server's port leaves NAPI mode (no XDP program, no GRO): its veth peer refuses redirected frames.
  {
    EnterNetns in(*server_);
    const int ifindex = static_cast<int>(if_nametoindex(server_if_.c_str()));
    ASSERT_GT(ifindex, 0);
    ASSERT_EQ(bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr), 0);
    ASSERT_EQ(ethtool_off(server_if_, ETHTOOL_SGRO), 0) << "gro off on " << server_if_;
  }
  constexpr int kLostPings = 5;
  EXPECT_FALSE(ping(*client_, "198.18.1.1", kLostPings)) << "a peer without NAPI still received redirected frames";
  const auto refused = drops();
  ASSERT_TRUE(refused.has_value()) << "no failed redirect counted: " << scrape();
  EXPECT_GE(*refused, static_cast<std::uint64_t>(kLostPings));

  // The port takes frames again: traffic crosses, and the count stays where it was.
  attach_pass(*server_, server_if_);
  EXPECT_TRUE(ping(*client_, "198.18.1.1")) << "the port carries traffic again";
  EXPECT_EQ(drops(), refused);
}

TEST_F(DaemonRouteE2E, BadValuesChangeNothingAndAKilledDaemonRestoresTheRoutes) {
  ControlClient client(daemon_->socket_path());
  add_routes(client);
  client.result("nexthop.group.add",
                {{"name", "both"},
                 {"next_hops", json::array{json::object{{"via", "198.18.1.1"}, {"dev", box_server_if_}, {"mac", kServerMac}, {"weight", 3}},
                                           json::object{{"via", "198.18.1.3"}, {"dev", box_server_if_}, {"mac", "02:5d:00:00:01:03"}}}}});
  client.result("route.add", {{"prefix", "198.18.4.0/24"}, {"group", "both"}});
  client.result("forward.set", {{"no_route", "drop"}, {"icmp_source_v4", "198.18.0.2"}});
  client.result("cpumap.set", {{"cpus", json::array{0}}, {"queue", 512}});
  const std::string state_path = daemon_->state_dir() + "/state.yaml";
  const std::string persisted = read_file(state_path);
  EXPECT_NE(persisted.find("forward:"), std::string::npos) << persisted;
  EXPECT_NE(persisted.find("198.18.4.0/24"), std::string::npos) << persisted;
  const json::array routes = routes_of(client);
  ASSERT_EQ(routes.size(), 9u);

  // Bad input: an error naming the field and the value; nothing changed (routes, file).
  EXPECT_NE(error_of(client, "route.add", {{"prefix", "198.18.9.1/24"}, {"to_stack", true}}).find("198.18.9.1/24"), std::string::npos);
  EXPECT_NE(error_of(client, "route.add", {{"prefix", "198.18.9.0/24"}, {"via", "198.18.1.1"}, {"dev", "nosuch0"}, {"mac", kServerMac}})
                .find("nosuch0"),
            std::string::npos);
  EXPECT_NE(error_of(client, "route.add", {{"prefix", "198.18.9.0/24"}, {"via", "198.18.1.1"}, {"dev", box_server_if_}})
                .find("mac"),
            std::string::npos);
  EXPECT_NE(error_of(client, "route.add", {{"prefix", "198.18.9.0/24"}, {"via", "198.18.1.1"}, {"dev", box_server_if_}, {"mac", "02:5d:00:00:01:09"}})
                .find("one neighbour, one MAC"),
            std::string::npos);
  EXPECT_NE(error_of(client, "route.add", {{"prefix", "198.18.9.0/24"}, {"group", "nosuch"}}).find("nosuch"), std::string::npos);
  EXPECT_NE(error_of(client, "route.add", {{"prefix", "198.18.0.0/24"}, {"to_stack", true}}).find("is a route already"), std::string::npos);
  EXPECT_NE(error_of(client, "route.del", {{"prefix", "198.18.9.0/24"}}).find("not a route"), std::string::npos);
  EXPECT_NE(error_of(client, "nexthop.group.del", {{"name", "both"}}).find("198.18.4.0/24"), std::string::npos)
      << "a group still used by a route";
  EXPECT_NE(error_of(client, "nexthop.group.add", {{"name", "w"}, {"next_hops", json::array{json::object{{"via", "198.18.1.1"}, {"dev", box_server_if_}, {"mac", kServerMac}, {"weight", 999}}}}})
                .find("weight"),
            std::string::npos);
  EXPECT_NE(error_of(client, "cpumap.set", {{"cpus", json::array{4096}}}).find("CPU 4096 does not exist"), std::string::npos);
  const int possible = libbpf_num_possible_cpus();
  EXPECT_NE(error_of(client, "cpumap.set", {{"cpus", json::array{possible}}}).find("cpus[0]"), std::string::npos);
  EXPECT_NE(error_of(client, "forward.set", {{"no_route", "tx"}}).find("tx\" is not pass or drop"), std::string::npos);
  EXPECT_NE(error_of(client, "forward.set", {{"icmp_source_v6", "198.18.0.2"}}).find("icmp_source_v6"), std::string::npos);
  EXPECT_EQ(read_file(state_path), persisted) << "a refused op changed state.yaml";
  EXPECT_EQ(routes_of(client), routes);

  // kill -9, restart: the same routes, groups and settings; traffic crosses again.
  const std::string shown = std::string(client.result("config.show").at("yaml").as_string());
  client.close();
  daemon_->kill_hard();
  ASSERT_EQ(daemon_->start(), "");
  ControlClient again(daemon_->socket_path());
  EXPECT_EQ(routes_of(again), routes);
  EXPECT_EQ(std::string(again.result("config.show").at("yaml").as_string()), shown);
  EXPECT_TRUE(forward_stage_on(again));
  const auto show = again.result("forward.show");
  EXPECT_EQ(show.at("settings").at("no_route"), json::value("drop"));
  EXPECT_EQ(show.at("settings").at("cpumap_queue").to_number<int>(), 512);
  EXPECT_TRUE(ping(*client_, "198.18.1.1")) << "after the restart";
  EXPECT_TRUE(ping(*server_, "2001:db8::1")) << "after the restart";

  // config show round-trips through apply: nothing to do.
  EXPECT_TRUE(again.result("apply", {{"yaml", shown}, {"dry_run", true}}).at("diff").as_array().empty());

  // The last route gone: the forward bit goes off (the other routes first).
  again.result("route.del", {{"prefix", "198.18.4.0/24"}});
  again.result("nexthop.group.del", {{"name", "both"}});
  for (const auto& route : routes)
    if (route.at("prefix") != json::value("198.18.4.0/24")) again.result("route.del", {{"prefix", route.at("prefix")}});
  EXPECT_FALSE(forward_stage_on(again)) << "no route: the forward stage must be off";
  EXPECT_TRUE(again.result("nexthop.list").at("next_hops").as_array().empty()) << "next hops nothing uses are gone";
}

TEST_F(DaemonRouteE2E, ApplyTakesTheForwardSectionAndLbEgressForwardNeedsARoute) {
  ControlClient client(daemon_->socket_path());
  const std::string good = "forward:\n  settings: {no_route: pass, cpus: [0]}\n  routes:\n"
                           "    - {prefix: 198.18.1.0/24, via: 198.18.1.1, dev: " + box_server_if_ + ", mac: '" + kServerMac + "'}\n"
                           "    - {prefix: 198.18.0.0/24, via: 198.18.0.1, dev: " + box_client_if_ + ", mac: '" + kClientMac + "'}\n";
  const auto dry = client.result("apply", {{"yaml", good}, {"dry_run", true}});
  const auto& diff = dry.at("diff").as_array();
  ASSERT_FALSE(diff.empty());
  EXPECT_NE(json::serialize(diff).find("+ route 198.18.1.0/24: via 198.18.1.1 dev " + box_server_if_), std::string::npos)
      << json::serialize(diff);
  EXPECT_TRUE(client.result("route.list").at("routes").as_array().empty()) << "a dry run changed something";

  // An unknown interface refuses the whole document.
  std::string bad = good;
  bad.replace(bad.find(box_client_if_), box_client_if_.size(), "nosuch0");
  const auto refused = client.call("apply", {{"yaml", bad}});
  ASSERT_TRUE(refused.error);
  EXPECT_NE(refused.error->message.find("forward.routes[1].dev"), std::string::npos) << refused.error->message;
  EXPECT_TRUE(client.result("route.list").at("routes").as_array().empty());

  client.result("apply", {{"yaml", good}});
  EXPECT_EQ(client.result("route.list").at("routes").as_array().size(), 2u);
  EXPECT_TRUE(forward_stage_on(client));
  EXPECT_TRUE(ping(*client_, "198.18.1.1")) << "routes from apply carry traffic";
  const std::string shown = std::string(client.result("config.show").at("yaml").as_string());
  EXPECT_NE(shown.find("forward:"), std::string::npos) << shown;
  EXPECT_TRUE(client.result("apply", {{"yaml", shown}, {"dry_run", true}}).at("diff").as_array().empty()) << shown;

  // lb composition: egress forward hands the encapsulated packets to the forward stage, so it needs a route.
  client.result("lb.set", {{"encap_source", "198.18.1.2"}, {"egress", "forward"}});
  client.result("vip.add", {{"vip", "198.18.5.10:80/tcp"}, {"table_size", 251}});
  client.result("backend.add", {{"vip", "198.18.5.10:80/tcp"}, {"address", "198.18.1.1"}});
  const auto stages = client.result("config.get").at("stages");
  EXPECT_TRUE(stages.at("lb").as_bool());
  EXPECT_TRUE(stages.at("forward").as_bool());
  // The encapsulated packets leave where the routes say: the route to the backend's network counts them.
  auto counted = [&](const std::string& prefix) {
    const json::value listed = client.result("route.list");
    for (const auto& route : listed.at("routes").as_array())
      if (route.at("prefix") == json::value(prefix)) return route.at("packets").to_number<std::uint64_t>();
    return std::uint64_t{0};
  };
  const std::uint64_t before = counted("198.18.1.0/24");
  (void)client_->exec("nc -z -w 1 198.18.5.10 80", 5s);  // SYNs to the VIP; no answer expected
  EXPECT_GE(counted("198.18.1.0/24"), before + 1) << "lb's encapsulated SYN was not routed to the backend";
  // Routed elsewhere: the route decides where lb traffic leaves.
  client.result("route.replace", {{"prefix", "198.18.1.0/24"}, {"to_stack", true}});
  auto to_stack = [&] {  // the stage's to_stack outcome, from /metrics
    const std::string text = box_->exec("curl -sf http://127.0.0.1:9647/metrics").output;
    const std::string key = "sluice_forward_packets_total{outcome=\"to_stack\"} ";
    const auto at = text.find(key);
    return at == std::string::npos ? std::uint64_t{0} : std::stoull(text.substr(at + key.size()));
  };
  const std::uint64_t to_stack_before = to_stack();
  (void)client_->exec("nc -z -w 1 198.18.5.10 80", 5s);
  EXPECT_GE(to_stack(), to_stack_before + 1) << "lb's encapsulated SYN did not follow the replaced route\n"
                                              << box_->exec("curl -sf http://127.0.0.1:9647/metrics | grep -E 'forward_packets|lb_|reason=\"(lb|fwd)'").output
                                              << json::serialize(client.result("route.list"));
  const json::value hops_after = client.result("nexthop.list");
  for (const auto& hop : hops_after.at("next_hops").as_array())
    EXPECT_NE(hop.at("next_hop"), json::value("198.18.1.1@" + box_server_if_)) << "the server's next hop should be gone";
  client.result("route.replace", {{"prefix", "198.18.1.0/24"}, {"via", "198.18.1.1"}, {"dev", box_server_if_}, {"mac", kServerMac}});
  const std::string empty_forward = "forward:\n  routes: []\n";
  const auto lost = client.call("apply", {{"yaml", empty_forward}});
  ASSERT_TRUE(lost.error) << "the last route went while lb egress forward needs it";
  EXPECT_NE(lost.error->message.find("lb.settings.egress"), std::string::npos) << lost.error->message;
  EXPECT_EQ(client.result("route.list").at("routes").as_array().size(), 2u);
}


// cpumap: local traffic (a to-stack route) spread by flow hash over the
// configured CPU set. Where a frame lands is the CPU whose cpumap kthread
// ("cpumap/<cpu>/map:<id>") builds its skb: with two CPUs set and many
// flows, both kthreads run (their schedstat timeslices grow).
TEST_F(DaemonRouteE2E, CpumapSpreadsLocalTrafficOverTwoCpus) {
  if (libbpf_num_possible_cpus() < 2) GTEST_FAIL() << "two possible CPUs are needed";
  ControlClient client(daemon_->socket_path());
  add_routes(client);
  client.result("cpumap.set", {{"cpus", json::array{0, 1}}, {"queue", 256}});
  const int map_fd = bpf_obj_get((daemon_->pin_dir() + "/fwd_cpus").c_str());
  ASSERT_GE(map_fd, 0) << "the cpumap is not pinned as " << daemon_->pin_dir() << "/fwd_cpus";
  bpf_map_info info{};
  __u32 info_len = sizeof info;
  ASSERT_EQ(bpf_obj_get_info_by_fd(map_fd, &info, &info_len), 0);
  ::close(map_fd);
  // The kthread of each CPU of this cpumap, and the timeslices it has run.
  auto timeslices = [&](int cpu) -> std::optional<std::uint64_t> {
    const std::string comm = "cpumap/" + std::to_string(cpu) + "/map:" + std::to_string(info.id);
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string pid = entry.path().filename();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string name = read_file(entry.path() / "comm");
      if (!name.empty() && name.back() == '\n') name.pop_back();
      if (name != comm) continue;
      std::istringstream stat(read_file(entry.path() / "schedstat"));
      std::uint64_t run_ns = 0, wait_ns = 0, slices = 0;
      if (stat >> run_ns >> wait_ns >> slices) return slices;
    }
    return std::nullopt;
  };
  const auto before0 = timeslices(0), before1 = timeslices(1);
  ASSERT_TRUE(before0 && before1) << "no cpumap kthread for CPU 0 and 1 of map " << info.id;
  // 200 UDP datagrams to the box, each from a new socket (a new source port: a new flow).
  must(client_->exec("bash -c 'for i in $(seq 1 200); do echo x > /dev/udp/198.18.0.2/9; done'", 20s), "datagrams");
  std::this_thread::sleep_for(200ms);
  const auto after0 = timeslices(0), after1 = timeslices(1);
  ASSERT_TRUE(after0 && after1);
  EXPECT_GT(*after0, *before0) << "nothing landed on CPU 0";
  EXPECT_GT(*after1, *before1) << "nothing landed on CPU 1";
  const auto show = client.result("forward.show");
  EXPECT_EQ(show.at("events").at("cpumap_fallback").to_number<std::uint64_t>(), 0u) << json::serialize(show);
}


// A route whose interface is gone at start: the start reports it (degraded,
// state.yaml kept as .rejected) and the filter keeps its rules; what is
// reported is what runs (no routes).
TEST_F(DaemonRouteE2E, AStartWithoutARoutesInterfaceIsDegradedNotFilterless) {
  ControlClient client(daemon_->socket_path());
  client.result("rule.add", {{"priority", 10}, {"proto", "tcp"}, {"dport", 23}, {"action", "drop"}});
  add_routes(client);
  client.close();
  daemon_->kill_hard();
  must(box_->exec("ip link del " + box_server_if_), "remove the server port");
  ASSERT_EQ(daemon_->start(), "");
  ControlClient again(daemon_->socket_path());
  const auto status = again.result("status");
  EXPECT_TRUE(status.at("degraded").as_bool()) << json::serialize(status);
  EXPECT_NE(json::serialize(status).find(box_server_if_), std::string::npos) << json::serialize(status);
  EXPECT_EQ(again.result("rule.list").at("rules").as_array().size(), 1u) << "the filter lost its rules";
  EXPECT_TRUE(again.result("route.list").at("routes").as_array().empty()) << "routes reported that do not run";
  EXPECT_TRUE(std::filesystem::exists(daemon_->state_dir() + "/state.yaml.rejected"));
}

// Next hops without a MAC (the box's kernel neighbour table resolves them)
// and route sync (`ip route add` in the box steers XDP) through the socket.
TEST_F(DaemonRouteE2E, MacLessNextHopsAndRouteSyncCarryPing) {
  ControlClient client(daemon_->socket_path());
  auto within = [](std::chrono::milliseconds limit, const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  };
  auto hop_resolved = [&](const std::string& name) {
    const json::value hops = client.result("nexthop.list");
    for (const auto& hop : hops.at("next_hops").as_array())
      if (hop.at("next_hop").as_string() == name) return hop.at("resolved").as_bool();
    return false;
  };
  // The route.list entry of (prefix, origin); null when there is none.
  auto listed = [&](const std::string& prefix, const std::string& origin) -> json::value {
    const json::value routes = client.result("route.list");
    for (const auto& route : routes.at("routes").as_array())
      if (route.at("prefix").as_string() == prefix && route.at("origin").as_string() == origin) return route;
    return nullptr;
  };

  // 1. Static routes with no MAC: resolved from the box's neighbour table, they carry ping.
  const std::string to_server = "198.18.1.1@" + box_server_if_;
  client.result("route.add", {{"prefix", "198.18.0.0/24"}, {"via", "198.18.0.1"}, {"dev", box_client_if_}});
  const auto added = client.result("route.add", {{"prefix", "198.18.1.0/24"}, {"via", "198.18.1.1"}, {"dev", box_server_if_}});
  EXPECT_TRUE(added.at("mac").is_null()) << added;
  for (const char* prefix : {"198.18.0.2/32", "198.18.1.2/32"}) client.result("route.add", {{"prefix", prefix}, {"to_stack", true}});
  EXPECT_TRUE(within(1000ms, [&] { return hop_resolved(to_server) && hop_resolved("198.18.0.1@" + box_client_if_); }))
      << "the neighbour table resolves both next hops within a second: " << client.result("nexthop.list")
      << box_->exec("ip neigh show").output;
  const json::value hops = client.result("nexthop.list");
  for (const auto& hop : hops.at("next_hops").as_array()) {
    const std::string via(hop.at("via").as_string());
    EXPECT_TRUE(via == "198.18.0.1" || via == "198.18.1.1") << "nexthop.list reads a live list: " << hop;
  }
  for (const auto& hop : hops.at("next_hops").as_array())
    if (hop.at("next_hop").as_string() == to_server) {
      EXPECT_EQ(hop.at("mac"), json::value(kServerMac)) << "the server's MAC, learned by the box's kernel";
      EXPECT_TRUE(hop.at("resolve_mac").as_bool());
    }
  EXPECT_TRUE(ping(*client_, "198.18.1.1")) << "MAC-less static routes carry ping through XDP";
  const std::string yaml = std::string(client.result("config.show").at("yaml").as_string());
  EXPECT_NE(yaml.find("{prefix: 198.18.1.0/24, via: 198.18.1.1, dev: " + box_server_if_ + "}"), std::string::npos) << yaml;

  // 2. Route sync: a kernel route added in the box carries ping within a second; deleted, it stops.
  must(server_->exec("ip addr add 198.18.9.1/24 dev " + server_if_), "server's extra address");
  client.result("route.del", {{"prefix", "198.18.1.0/24"}});
  EXPECT_FALSE(ping(*client_, "198.18.9.1", 1)) << "no route: the box's kernel does not forward";
  EXPECT_NE(error_of(client, "route.sync", {{"enabled", true}, {"table", 255}}).find("table: 255 is the local table"),
            std::string::npos);
  EXPECT_NE(error_of(client, "route.sync", {{"enabled", true}, {"table", 0}}).find("RT_TABLE_UNSPEC"), std::string::npos);
  const auto synced = client.result("route.sync", {{"enabled", true}});
  EXPECT_EQ(synced.at("table").to_number<int>(), 254);
  EXPECT_EQ(client.result("forward.show").at("sync").at("table").to_number<int>(), 254);
  // The box's connected routes are mirrored (to the stack); the static one for the same prefix hides its twin.
  EXPECT_FALSE(listed("198.18.1.0/24", "kernel").is_null()) << "connected route mirrored";
  const json::value twin = listed("198.18.0.0/24", "kernel");
  ASSERT_FALSE(twin.is_null());
  EXPECT_FALSE(twin.at("effective").as_bool()) << "static over kernel";
  EXPECT_TRUE(listed("198.18.0.0/24", "static").at("effective").as_bool());

  must(box_->exec("ip route add 198.18.9.0/24 via 198.18.1.1 dev " + box_server_if_), "ip route add");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(within(1000ms, [&] {
    const json::value route = listed("198.18.9.0/24", "kernel");
    return !route.is_null() && route.at("effective").as_bool() && route.at("kind").as_string() == "via" &&
           hop_resolved(std::string(route.at("next_hop").as_string()));
  })) << "mirrored and resolved within a second";
  bool carried = false;
  while (!carried && std::chrono::steady_clock::now() - started < 1500ms) carried = ping(*client_, "198.18.9.1", 1);
  EXPECT_TRUE(carried) << "the kernel route carries ping through XDP within a second or so";
  EXPECT_TRUE(ping(*client_, "198.18.9.1"));
  const auto scrape = box_->exec("curl -sf http://127.0.0.1:9647/metrics");
  EXPECT_NE(scrape.output.find("sluice_forward_sync_enabled 1"), std::string::npos) << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_forward_sync_routes{table=\"254\",as=\"next_hop\"} 1"), std::string::npos) << scrape.output;
  EXPECT_NE(scrape.output.find("sluice_forward_neighbour_probes_total"), std::string::npos);
  const auto checked = box_->exec("curl -sf http://127.0.0.1:9647/metrics | promtool check metrics");
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(checked.output, "") << "promtool lint findings";

  must(box_->exec("ip route del 198.18.9.0/24"), "ip route del");
  EXPECT_TRUE(within(1000ms, [&] { return listed("198.18.9.0/24", "kernel").is_null(); })) << "removed within a second";
  EXPECT_FALSE(ping(*client_, "198.18.9.1", 2)) << "a deleted kernel route carries nothing";

  // 3. Persisted: a killed daemon comes back syncing (the kernel route is mirrored again).
  must(box_->exec("ip route add 198.18.9.0/24 via 198.18.1.1 dev " + box_server_if_), "ip route add again");
  EXPECT_NE(std::string(client.result("config.show").at("yaml").as_string()).find("sync: {table: 254}"), std::string::npos);
  client.close();
  daemon_->kill_hard();
  ASSERT_EQ(daemon_->start(), "");
  ControlClient again(daemon_->socket_path());
  EXPECT_EQ(again.result("forward.show").at("sync").at("table").to_number<int>(), 254);
  EXPECT_TRUE(ping(*client_, "198.18.9.1", 5)) << "after the restart the mirrored route carries ping";

  // 4. Sync off: the kernel's routes leave the table, the static ones stay.
  EXPECT_FALSE(again.result("route.sync", {{"enabled", false}}).at("enabled").as_bool());
  const json::value after_off = again.result("route.list");
  for (const auto& route : after_off.at("routes").as_array())
    EXPECT_EQ(route.at("origin"), json::value("static")) << route;
  EXPECT_FALSE(ping(*client_, "198.18.9.1", 1)) << "sync off: the kernel route no longer steers XDP";
}

}  // namespace
}  // namespace sluice::test
