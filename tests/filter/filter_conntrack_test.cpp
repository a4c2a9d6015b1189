// Conntrack under attack (BPF_PROG_TEST_RUN): state that a blind spoofer
// tries to forge. Each test performs the attack and asserts the outcome:
//  - a spoofed SYN then ACK (no SYN-ACK ever) stays unreplied, short timeout;
//  - a flood of unreplied entries cannot evict a replied flow;
//  - a blind RST/FIN out of window leaves state and timeout alone;
//  - invalid TCP flag sets are dropped with their own reason;
//  - ICMP echo admits only the reply of its identifier; ICMP errors are
//    admitted only when they quote a tracked flow (PMTU under default drop);
//  - the TC egress observer marks a flow replied when the reply leaves.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "filter_fixture.hpp"
// after the contract: the skeleton names its structs
#include "sluice.skel.h"

namespace sluice::test {
namespace {

using filter::Action;
using filter::FilterRule;

constexpr const char* kClient = "198.18.0.1";
constexpr const char* kServer = "198.18.1.1";
constexpr const char* kRouter = "198.18.2.1";
constexpr std::uint16_t kClientPort = 40000, kWeb = 80;
constexpr std::uint32_t kClientIsn = 1000, kServerIsn = 5000000;

Bytes tcp4(const char* src, const char* dst, std::uint16_t sport, std::uint16_t dport, std::uint8_t flags,
           std::uint32_t seq, std::uint32_t ack, Bytes payload = {}) {
  return ether().ipv4(src, dst).tcp(sport, dport, {.flags = flags, .seq = seq, .ack = ack}).payload(payload).build();
}
Bytes from_client(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, Bytes payload = {}) {
  return tcp4(kClient, kServer, kClientPort, kWeb, flags, seq, ack, std::move(payload));
}
Bytes from_server(std::uint8_t flags, std::uint32_t seq, std::uint32_t ack, Bytes payload = {}) {
  return tcp4(kServer, kClient, kWeb, kClientPort, flags, seq, ack, std::move(payload));
}

// Only SYNs (without ACK) to port 80 are pass-and-track; everything else is dropped.
filter::RuleSet track_web_syns() {
  filter::RuleSet set;
  FilterRule web;
  web.priority = 1;
  web.protocol = IPPROTO_TCP;
  web.dst_ports = filter::PortRange{kWeb, kWeb};
  web.tcp_flags = filter::TcpFlagMatch{TcpFlags::SYN | TcpFlags::ACK, TcpFlags::SYN};
  web.action = Action::PassTrack;
  set.rules = {web};
  set.default_policy = filter::DefaultPolicy::Drop;
  return set;
}

// Echo requests (v4 and v6) are pass-and-track; everything else is dropped.
filter::RuleSet track_pings() {
  filter::RuleSet set;
  FilterRule ping4, ping6;
  ping4.priority = 1;
  ping4.protocol = IPPROTO_ICMP;
  ping4.icmp_type = 8;
  ping4.action = Action::PassTrack;
  ping6.priority = 2;
  ping6.protocol = IPPROTO_ICMPV6;
  ping6.icmp_type = 128;
  ping6.action = Action::PassTrack;
  set.rules = {ping4, ping6};
  set.default_policy = filter::DefaultPolicy::Drop;
  return set;
}

class ConntrackAttack : public FilterTest {
 protected:
  // The client's flow to the web port, as the table reports it (either table).
  std::optional<filter::TrackedFlow> web_flow(std::uint16_t client_port = kClientPort) {
    auto flows = table_->tracked_flows();
    EXPECT_TRUE(flows) << flows.error().message;
    if (!flows) return std::nullopt;
    for (const auto& f : *flows)
      if (f.key.proto == IPPROTO_TCP && f.key.port_a == client_port && f.key.port_b == kWeb) return f;
    return std::nullopt;
  }
  // The whole handshake, every packet through XDP.
  void handshake() {
    ASSERT_EQ(send(from_client(TcpFlags::SYN, kClientIsn, 0)).verdict, XDP_PASS);
    ASSERT_EQ(send(from_server(TcpFlags::SYN | TcpFlags::ACK, kServerIsn, kClientIsn + 1)).verdict, XDP_PASS);
    ASSERT_EQ(send(from_client(TcpFlags::ACK, kClientIsn + 1, kServerIsn + 1)).verdict, XDP_PASS);
  }
  // Runs the frame through the TC egress observer; it never drops.
  void observe_egress(const Bytes& frame) {
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(),
                .data_size_in = static_cast<std::uint32_t>(frame.size()), .repeat = 1);
    const int err = bpf_prog_test_run_opts(plane_->egress_observer_prog_fd(), &opts);
    ASSERT_EQ(err, 0) << "BPF_PROG_TEST_RUN (tc): " << std::strerror(-err);
    EXPECT_EQ(static_cast<int>(opts.retval), TC_ACT_UNSPEC) << "the observer hands every packet on";
  }
  void short_syn_timeout() {
    auto settings = filter::default_settings();
    settings.ct_timeout_s[SLUICE_CT_TCP_SYN] = 1;
    ASSERT_TRUE(table_->set_settings(settings));
  }
};

// Attack 1: a spoofed SYN then a spoofed ACK, no SYN-ACK ever sent.
TEST_F(ConntrackAttack, SpoofedSynThenAckStaysUnrepliedAndExpiresOnTheShortTimeout) {
  ASSERT_NO_FATAL_FAILURE(short_syn_timeout());
  replace(track_web_syns());
  EXPECT_EQ(send(from_client(TcpFlags::SYN, kClientIsn, 0)).verdict, XDP_PASS);
  // The spoofer guesses an ACK (it never saw the server's ISN): it rides the unreplied entry...
  EXPECT_EQ(send(from_client(TcpFlags::ACK, kClientIsn + 1, 12345)).verdict, XDP_PASS);
  auto flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_SYN)) << "not established without a reply";
  EXPECT_EQ(flow->entry.replied, 0u);
  // ...and so does a reply-direction ACK that is not a SYN-ACK, or a SYN-ACK acking the wrong sequence: none is the reply.
  EXPECT_EQ(send(from_server(TcpFlags::ACK, 777, kClientIsn + 1)).verdict, XDP_DROP) << "not a SYN-ACK";
  EXPECT_EQ(send(from_server(TcpFlags::SYN | TcpFlags::ACK, 777, kClientIsn + 99)).verdict, XDP_DROP)
      << "a SYN-ACK that does not ack the SYN";
  flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_SYN));
  EXPECT_EQ(flow->entry.replied, 0u);
  // Idle past the SYN timeout (1 s): gone, and the next spoofed ACK meets the default drop.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  EXPECT_EQ(send(from_client(TcpFlags::ACK, kClientIsn + 1, 12345)).verdict, XDP_DROP);
  EXPECT_FALSE(web_flow()) << "the unreplied entry expired";
}

