// The load balancer end to end, with real clients and servers in namespaces
// this test creates:
//
//   client ──┐                      switch namespace: bridge br0, which is
//   box ─────┤  br0 (198.18.0.254,  also the router the box sends its
//   b1..b4 ──┘   2001:db8::fe)      encapsulated packets to (next hop)
//
// The client reaches the VIPs through the box (a route via the box); the box
// runs sluiced, one-armed on the segment, and encapsulates each VIP packet
// to its backend; the router forwards it to the backend; sluice-decap on the
// backend's veth strips it; a real HTTP server on the backend answers from
// the VIP (held on lo) straight to the client, on the same segment, never
// through the box.
//
// Asserted, for an IPv4 and an IPv6 VIP at once: 300 real connections (curl)
// per VIP all succeed; each backend's share is within 10 points of its weight
// share; the box saw only client->VIP packets (its VIP counter equals what
// the client sent, and no frame from the VIP reached it) and the client got
// the replies from the backends' MACs; a long-lived (keep-alive) connection
// stays on its backend while a fourth backend is added, while its own backend
// is drained and across a restart of sluiced; a backend whose server is
// stopped is taken out by the HTTP health check and the following
// connections all succeed. Every wait is bounded; the lab goes with the test.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int backend_count = 4;  // b1..b3 from the start, b4 added later
constexpr std::array<int, backend_count> weights = {1, 2, 3, 3};
constexpr int connections = 300;
constexpr int followup_connections = 60;
constexpr double share_tolerance_points = 10.0;
constexpr std::uint16_t http_port = 80;
constexpr const char* python = "/usr/bin/python3";
constexpr auto health_wait = 15s;
constexpr auto poll_every = 100ms;
constexpr auto curl_timeout = 60s;

struct Family {
  int version;
  const char* vip;              // address
  const char* vip_spec;         // for vip.add
  const char* client;
  const char* box;
  const char* router;
  std::string backend(int i) const {  // i = 0..3 -> .11 .. .14 / ::11 .. ::14
    return version == 4 ? "198.18.0." + std::to_string(11 + i) : "2001:db8::" + std::to_string(11 + i);
  }
  const char* prefix_len;
  const char* url_host;  // as curl --resolve takes it
};
const Family v4{4, "198.18.1.10", "198.18.1.10:80/tcp", "198.18.0.1", "198.18.0.2", "198.18.0.254", "24", "198.18.1.10"};
const Family v6{6, "2001:db8:1::10", "[2001:db8:1::10]:80/tcp", "2001:db8::1", "2001:db8::2", "2001:db8::fe", "64",
                "[2001:db8:1::10]"};

// A small HTTP/1.1 server (keep-alive, so one connection can carry many
// requests): GET of any path answers the backend's name. Dual stack on ::.
constexpr const char* server_source = R"(import socket, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
name, port = sys.argv[1], int(sys.argv[2])
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    def handle_error(self, request, client_address):
        pass  # a health check that gave up early (broken pipe) is not news
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
Server(("::", port), Handler).serve_forever()
)";

void must(const CommandResult& result, const std::string& what) {
  ASSERT_EQ(result.exit_code, 0) << what << ": " << result.output;
}

std::string suffix() { return std::to_string(getpid()); }

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

template <class Predicate>
bool eventually(Predicate&& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(poll_every);
  }
  return done();
}

// A capture (tcpdump -U -w) in a namespace, stopped by pid; read back with a filter.
class Capture {
 public:
  Capture(Netns& ns, const std::string& ifname, std::string path) : ns_(ns), path_(std::move(path)) {
    pid_ = ns_.spawn("exec tcpdump -U -B 8192 -n -i " + ifname + " -w " + path_ + " 2>/dev/null");
    // -U writes the file header as soon as the capture is open.
    eventually([&] { std::error_code ec; return fs::file_size(path_, ec) >= pcap_header_size && !ec; }, 5s);
  }
  Capture(const Capture&) = delete;
  Capture& operator=(const Capture&) = delete;
  // tcpdump may lag behind the kernel on a loaded machine: stop only once the
  // file has stopped growing (bounded), or the last frames would be lost.
  void stop() {
    if (pid_ <= 0) return;
    std::uintmax_t last = 0;
    int still = 0;
    constexpr int still_polls = 5;
    eventually([&] {
      std::error_code ec;
      const auto now = fs::file_size(path_, ec);
      still = now == last ? still + 1 : 0;
      last = now;
      return still >= still_polls;
    }, 5s);
    ::kill(-pid_, SIGINT);
    ns_.wait(pid_, 3s);
    pid_ = -1;
  }
  // tcpdump's lines for the frames matching filter (-e: with MACs).
  std::vector<std::string> lines(const std::string& filter) const {
    auto read = run_command("tcpdump -nn -e -r " + path_ + " '" + filter + "' 2>/dev/null");
    std::vector<std::string> out;
    std::istringstream in(read.output);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) out.push_back(line);
    return out;
  }

 private:
  static constexpr std::uintmax_t pcap_header_size = 24;
  Netns& ns_;
  std::string path_;
  pid_t pid_ = -1;
};

