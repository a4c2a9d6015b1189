// sluice-trafficgen. The frame: valid checksums (IPv4 header, UDP/TCP with
// the pseudo header, both families), padded to --size, and every bad option
// refused naming it. The program: in a lab, its frames cross a veth into a
// real sluiced, every flow it claims shows up in conntrack, and what it
// says it sent is what the box counted.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "daemon_test_support.hpp"
#include "netns_lab.hpp"
#include "privileges.hpp"
#include "traffic_frame.hpp"

namespace sluice::trafficgen {
namespace {

namespace json = boost::json;

std::uint32_t sum16(const std::uint8_t* data, std::size_t len, std::uint32_t sum = 0) {
  for (std::size_t i = 0; i + 1 < len; i += 2) sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
  if (len % 2) sum += static_cast<std::uint32_t>(data[len - 1] << 8);
  return sum;
}
std::uint16_t folded(std::uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

FrameSpec spec_v4() {
  FrameSpec spec;
  spec.src_mac = {2, 0, 0, 0, 0, 1};
  spec.dst_mac = {2, 0, 0, 0, 0, 2};
  spec.src = "198.18.0.1";
  spec.dst = "198.18.0.2";
  return spec;
}

// The L4 checksum over the pseudo header verifies (sums to 0xffff).
bool l4_checksum_holds(const Frame& frame, bool v6) {
  const auto& b = frame.bytes;
  const std::size_t l4 = frame.config.l4_offset, len = b.size() - l4;
  const std::uint8_t proto = b[v6 ? 14 + 6 : 14 + 9];
  std::uint32_t pseudo = v6 ? sum16(&b[14 + 8], 32) : sum16(&b[14 + 12], 8);
  pseudo += proto + static_cast<std::uint32_t>(len);
  return folded(sum16(&b[l4], len, pseudo)) == 0xffff;
}

TEST(TrafficFrame, ChecksumsHoldInBothFamiliesAndBothProtocols) {
  FrameSpec spec = spec_v4();
  spec.frame_bytes = 128;
  auto v4 = std::get<Frame>(build_frame(spec));
  ASSERT_EQ(v4.bytes.size(), 128u);
  EXPECT_EQ(folded(sum16(&v4.bytes[14], 20)), 0xffff) << "IPv4 header checksum";
  EXPECT_EQ(v4.config.csum, TRAFFICGEN_CSUM_NONE) << "UDP over IPv4 goes with checksum 0";
  EXPECT_EQ(v4.config.l4_offset, 34u);
  spec.protocol = Protocol::tcp;
  auto tcp4 = std::get<Frame>(build_frame(spec));
  EXPECT_TRUE(l4_checksum_holds(tcp4, false));
  EXPECT_EQ(tcp4.bytes[34 + 13], 0x02) << "a SYN";
  spec.src = "2001:db8::1";
  spec.dst = "2001:db8::2";
  auto tcp6 = std::get<Frame>(build_frame(spec));
  EXPECT_TRUE(l4_checksum_holds(tcp6, true));
  spec.protocol = Protocol::udp;
  auto udp6 = std::get<Frame>(build_frame(spec));
  EXPECT_TRUE(l4_checksum_holds(udp6, true));
  EXPECT_EQ(udp6.config.csum, TRAFFICGEN_CSUM_UDP);
  EXPECT_EQ(udp6.config.l4_offset, 54u);
}

TEST(TrafficFrame, BadOptionsAreRefusedNamingThem) {
  auto error_of = [](FrameSpec spec) {
    auto built = build_frame(spec);
    return std::holds_alternative<std::string>(built) ? std::get<std::string>(built) : std::string("(built)");
  };
  FrameSpec s = spec_v4();
  s.src = "198.18.0.300";
  EXPECT_NE(error_of(s).find("--src: '198.18.0.300'"), std::string::npos);
  s = spec_v4();
  s.dst = "2001:db8::2";
  EXPECT_NE(error_of(s).find("--dst: '2001:db8::2' is not an IPv4"), std::string::npos) << "mixed families";
  s = spec_v4();
  s.sport = 65000;
  s.flows = 1000;
  EXPECT_NE(error_of(s).find("--sport 65000 with --flows 1000"), std::string::npos);
  s = spec_v4();
  s.frame_bytes = 59;
  EXPECT_NE(error_of(s).find("--size: 59"), std::string::npos);
  s = spec_v4();
  s.src = "2001:db8::1";
  s.dst = "2001:db8::2";
  s.frame_bytes = 62;  // IPv6 + UDP fits, but the generator touches 18 bytes of L4
  EXPECT_NE(error_of(s).find("--size: 62 is not 72..1514"), std::string::npos) << error_of(s);
  EXPECT_NE(std::get<std::string>(parse_mac("02:00:00:00:00")).find("not a MAC"), std::string::npos);
  EXPECT_NE(std::get<std::string>(parse_mac("02:00:00:00:00:01x")).find("not a MAC"), std::string::npos);
}

std::uint64_t all_packets(const json::value& stats) {
  std::uint64_t sum = 0;
  for (const auto& c : stats.at("counters").as_array()) sum += c.at("packets").to_number<std::uint64_t>();
  return sum;
}

TEST(Trafficgen, ItsFramesAndFlowsReachARealSluicedAsItSays) {
  SLUICE_REQUIRE_NETNS();
  test::TwoHostLab lab;
  test::SluicedOptions options;
  options.netns = lab.box.name();
  test::SluicedProcess daemon(options);
  ASSERT_EQ(daemon.start(), "");
  test::ControlClient client(daemon.socket_path());
  client.result("attach", {{"iface", lab.box_if}});
  client.result("rule.add", {{"proto", "udp"}, {"dport", 9}, {"action", "pass-track"}});
  const std::string box_mac = test::run_command("ip -n " + lab.box.name() + " -br link show " + lab.box_if +
                                                " | awk '{print $3}'").output;
  const auto before = all_packets(client.result("stats"));
  constexpr std::uint64_t frames = 300'000;
  constexpr int flows = 16;
  const auto ran = test::run_command("nsenter --net=/run/netns/" + lab.client.name() + " " + SLUICE_TRAFFICGEN_PATH +
                                     " --dev " + lab.client_if + " --dst-mac " + box_mac.substr(0, 17) + " --src " +
                                     test::TwoHostLab::client_v4 + " --dst " + test::TwoHostLab::box_v4 +
                                     " --dport 9 --flows " + std::to_string(flows) + " --count " +
                                     std::to_string(frames) + " --json");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  const json::value summary = json::parse(ran.output);
  EXPECT_EQ(summary.at("sent").to_number<std::uint64_t>(), frames);
  EXPECT_GT(summary.at("pps").to_number<double>(), 0);
  const auto seen = all_packets(client.result("stats")) - before;
  EXPECT_GE(seen, frames * 95 / 100) << "the box counted " << seen << " of " << frames;
  EXPECT_LE(seen, frames + 100) << "more than it sent (and a little neighbour traffic)";
  // Every flow the generator claims is one conntrack entry: 16 source ports, nothing else.
  const json::value listed = client.result("conn.list", {{"limit", 100}});
  EXPECT_EQ(listed.at("flows").as_array().size(), static_cast<std::size_t>(flows)) << json::serialize(listed);

  // Bounded: without --count or --duration it refuses to start.
  const auto unbounded = test::run_command("nsenter --net=/run/netns/" + lab.client.name() + " " +
                                           SLUICE_TRAFFICGEN_PATH + " --dev " + lab.client_if +
                                           " --dst-mac 02:00:00:00:00:02 --src 198.18.0.1 --dst 198.18.0.2");
  EXPECT_EQ(unbounded.exit_code, 2) << unbounded.output;
  EXPECT_NE(unbounded.output.find("--count or --duration"), std::string::npos);
}

}  // namespace
}  // namespace sluice::trafficgen