// The real handshake establishes, and only then: the SYN-ACK acking the SYN is the reply.
TEST_F(ConntrackAttack, TheSynAckAckingTheSynEstablishesAndMovesTheFlowToTheRepliedTable) {
  replace(track_web_syns());
  ASSERT_NO_FATAL_FAILURE(handshake());
  auto flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  EXPECT_EQ(flow->entry.replied, 1u);
  EXPECT_EQ(flow->entry.packets[SLUICE_CT_DIR_A_TO_B], 2u);
  EXPECT_EQ(flow->entry.packets[SLUICE_CT_DIR_B_TO_A], 1u);
  // In the replied table, not the unreplied one.
  const auto& maps = plane_->skeleton()->maps;
  sluice_ct_v4_key key{};
  ASSERT_EQ(inet_pton(AF_INET, kClient, &key.addr_a), 1);
  ASSERT_EQ(inet_pton(AF_INET, kServer, &key.addr_b), 1);
  key.port_a = kClientPort;
  key.port_b = kWeb;
  key.proto = IPPROTO_TCP;
  sluice_ct_entry entry{};
  EXPECT_EQ(bpf_map__lookup_elem(maps.filter_conntrack_v4, &key, sizeof key, &entry, sizeof entry, 0), 0);
  EXPECT_NE(bpf_map__lookup_elem(maps.filter_ct_unreplied_v4, &key, sizeof key, &entry, sizeof entry, 0), 0);
  EXPECT_EQ(send(from_server(TcpFlags::ACK, kServerIsn + 1, kClientIsn + 1, Bytes(10, 'x'))).verdict, XDP_PASS);
}