class LbLab {
 public:
  LbLab() : dir_(make_dir()) {}
  ~LbLab() {
    // sluice-decap's pins (the namespaces take the interfaces and their programs with them).
    std::error_code ec;
    for (const auto& ifname : backend_if) fs::remove_all(std::string("/sys/fs/bpf/sluice-decap/") + ifname, ec);
    fs::remove("/sys/fs/bpf/sluice-decap", ec);  // only when empty
    fs::remove_all(dir_, ec);
  }

  void build() {
    const std::string s = suffix();
    for (Netns* ns : all_hosts()) {
      // No DAD: addresses (link-local ones too) usable at once, or neighbour
      // discovery waits two seconds for them.
      must(ns->exec("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0"), "no DAD");
    }
    must(sw.exec("ip link add br0 type bridge && ip link set br0 up && ip addr add " + std::string(v4.router) +
                 "/24 dev br0 && ip -6 addr add " + v6.router + "/64 dev br0 && "
                 "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
                 "net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.br0.send_redirects=0"),
         "switch and router");
    client_if = "lc" + s;
    box_if = "lx" + s;
    plug(client, client_if, "sc" + s);
    plug(box, box_if, "sx" + s);
    for (int i = 0; i < backend_count; ++i) {
      backends.push_back(std::make_unique<Netns>("lb-b" + std::to_string(i + 1)));
      must(backends.back()->exec("sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0"), "no DAD");
      backend_if.push_back("l" + std::to_string(i + 1) + s);
      plug(*backends.back(), backend_if.back(), "s" + std::to_string(i + 1) + s);
    }
    if (::testing::Test::HasFatalFailure()) return;
    address(client, client_if, v4.client, v6.client);
    address(box, box_if, v4.box, v6.box);
    // The client reaches the VIPs through the box.
    must(client.exec(std::string("ip route add ") + v4.vip + "/32 via " + v4.box + " && ip -6 route add " + v6.vip +
                     "/128 via " + v6.box),
         "client routes to the VIPs");
    std::ofstream(dir_ + "/server.py") << server_source;
    for (int i = 0; i < backend_count; ++i) {
      Netns& b = *backends[i];
      address(b, backend_if[i], v4.backend(i), v6.backend(i));
      // The DSR backend settings docs/decap.md asks for.
      must(b.exec(std::string("ip addr add ") + v4.vip + "/32 dev lo && ip -6 addr add " + v6.vip +
                  "/128 dev lo && sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 "
                  "net.ipv4.conf.all.rp_filter=2"),
           "backend VIP on lo");
      auto decap = run_command("nsenter --net=/run/netns/" + b.name() + " " + SLUICE_DECAP_PATH + " attach " +
                               backend_if[i] + " --source " + v4.box + " --source " + v6.box);
      must(decap, "sluice-decap attach on " + backend_if[i]);
      start_server(i);
    }
    router_mac = mac(sw, "br0");
    box_mac = mac(box, box_if);
    client_mac = mac(client, client_if);
    for (int i = 0; i < backend_count; ++i) backend_mac.push_back(mac(*backends[i], backend_if[i]));
  }

