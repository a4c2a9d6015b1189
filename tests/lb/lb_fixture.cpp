#include "lb_fixture.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>

#include "sluice.skel.h"

namespace sluice::test {

std::unique_ptr<dataplane::Dataplane> LbStageTest::plane_;
std::unique_ptr<LbMaps> LbStageTest::maps_;

void LbStageTest::SetUpTestSuite() {
  if (!missing_bpf_privileges().empty()) return;  // SetUp skips (or fails under CI) with the reason
  auto loaded = dataplane::Dataplane::load({});
  if (!loaded) {
    ADD_FAILURE() << loaded.error().message;
    return;
  }
  plane_ = std::make_unique<dataplane::Dataplane>(std::move(*loaded));
  if (auto installed = plane_->install_stages(); !installed) ADD_FAILURE() << installed.error().message;
  maps_ = std::make_unique<LbMaps>(*plane_);
}

void LbStageTest::TearDownTestSuite() {
  maps_.reset();
  plane_.reset();
}

void LbStageTest::SetUp() {
  SLUICE_REQUIRE_PRIVILEGES();
  ASSERT_TRUE(plane_) << "the data plane did not load";
  maps_->clear();
  set_config(dataplane::default_config());
  // verdict counters start from zero in every test
  const int fd = bpf_map__fd(plane_->skeleton()->maps.verdict_counters);
  std::vector<sluice_counter> zero(libbpf_num_possible_cpus());
  for (std::uint32_t i = 0; i < SLUICE_COUNTER_SLOTS; ++i)
    ASSERT_EQ(bpf_map_update_elem(fd, &i, zero.data(), BPF_ANY), 0);
}

std::uint64_t LbStageTest::packets(sluice_verdict verdict, std::uint32_t reason) const {
  auto counted = plane_->verdict_count(verdict, static_cast<sluice_reason>(reason));
  EXPECT_TRUE(counted) << counted.error().message;
  return counted ? counted->packets : 0;
}

void LbStageTest::set_config(const sluice_config& config) {
  auto written = plane_->set_config(config);
  ASSERT_TRUE(written) << written.error().message;
}

void put_addr(std::uint32_t (&words)[4], std::string_view text) {
  std::memset(words, 0, sizeof words);
  if (text.find(':') != std::string_view::npos) {
    const auto a = parse_ipv6(text);
    std::memcpy(words, a.data(), 16);
  } else {
    const auto a = parse_ipv4(text);
    std::memcpy(words, a.data(), 4);
  }
}

sluice_lb_vip_key vip_key(std::string_view addr, std::uint16_t port, std::uint8_t proto) {
  sluice_lb_vip_key key{};
  put_addr(key.addr, addr);
  key.port = port;
  key.proto = proto;
  key.ip_version = addr.find(':') != std::string_view::npos ? 6 : 4;
  return key;
}

sluice_lb_backend backend(std::string_view addr, std::uint32_t vip_id, std::uint32_t epoch,
                          sluice_lb_backend_state state, std::string_view mac) {
  sluice_lb_backend be{};
  put_addr(be.addr, addr);
  be.ip_version = addr.find(':') != std::string_view::npos ? 6 : 4;
  be.state = static_cast<std::uint8_t>(state);
  const auto m = parse_mac(mac);
  std::memcpy(be.mac, m.data(), 6);
  be.epoch = epoch;
  be.vip_id = vip_id;
  return be;
}

sluice_lb_settings lb_settings(std::string_view src_v4, std::string_view src_v6) {
  sluice_lb_settings s{};
  s.version = SLUICE_LB_SETTINGS_VERSION;
  std::uint32_t v4[4];
  if (!src_v4.empty()) {
    put_addr(v4, src_v4);
    s.encap_src_v4 = v4[0];
  }
  if (!src_v6.empty()) put_addr(s.encap_src_v6, src_v6);
  s.egress = SLUICE_LB_EGRESS_TX;
  s.conn_timeout_s = 300;
  s.icmp_rate = SLUICE_FWD_ICMP_RATE_DEFAULT;
  s.icmp_burst = SLUICE_FWD_ICMP_BURST_DEFAULT;
  const auto hop = parse_mac("02:00:00:00:00:fe");
  std::memcpy(s.next_hop_mac, hop.data(), 6);
  return s;
}

}  // namespace sluice::test