// Attack 1b: a spoofed SYN the real server answers. Its SYN-ACK goes to the
// spoofed source, the attacker never sees the server's ISN: a guessed ACK does
// not establish, so a SYN flood against a served port fills only the unreplied
// table (whose flood cannot evict replied flows: attack 2).
TEST_F(ConntrackAttack, TheServersSynAckToASpoofedSynDoesNotEstablish) {
  replace(track_web_syns());
  ASSERT_EQ(send(from_client(TcpFlags::SYN, kClientIsn, 0)).verdict, XDP_PASS);
  ASSERT_EQ(send(from_server(TcpFlags::SYN | TcpFlags::ACK, kServerIsn, kClientIsn + 1)).verdict, XDP_PASS)
      << "the SYN-ACK itself rides the entry";
  const auto& maps = plane_->skeleton()->maps;
  sluice_ct_v4_key key{};
  ASSERT_EQ(inet_pton(AF_INET, kClient, &key.addr_a), 1);
  ASSERT_EQ(inet_pton(AF_INET, kServer, &key.addr_b), 1);
  key.port_a = kClientPort;
  key.port_b = kWeb;
  key.proto = IPPROTO_TCP;
  auto in_table = [&](bpf_map* map) {
    sluice_ct_entry entry{};
    return bpf_map__lookup_elem(map, &key, sizeof key, &entry, sizeof entry, 0) == 0;
  };
  auto flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_SYN)) << "short timeout until the ACK";
  EXPECT_EQ(flow->entry.replied, 0u);
  EXPECT_TRUE(in_table(maps.filter_ct_unreplied_v4));
  EXPECT_FALSE(in_table(maps.filter_conntrack_v4));
  // Guessed ACKs: one short of and one past the server's ISN + 1.
  for (std::uint32_t guess : {kServerIsn, kServerIsn + 2, 12345u}) {
    send(from_client(TcpFlags::ACK, kClientIsn + 1, guess));
    flow = web_flow();
    ASSERT_TRUE(flow);
    EXPECT_EQ(flow->entry.replied, 0u) << "a guessed ACK " << guess << " established the flow";
    EXPECT_FALSE(in_table(maps.filter_conntrack_v4));
  }
  // The real client's ACK (it saw the SYN-ACK) does.
  EXPECT_EQ(send(from_client(TcpFlags::ACK, kClientIsn + 1, kServerIsn + 1)).verdict, XDP_PASS);
  flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.replied, 1u);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  EXPECT_TRUE(in_table(maps.filter_conntrack_v4));
}

// Attack 2: more spoofed openings than the unreplied table holds; the replied flow survives.
TEST_F(ConntrackAttack, AFloodOfUnrepliedEntriesDoesNotEvictARepliedFlow) {
  replace(track_web_syns());
  ASSERT_NO_FATAL_FAILURE(handshake());
  // Sources 198.19.x.y: SLUICE_FILTER_CT_UNREPLIED_ENTRIES + 1/8 distinct spoofed SYNs.
  const std::uint32_t flood = SLUICE_FILTER_CT_UNREPLIED_ENTRIES + SLUICE_FILTER_CT_UNREPLIED_ENTRIES / 8;
  Bytes syn = tcp4("198.19.0.0", kServer, 1024, kWeb, TcpFlags::SYN, 1, 0);
  constexpr std::size_t kSrcOffset = 14 + 12;  // Ethernet + IPv4 saddr
  constexpr std::size_t kIpCsumOffset = 14 + 10;
  const std::uint32_t base = ntohl(inet_addr("198.19.0.0"));
  std::uint32_t passed = 0;
  for (std::uint32_t i = 0; i < flood; ++i) {
    const std::uint32_t src = htonl(base + (i & 0xffff));
    const std::uint16_t sport = static_cast<std::uint16_t>(1024 + (i >> 16));
    std::memcpy(&syn[kSrcOffset], &src, sizeof src);
    syn[14 + 20] = static_cast<std::uint8_t>(sport >> 8);
    syn[14 + 21] = static_cast<std::uint8_t>(sport);
    syn[kIpCsumOffset] = syn[kIpCsumOffset + 1] = 0;  // checksums are not checked by the filter
    passed += send(syn).verdict == XDP_PASS;
    if (HasFailure()) return;
  }
  EXPECT_EQ(passed, flood);
  // The established flow is still there, still established, and its packets skip the rules.
  auto flow = web_flow();
  ASSERT_TRUE(flow) << "the replied flow was evicted by unreplied ones";
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  const auto by_ct = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK);
  EXPECT_EQ(send(from_server(TcpFlags::ACK, kServerIsn + 1, kClientIsn + 1)).verdict, XDP_PASS);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK), by_ct + 1);
}