  void start_server(int i) {
    servers[i] = backends[i]->spawn(std::string("exec ") + python + " " + dir_ + "/server.py b" + std::to_string(i + 1) +
                                    " " + std::to_string(http_port));
  }
  void stop_server(int i) {
    ::kill(-servers[i], SIGKILL);
    backends[i]->wait(servers[i], 2s);
    servers[i] = -1;
  }
  bool server_answers(int i) {
    return backends[i]->exec("curl -s --max-time 1 http://" + v4.backend(i) + "/").output == "b" + std::to_string(i + 1) + "\n";
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  Netns sw{"lb-sw"};
  Netns client{"lb-cl"};
  Netns box{"lb-box"};
  std::vector<std::unique_ptr<Netns>> backends;
  std::string client_if, box_if;
  std::vector<std::string> backend_if;
  std::string router_mac, box_mac, client_mac;
  std::vector<std::string> backend_mac;
  std::array<pid_t, backend_count> servers{};

 private:
  static std::string make_dir() {
    char templ[] = "/tmp/sluice-lb-e2e-XXXXXX";
    const char* made = mkdtemp(templ);
    return made ? made : "/tmp";
  }
  std::vector<Netns*> all_hosts() { return {&sw, &client, &box}; }
  void plug(Netns& host, const std::string& ifname, const std::string& switch_port) {
    must(run_command("ip link add " + ifname + " netns " + host.name() + " type veth peer name " + switch_port +
                     " netns " + sw.name()),
         "veth " + ifname);
    must(sw.exec("ip link set " + switch_port + " master br0 && ip link set " + switch_port + " up"), "switch port");
  }
  void address(Netns& host, const std::string& ifname, const std::string& a4, const std::string& a6) {
    must(host.exec("ip addr add " + a4 + "/24 dev " + ifname + " && ip -6 addr add " + a6 + "/64 dev " + ifname +
                   " && ip link set " + ifname + " up"),
         "addresses of " + ifname);
  }
  static std::string mac(Netns& ns, const std::string& ifname) {
    auto shown = ns.exec("cat /sys/class/net/" + ifname + "/address");
    return first_line(shown.output);
  }
  std::string dir_;
};

// What the client saw of `count` fresh connections to the VIP: the body
// (backend name) of each, or "failed <http code>".
std::vector<std::string> connect_many(Netns& client, const Family& f, int count) {
  // One curl, `count` transfers; "Connection: close" makes each a new TCP connection (new source port, new flow).
  const std::string cmd = "curl -s --max-time 5 -H 'Connection: close' --resolve vip:80:" + std::string(f.url_host) +
                          " -w '%{http_code}\\n' 'http://vip/id?[1-" + std::to_string(count) + "]'";
  auto ran = client.exec(cmd, curl_timeout);
  std::vector<std::string> results;
  std::istringstream in(ran.output);
  std::string body, code;
  // Each transfer prints "<body line>\n<code>\n"; a failed one prints only "000\n".
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].size() == 2 && lines[i][0] == 'b' && i + 1 < lines.size() && lines[i + 1] == "200") {
      results.push_back(lines[i]);
      ++i;
    } else {
      results.push_back("failed " + lines[i]);
    }
  }
  while (static_cast<int>(results.size()) < count) results.push_back("failed (no output)");
  return results;
}

std::map<std::string, int> tally(const std::vector<std::string>& results) {
  std::map<std::string, int> seen;
  for (const auto& r : results) ++seen[r];
  return seen;
}

// One keep-alive HTTP connection from the client namespace to the VIP.
class LongConnection {
 public:
  LongConnection(const Netns& client, const Family& f) {
    EnterNetns inside(client);
    sockaddr_storage to{};
    socklen_t len = 0;
    if (f.version == 4) {
      auto* a = reinterpret_cast<sockaddr_in*>(&to);
      a->sin_family = AF_INET;
      a->sin_port = htons(http_port);
      inet_pton(AF_INET, f.vip, &a->sin_addr);
      len = sizeof *a;
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&to);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(http_port);
      inet_pton(AF_INET6, f.vip, &a->sin6_addr);
      len = sizeof *a;
    }
    fd_ = socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval timeout{2, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&to), len) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  LongConnection(const LongConnection&) = delete;
  LongConnection& operator=(const LongConnection&) = delete;
  ~LongConnection() {
    if (fd_ >= 0) close(fd_);
  }

  // One request on the same connection: the backend's name, or why not.
  std::string request() {
    if (fd_ < 0) return "not connected";
    const std::string get = "GET /long HTTP/1.1\r\nHost: vip\r\n\r\n";
    if (send(fd_, get.data(), get.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(get.size())) return "send failed";
    std::string reply;
    std::array<char, 1024> buf{};
    constexpr int max_reads = 16;
    for (int i = 0; i < max_reads; ++i) {
      const ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
      if (n <= 0) return "connection lost after: " + reply;
      reply.append(buf.data(), n);
      const auto body = reply.find("\r\n\r\n");
      if (body != std::string::npos && reply.size() >= body + 4 + 3) return first_line(reply.substr(body + 4));
    }
    return "no complete reply: " + reply;
  }

 private:
  int fd_ = -1;
};