// Attack 3: one blind RST (and FIN) with a sequence number outside the window.
TEST_F(ConntrackAttack, BlindRstOrFinOutOfWindowLeavesStateAndTimeout) {
  replace(track_web_syns());
  ASSERT_NO_FATAL_FAILURE(handshake());
  const std::uint32_t far = 1u << 30;  // nowhere near either side's window
  for (std::uint8_t flags : {std::uint8_t{TcpFlags::RST}, std::uint8_t(TcpFlags::RST | TcpFlags::ACK),
                             std::uint8_t(TcpFlags::FIN | TcpFlags::ACK)}) {
    SCOPED_TRACE(static_cast<int>(flags));
    send(from_client(flags, kClientIsn + 1 + far, kServerIsn + 1));
    send(from_server(flags, kServerIsn + 1 - far, kClientIsn + 1));
    auto flow = web_flow();
    ASSERT_TRUE(flow);
    EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED))
        << "an out-of-window RST/FIN must not move the flow to CLOSING (and its 10 s timeout)";
  }
  // Data moves the window on; a RST at the right place does close.
  EXPECT_EQ(send(from_client(TcpFlags::ACK, kClientIsn + 1, kServerIsn + 1, Bytes(100, 'a'))).verdict, XDP_PASS);
  EXPECT_EQ(send(from_client(TcpFlags::RST, kClientIsn + 1 + 100, 0)).verdict, XDP_PASS);
  auto flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_CLOSING)) << "an in-window RST closes";
}

// Window scaling negotiated in the handshake widens the window the tracker accepts.
TEST_F(ConntrackAttack, WindowScaleFromTheSynsWidensTheTrackedWindow) {
  replace(track_web_syns());
  const Bytes wscale7 = {1, 3, 3, 7};  // NOP, window scale 7
  ASSERT_EQ(send(ether().ipv4(kClient, kServer).tcp(kClientPort, kWeb, {.flags = TcpFlags::SYN, .seq = kClientIsn,
                                                                         .window = 65535, .options = wscale7}).build())
                .verdict,
            XDP_PASS);
  ASSERT_EQ(send(ether().ipv4(kServer, kClient).tcp(kWeb, kClientPort, {.flags = TcpFlags::SYN | TcpFlags::ACK,
                                                                         .seq = kServerIsn, .ack = kClientIsn + 1,
                                                                         .window = 65535, .options = wscale7}).build())
                .verdict,
            XDP_PASS);
  ASSERT_EQ(send(from_client(TcpFlags::ACK, kClientIsn + 1, kServerIsn + 1)).verdict, XDP_PASS);
  // The server advertises 4096 << 7 = 512 KiB.
  ASSERT_EQ(send(ether().ipv4(kServer, kClient).tcp(kWeb, kClientPort, {.flags = TcpFlags::ACK, .seq = kServerIsn + 1,
                                                                         .ack = kClientIsn + 1, .window = 4096}).build())
                .verdict,
            XDP_PASS);
  auto flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.wscale[SLUICE_CT_DIR_A_TO_B], 7u);
  EXPECT_EQ(flow->entry.wscale[SLUICE_CT_DIR_B_TO_A], 7u);
  EXPECT_EQ(flow->entry.window[SLUICE_CT_DIR_B_TO_A], 4096u << 7);
  // A client RST 300 KiB ahead (segments lost before the box) is within the server's window.
  EXPECT_EQ(send(from_client(TcpFlags::RST, kClientIsn + 1 + 300 * 1024, 0)).verdict, XDP_PASS);
  flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_CLOSING));
}

// Attack 4: flag sets no TCP stack sends, dropped with their own reason before conntrack and rules.
TEST_F(ConntrackAttack, InvalidTcpFlagSetsAreDroppedWithTheirReasonBeforeConntrackAndRules) {
  filter::RuleSet everything_tracked;  // a rule that would pass and track any TCP packet
  FilterRule track;
  track.priority = 1;
  track.protocol = IPPROTO_TCP;
  track.action = Action::PassTrack;
  everything_tracked.rules = {track};
  replace(everything_tracked);
  using F = TcpFlags;
  const std::uint8_t invalid[] = {
      0,                                  // NULL scan
      F::FIN,                             // FIN scan (FIN without ACK)
      F::SYN | F::FIN,                    // SYN+FIN
      F::SYN | F::RST,                    // SYN+RST
      F::FIN | F::RST,                    // FIN+RST
      F::SYN | F::ACK | F::RST,           // SYN+ACK+RST
      F::FIN | F::PSH | F::URG,           // XMAS
      F::FIN | F::SYN | F::RST | F::PSH | F::ACK | F::URG,  // everything
      F::PSH,                             // PSH alone
      F::URG,                             // URG alone
  };
  std::uint16_t port = 2000;
  for (std::uint8_t flags : invalid) {
    SCOPED_TRACE(static_cast<int>(flags));
    EXPECT_EQ(send(tcp4(kClient, kServer, port++, kWeb, flags, 1, 1)).verdict, XDP_DROP);
  }
  const std::uint64_t n = sizeof invalid;
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_TCP_INVALID_FLAGS), n);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_RULE_PASS), 0u) << "the rules never saw them";
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  EXPECT_TRUE(flows->empty()) << "no entry created";
  // Every valid set (with PSH/ECE/CWR on top) still reaches the rules.
  const std::uint8_t valid[] = {F::SYN,         F::SYN | F::ACK, F::ACK | F::PSH,         F::RST,
                                F::RST | F::ACK, F::FIN | F::ACK, F::SYN | F::ECE | F::CWR, F::ACK | F::URG};
  for (std::uint8_t flags : valid) {
    SCOPED_TRACE(static_cast<int>(flags));
    EXPECT_EQ(send(tcp4(kClient, kServer, port++, kWeb, flags, 1, 1)).verdict, XDP_PASS);
  }
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_TCP_INVALID_FLAGS), n);
  // The switch: off, they meet the rules like any packet (no entry advanced: they create their own).
  auto settings = filter::default_settings();
  settings.drop_invalid_tcp_flags = false;
  ASSERT_TRUE(table_->set_settings(settings));
  auto read_back = table_->settings();
  ASSERT_TRUE(read_back);
  EXPECT_FALSE(read_back->drop_invalid_tcp_flags);
  EXPECT_EQ(send(tcp4(kClient, kServer, port++, kWeb, F::SYN | F::FIN, 1, 1)).verdict, XDP_PASS);
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_TCP_INVALID_FLAGS), n);
}

// An invalid flag set cannot advance a live flow either.
TEST_F(ConntrackAttack, InvalidFlagsDoNotTouchALiveFlow) {
  replace(track_web_syns());
  ASSERT_NO_FATAL_FAILURE(handshake());
  EXPECT_EQ(send(from_client(TcpFlags::SYN | TcpFlags::RST, kClientIsn + 1, 0)).verdict, XDP_DROP);
  EXPECT_EQ(send(from_client(TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG, kClientIsn + 1, 0)).verdict, XDP_DROP);
  auto flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  EXPECT_EQ(packets(SLUICE_VERDICT_DROP, SLUICE_REASON_FILTER_TCP_INVALID_FLAGS), 2u);
}

// Attack 5: ICMP replies that do not match the echo request's identifier.
TEST_F(ConntrackAttack, EchoAdmitsOnlyTheReplyOfItsIdentifier) {
  replace(track_pings());
  const auto echo = [](const char* src, const char* dst, std::uint8_t type, std::uint16_t id) {
    return ether().ipv4(src, dst).icmp(type, 0, icmp_echo_rest(id, 1)).build();
  };
  EXPECT_EQ(send(echo(kClient, kServer, 0, 0x1234)).verdict, XDP_DROP) << "a reply before any request";
  EXPECT_EQ(send(echo(kClient, kServer, 8, 0x1234)).verdict, XDP_PASS);
  EXPECT_EQ(send(echo(kServer, kClient, 0, 0x9999)).verdict, XDP_DROP) << "another identifier";
  EXPECT_EQ(send(echo(kServer, kClient, 13, 0)).verdict, XDP_DROP) << "a timestamp request rides no echo entry";
  EXPECT_EQ(send(echo(kServer, kClient, 14, 0x1234)).verdict, XDP_DROP) << "a timestamp reply rides no echo entry";
  const auto by_ct = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK);
  EXPECT_EQ(send(echo(kServer, kClient, 0, 0x1234)).verdict, XDP_PASS) << "the matching reply";
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CONNTRACK), by_ct + 1);
  EXPECT_EQ(send(echo(kClient, kServer, 0, 0x1234)).verdict, XDP_DROP) << "a reply in the request's direction";
  EXPECT_EQ(send(echo(kServer, kClient, 0, 0x1235)).verdict, XDP_DROP) << "still: another identifier";

  // IPv6 the same way.
  const auto echo6 = [](const char* src, const char* dst, std::uint8_t type, std::uint16_t id) {
    return ether().ipv6(src, dst).icmpv6(type, 0, icmp_echo_rest(id, 1)).build();
  };
  EXPECT_EQ(send(echo6("2001:db8::1", "2001:db8::2", 128, 7)).verdict, XDP_PASS);
  EXPECT_EQ(send(echo6("2001:db8::2", "2001:db8::1", 129, 8)).verdict, XDP_DROP);
  EXPECT_EQ(send(echo6("2001:db8::2", "2001:db8::1", 129, 7)).verdict, XDP_PASS);
}