json::object object_result(ControlClient& control, const std::string& op, const json::object& args = {}) {
  auto value = control.result(op, args);
  return value.is_object() ? value.as_object() : json::object{};
}

// backend.list entries of one VIP, by backend name (b1..b4).
std::map<std::string, json::object> backends_of(ControlClient& control, const Family& f) {
  std::map<std::string, json::object> out;
  auto listed = object_result(control, "backend.list", {{"vip", f.vip_spec}});
  if (!listed.contains("backends")) return out;
  for (const auto& entry : listed.at("backends").as_array()) {
    const auto& b = entry.as_object();
    for (int i = 0; i < backend_count; ++i)
      if (b.at("address").as_string() == f.backend(i)) out["b" + std::to_string(i + 1)] = b;
  }
  return out;
}

std::uint64_t vip_packets(ControlClient& control, const Family& f) {
  auto listed = object_result(control, "vip.list");
  if (!listed.contains("vips")) return 0;
  for (const auto& entry : listed.at("vips").as_array())
    if (entry.as_object().at("vip").as_string() == f.vip_spec)
      return entry.as_object().at("packets").to_number<std::uint64_t>();
  return 0;
}

std::uint64_t decapsulated(const Netns& backend, const std::string& ifname, int version) {
  auto status = run_command("nsenter --net=/run/netns/" + backend.name() + " " + SLUICE_DECAP_PATH + " status " +
                            ifname + " --json");
  if (status.exit_code != 0) return 0;
  auto parsed = json::parse(status.output, {}, {}).as_object();
  const auto& counters = parsed.at("interfaces").as_array().at(0).as_object().at("counters").as_object();
  return counters.at(version == 4 ? "decap_4in4" : "decap_6in6").as_object().at("packets").to_number<std::uint64_t>();
}

// Tcp OutSegs of the namespace (/proc/net/snmp, read inside it): every TCP segment it sent.
std::uint64_t tcp_out_segments(const Netns& ns) {
  auto snmp = ns.exec("cat /proc/net/snmp");
  std::istringstream in(snmp.output);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Tcp: ", 0) != 0) continue;
    std::istringstream fields(line.substr(5));
    std::vector<std::string> row;
    for (std::string field; fields >> field;) row.push_back(field);
    if (names.empty()) {
      names = row;
      continue;
    }
    for (std::size_t i = 0; i < names.size() && i < row.size(); ++i)
      if (names[i] == "OutSegs") return std::stoull(row[i]);
  }
  return 0;
}

void configure(ControlClient& control, LbLab& lab) {
  object_result(control, "attach", {{"iface", lab.box_if}, {"mode", "skb"}});
  object_result(control, "lb.set", {{"encap_source_v4", v4.box}, {"encap_source_v6", v6.box},
                                    {"egress", "tx"}, {"next_hop_mac", lab.router_mac}});
  for (const Family* f : {&v4, &v6}) {
    object_result(control, "vip.add", {{"vip", f->vip_spec}, {"check", "http:80/health"},
                                       {"check_interval_ms", 300}, {"check_timeout_ms", 200},
                                       {"check_rise", 1}, {"check_fall", 2}});
    for (int i = 0; i < 3; ++i)
      object_result(control, "backend.add", {{"vip", f->vip_spec}, {"address", f->backend(i)}, {"weight", weights[i]}});
  }
}

std::string health_of(ControlClient& control, const Family& f, const std::string& name) {
  auto listed = backends_of(control, f);
  auto found = listed.find(name);
  if (found == listed.end() || !found->second.contains("health") || !found->second.at("health").is_string())
    return "(not listed)";
  return std::string(found->second.at("health").as_string());
}

bool all_up(ControlClient& control, const Family& f, const std::vector<std::string>& names) {
  for (const auto& name : names)
    if (health_of(control, f, name) != "up") return false;
  return true;
}