// ICMP errors quoting (inner IPv4 header + 8 bytes) a TCP packet the client sent.
Bytes frag_needed_v4(const char* router, const char* to, const char* inner_src, const char* inner_dst,
                     std::uint16_t inner_sport, std::uint16_t inner_dport) {
  const Bytes quoted = ether().ipv4(inner_src, inner_dst).tcp(inner_sport, inner_dport, {.flags = TcpFlags::ACK}).build();
  const Bytes quote(quoted.begin() + 14, quoted.begin() + 14 + 20 + 8);
  constexpr std::uint32_t mtu = 1400;
  return ether().ipv4(router, to).icmp(3, 4, mtu, {}).payload(quote).build();
}

// Attack 6 / PMTU: errors about a tracked flow pass under default drop, errors about nothing do not.
TEST_F(ConntrackAttack, FragNeededQuotingATrackedFlowIsAdmittedAndOneQuotingNothingIsDropped) {
  replace(track_web_syns());
  ASSERT_NO_FATAL_FAILURE(handshake());
  EXPECT_EQ(send(frag_needed_v4(kRouter, kClient, kClient, kServer, kClientPort, kWeb)).verdict, XDP_PASS)
      << "frag needed from a router on the path, about the tracked flow";
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CT_RELATED), 1u);
  EXPECT_EQ(send(frag_needed_v4(kRouter, kServer, kServer, kClient, kWeb, kClientPort)).verdict, XDP_PASS)
      << "and about the server's direction";
  EXPECT_EQ(send(frag_needed_v4(kRouter, kClient, kClient, kServer, kClientPort + 1, kWeb)).verdict, XDP_DROP)
      << "quoting an untracked flow";
  EXPECT_EQ(send(frag_needed_v4(kRouter, kServer, kClient, kServer, kClientPort, kWeb)).verdict, XDP_DROP)
      << "quoting the flow but sent to the wrong end (not the quoted packet's sender)";
  const Bytes cut = ether().ipv4(kRouter, kClient).icmp(3, 4, 1400, {}).payload(Bytes(12, 0)).build();
  EXPECT_EQ(send(cut).verdict, XDP_DROP) << "a quote too short to hold a header";
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_CT_RELATED), 2u);
  // Time exceeded (a traceroute answer) about the flow is related too.
  Bytes ttl = frag_needed_v4(kRouter, kClient, kClient, kServer, kClientPort, kWeb);
  ttl[14 + 20] = 11;  // ICMP type: time exceeded (code 4 is no matter to the filter)
  EXPECT_EQ(send(ttl).verdict, XDP_PASS);

  // IPv6 packet too big, quoting a tracked IPv6 flow.
  const Bytes syn6 = ether().ipv6("2001:db8::1", "2001:db8::2").tcp(kClientPort, kWeb, {.flags = TcpFlags::SYN, .seq = 9}).build();
  ASSERT_EQ(send(syn6).verdict, XDP_PASS);
  const auto too_big = [](std::uint16_t sport) {
    const Bytes quoted = ether().ipv6("2001:db8::1", "2001:db8::2").tcp(sport, kWeb, {.flags = TcpFlags::SYN}).build();
    const Bytes quote(quoted.begin() + 14, quoted.begin() + 14 + 40 + 8);
    return ether().ipv6("2001:db8::99", "2001:db8::1").icmpv6(2, 0, 1280, {}).payload(quote).build();
  };
  EXPECT_EQ(send(too_big(kClientPort)).verdict, XDP_PASS) << "packet too big about the (unreplied) flow";
  EXPECT_EQ(send(too_big(kClientPort + 1)).verdict, XDP_DROP) << "about nothing tracked";
}

// The egress observer (TC): the reply leaves through an attached interface without
// ever crossing XDP; the observer marks the entry replied.
TEST_F(ConntrackAttack, EgressObserverMarksTheFlowRepliedWhenTheSynAckLeaves) {
  replace(track_web_syns());
  ASSERT_GE(plane_->egress_observer_prog_fd(), 0);
  ASSERT_EQ(send(from_client(TcpFlags::SYN, kClientIsn, 0)).verdict, XDP_PASS);
  // A forged SYN-ACK (wrong ack) leaving changes nothing...
  ASSERT_NO_FATAL_FAILURE(observe_egress(from_server(TcpFlags::SYN | TcpFlags::ACK, kServerIsn, kClientIsn + 7)));
  auto flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.replied, 0u);
  // ...the server's SYN-ACK leaving is recorded (the server answers spoofed SYNs too: not yet replied)...
  ASSERT_NO_FATAL_FAILURE(observe_egress(from_server(TcpFlags::SYN | TcpFlags::ACK, kServerIsn, kClientIsn + 1)));
  flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.replied, 0u);
  EXPECT_EQ(flow->entry.packets[SLUICE_CT_DIR_B_TO_A], 0u) << "the observer does not count (XDP does)";
  EXPECT_EQ(flow->entry.dirs_seen, (1u << SLUICE_CT_DIR_A_TO_B) | (1u << SLUICE_CT_DIR_B_TO_A));
  // ...and the client's ACK of it, crossing XDP, establishes the flow; the server's data leaving moves its window.
  EXPECT_EQ(send(from_client(TcpFlags::ACK, kClientIsn + 1, kServerIsn + 1)).verdict, XDP_PASS);
  flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.replied, 1u);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
  ASSERT_NO_FATAL_FAILURE(observe_egress(from_server(TcpFlags::ACK, kServerIsn + 1, kClientIsn + 1, Bytes(200, 'd'))));
  flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.seq_end[SLUICE_CT_DIR_B_TO_A], kServerIsn + 1 + 200);
  // An echo reply leaving marks the echo entry replied the same way.
  replace(track_pings());
  ASSERT_EQ(send(ether().ipv4(kClient, kServer).icmp(8, 0, icmp_echo_rest(5, 1)).build()).verdict, XDP_PASS);
  ASSERT_NO_FATAL_FAILURE(observe_egress(ether().ipv4(kServer, kClient).icmp(0, 0, icmp_echo_rest(5, 1)).build()));
  auto flows = table_->tracked_flows();
  ASSERT_TRUE(flows);
  const auto echo = std::find_if(flows->begin(), flows->end(), [](const auto& f) { return f.key.proto == IPPROTO_ICMP; });
  ASSERT_NE(echo, flows->end());
  EXPECT_EQ(echo->entry.replied, 1u);
  EXPECT_EQ(echo->key.port_a, 5u) << "keyed by the echo identifier";
}

// A client reusing its ports after a close opens a new flow: the closing entry does not swallow the SYN.
TEST_F(ConntrackAttack, ASynOnAClosingFlowStartsAFreshEntry) {
  replace(track_web_syns());
  ASSERT_NO_FATAL_FAILURE(handshake());
  ASSERT_EQ(send(from_client(TcpFlags::FIN | TcpFlags::ACK, kClientIsn + 1, kServerIsn + 1)).verdict, XDP_PASS);
  auto flow = web_flow();
  ASSERT_TRUE(flow);
  ASSERT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_CLOSING));
  const auto by_rule = packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_RULE_PASS);
  EXPECT_EQ(send(from_client(TcpFlags::SYN, 77777, 0)).verdict, XDP_PASS);
  EXPECT_EQ(packets(SLUICE_VERDICT_PASS, SLUICE_REASON_FILTER_RULE_PASS), by_rule + 1) << "the rules judged the new SYN";
  EXPECT_EQ(send(from_server(TcpFlags::SYN | TcpFlags::ACK, 99, 77778)).verdict, XDP_PASS);
  EXPECT_EQ(send(from_client(TcpFlags::ACK, 77778, 100)).verdict, XDP_PASS);
  flow = web_flow();
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->entry.state, static_cast<std::uint32_t>(SLUICE_CT_TCP_ESTABLISHED));
}

}  // namespace
}  // namespace sluice::test