void expect_all_succeed(const std::vector<std::string>& results, const std::string& what) {
  int failed = 0;
  std::string first_failure;
  for (const auto& r : results)
    if (r.rfind("failed", 0) == 0 && failed++ == 0) first_failure = r;
  EXPECT_EQ(failed, 0) << what << ": " << failed << " of " << results.size() << " failed, first: " << first_failure;
}

TEST(LbE2eTest, RealConnectionsSpreadByWeightRepliesBypassTheBoxFlowsStayHealthChecksCut) {
  SLUICE_REQUIRE_NETNS();
  SLUICE_REQUIRE_BPFFS();
  const auto started = std::chrono::steady_clock::now();
  LbLab lab;
  lab.build();
  if (HasFatalFailure()) return;

  SluicedOptions options;
  options.netns = lab.box.name();
  SluicedProcess sluiced(options);
  ASSERT_EQ(sluiced.start(), "");
  ControlClient control(sluiced.socket_path());
  ASSERT_TRUE(control.connected()) << control.connect_error();
  configure(control, lab);
  ASSERT_FALSE(HasFailure()) << "configuring sluiced failed";
  for (const Family* f : {&v4, &v6})
    ASSERT_TRUE(eventually([&] { return all_up(control, *f, {"b1", "b2", "b3"}); }, health_wait))
        << "backends of " << f->vip_spec << " never all up";

  // ---- 300 connections per VIP: all succeed, shares follow the weights, replies bypass the box ----
  Capture at_client(lab.client, lab.client_if, lab.path("client.pcap"));
  Capture at_box(lab.box, lab.box_if, lab.path("box.pcap"));
  std::map<int, std::vector<std::string>> results;
  std::map<int, std::uint64_t> sent;  // TCP segments the client sent in that family's phase: all of them to the VIP
  for (const Family* f : {&v4, &v6}) {
    const std::uint64_t before = tcp_out_segments(lab.client);
    results[f->version] = connect_many(lab.client, *f, connections);
    std::this_thread::sleep_for(300ms);  // the last ACKs of the last connections
    sent[f->version] = tcp_out_segments(lab.client) - before;
  }
  at_client.stop();
  at_box.stop();
  for (const Family* f : {&v4, &v6}) {
    SCOPED_TRACE(f->vip_spec);
    const auto& got = results[f->version];
    ASSERT_EQ(got.size(), static_cast<std::size_t>(connections));
    expect_all_succeed(got, "first connections");
    const auto seen = tally(got);
    const double weight_sum = weights[0] + weights[1] + weights[2];
    for (int i = 0; i < 3; ++i) {
      const std::string name = "b" + std::to_string(i + 1);
      const double share = 100.0 * (seen.count(name) ? seen.at(name) : 0) / connections;
      const double expected = 100.0 * weights[i] / weight_sum;
      EXPECT_NEAR(share, expected, share_tolerance_points) << name << " weight " << weights[i];
    }
    EXPECT_EQ(seen.count("b4"), 0u) << "b4 is not in the pool yet";

    // Replies: from the VIP, to the client, sent by a backend's MAC; none by the box; none seen at the box.
    const auto replies = at_client.lines(std::string("src host ") + f->vip);
    EXPECT_GE(replies.size(), static_cast<std::size_t>(connections)) << "the client saw the replies";
    int from_box = 0, from_backends = 0;
    for (const auto& line : replies) {
      if (line.find(lab.box_mac + " >") != std::string::npos) ++from_box;
      for (int i = 0; i < 3; ++i)
        if (line.find(lab.backend_mac[i] + " >") != std::string::npos) ++from_backends;
    }
    EXPECT_EQ(from_box, 0) << "replies came through the box";
    EXPECT_EQ(from_backends, static_cast<int>(replies.size())) << "every reply came from a backend's MAC";
    EXPECT_EQ(at_box.lines(std::string("src host ") + f->vip).size(), 0u) << "a reply reached the box";
    // The box's VIP counter holds exactly the client's packets to the VIP (the
    // client's TCP segment count: a capture may lose frames on a loaded machine).
    const std::uint64_t boxed = vip_packets(control, *f);
    EXPECT_EQ(boxed, sent[f->version]) << "box VIP counter vs the client's segments to the VIP";
    // And every one of them was decapsulated by some backend's sluice-decap.
    std::uint64_t decap_total = 0;
    for (int i = 0; i < 3; ++i) decap_total += decapsulated(*lab.backends[i], lab.backend_if[i], f->version);
    EXPECT_EQ(decap_total, boxed) << "decapsulated on the backends vs encapsulated by the box";
  }

  // ---- a long-lived connection per VIP stays on its backend through changes ----
  std::map<int, std::unique_ptr<LongConnection>> long_conn;
  std::map<int, std::string> owner;
  for (const Family* f : {&v4, &v6}) {
    long_conn[f->version] = std::make_unique<LongConnection>(lab.client, *f);
    owner[f->version] = long_conn[f->version]->request();
    ASSERT_EQ(owner[f->version].size(), 2u) << f->vip_spec << " long connection: " << owner[f->version];
  }
  auto still_on_owner = [&](const std::string& after) {
    for (const Family* f : {&v4, &v6})
      EXPECT_EQ(long_conn[f->version]->request(), owner[f->version]) << f->vip_spec << " long connection after " << after;
  };

  // A fourth backend: new flows reach it, the long ones do not move.
  for (const Family* f : {&v4, &v6})
    object_result(control, "backend.add", {{"vip", f->vip_spec}, {"address", f->backend(3)}, {"weight", weights[3]}});
  for (const Family* f : {&v4, &v6})
    ASSERT_TRUE(eventually([&] { return all_up(control, *f, {"b4"}); }, health_wait)) << "b4 never up";
  still_on_owner("adding b4");
  for (const Family* f : {&v4, &v6}) {
    const auto got = connect_many(lab.client, *f, followup_connections);
    expect_all_succeed(got, std::string(f->vip_spec) + " after adding b4");
    EXPECT_GT(tally(got).count("b4"), 0u) << f->vip_spec << ": no new flow reached b4";
  }

  // Drain the long connections' own backends: no new flow goes there, the long ones stay.
  for (const Family* f : {&v4, &v6}) {
    const int index = owner[f->version][1] - '1';
    object_result(control, "backend.drain", {{"vip", f->vip_spec}, {"address", f->backend(index)}});
  }
  still_on_owner("draining its backend");
  for (const Family* f : {&v4, &v6}) {
    const auto got = connect_many(lab.client, *f, followup_connections);
    expect_all_succeed(got, std::string(f->vip_spec) + " after the drain");
    EXPECT_EQ(tally(got).count(owner[f->version]), 0u) << f->vip_spec << ": a new flow went to the drained backend";
  }

  // Restart sluiced: the program stays attached, the connection table stays, the flows stay.
  control.close();
  ASSERT_EQ(sluiced.stop(SIGTERM), 0) << sluiced.log();
  still_on_owner("sluiced stopped");
  ASSERT_EQ(sluiced.start(), "");
  ControlClient again(sluiced.socket_path());
  ASSERT_TRUE(again.connected()) << again.connect_error();
  still_on_owner("sluiced restarted");

  // ---- health checks: a backend whose server is stopped leaves, the next connections all succeed ----
  // The victim: an up backend that owns neither long connection (b1..b4 minus the drained ones).
  int victim = -1;
  for (int i = 0; i < backend_count && victim < 0; ++i) {
    const std::string name = "b" + std::to_string(i + 1);
    if (name != owner[4] && name != owner[6]) victim = i;
  }
  ASSERT_GE(victim, 0);
  const std::string victim_name = "b" + std::to_string(victim + 1);
  lab.stop_server(victim);
  for (const Family* f : {&v4, &v6})
    ASSERT_TRUE(eventually([&] { return health_of(again, *f, victim_name) == "down"; }, health_wait))
        << f->vip_spec << ": " << victim_name << " never marked down";
  for (const Family* f : {&v4, &v6}) {
    const auto got = connect_many(lab.client, *f, followup_connections);
    expect_all_succeed(got, std::string(f->vip_spec) + " after " + victim_name + " went down");
    EXPECT_EQ(tally(got).count(victim_name), 0u);
  }
  const auto took = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
  EXPECT_LT(took.count(), 60) << "the lab must stay well under a minute";
  std::fprintf(stderr, "lb e2e lab: %lld s\n", static_cast<long long>(took.count()));
}

}  // namespace
}  // namespace sluice::test
