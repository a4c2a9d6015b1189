// The lb model: parsing of addresses, VIP keys, health checks and MACs, and
// validation whose every error names the field and the value.
#include <gtest/gtest.h>

#include "lb_model.hpp"

namespace sluice::lb {
namespace {

Address addr(const char* text) { return parse_address(text).value(); }

// The error of `result`, which must have failed; empty (and a test failure) if it did not.
template <class R>
std::string error_of(const R& result) {
  EXPECT_FALSE(result) << "accepted";
  return result ? std::string() : result.error().message;
}

#define EXPECT_MENTIONS(message, needle) \
  EXPECT_NE((message).find(needle), std::string::npos) << "'" << (message) << "' does not mention '" << (needle) << "'"

TEST(LbModel, ParsesAddresses) {
  auto v4 = parse_address("198.18.0.1");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->family, 4);
  EXPECT_EQ(v4->bytes[0], 198);
  EXPECT_EQ(v4->bytes[3], 1);
  EXPECT_EQ(to_string(*v4), "198.18.0.1");
  auto v6 = parse_address("2001:db8::1");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->family, 6);
  EXPECT_EQ(to_string(*v6), "2001:db8::1");
  for (const char* bad : {"", "198.18.0", "198.18.0.256", "198.018.0.1", " 198.18.0.1", "198.18.0.1 ", "fe80::1%eth0",
                          "2001:db8:::1", "example.com", "0x7f.0.0.1"}) {
    EXPECT_MENTIONS(error_of(parse_address(bad)), std::string("'") + bad + "'");
  }
  // A hostile megabyte is not quoted back whole.
  EXPECT_LT(error_of(parse_address(std::string(1 << 20, '1'))).size(), 200u);
}

TEST(LbModel, ParsesVipKeys) {
  struct Case {
    const char* text;
    int family;
    std::uint16_t port;
    Protocol protocol;
    const char* canonical;
  };
  for (const Case& c : {Case{"198.18.0.10:80/tcp", 4, 80, Protocol::Tcp, "198.18.0.10:80/tcp"},
                        Case{"198.18.0.10/udp", 4, 0, Protocol::Udp, "198.18.0.10/udp"},
                        Case{"[2001:db8::10]:443/tcp", 6, 443, Protocol::Tcp, "[2001:db8::10]:443/tcp"},
                        Case{"[2001:db8::10]/udp", 6, 0, Protocol::Udp, "[2001:db8::10]/udp"}}) {
    SCOPED_TRACE(c.text);
    auto key = parse_vip_key(c.text);
    ASSERT_TRUE(key) << key.error().message;
    EXPECT_EQ(key->address.family, c.family);
    EXPECT_EQ(key->port, c.port);
    EXPECT_EQ(key->protocol, c.protocol);
    EXPECT_EQ(to_string(*key), c.canonical);
    auto again = parse_vip_key(to_string(*key));
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, *key) << "round trip";
  }
  EXPECT_MENTIONS(error_of(parse_vip_key("198.18.0.10:80/sctp")), "protocol 'sctp'");
  EXPECT_MENTIONS(error_of(parse_vip_key("198.18.0.10:80")), "'198.18.0.10:80'");
  EXPECT_MENTIONS(error_of(parse_vip_key("198.18.0.10:0/tcp")), "port '0'");
  EXPECT_MENTIONS(error_of(parse_vip_key("198.18.0.10:65536/tcp")), "port '65536'");
  EXPECT_MENTIONS(error_of(parse_vip_key("198.18.0.10:080/tcp")), "port '080'");
  EXPECT_MENTIONS(error_of(parse_vip_key("198.18.0.10:/tcp")), "port ''");
  EXPECT_MENTIONS(error_of(parse_vip_key("[2001:db8::10:443/tcp")), "'[' without ']'");
  EXPECT_MENTIONS(error_of(parse_vip_key("[198.18.0.10]:80/tcp")), "brackets");
  EXPECT_MENTIONS(error_of(parse_vip_key("[2001:db8::10]443/tcp")), "':PORT'");
  EXPECT_MENTIONS(error_of(parse_vip_key("/tcp")), "address ''");
  // Port or last group? Refused rather than guessed.
  EXPECT_MENTIONS(error_of(parse_vip_key("2001:db8::10:443/tcp")), "'2001:db8::10:443/tcp': an IPv6 address goes in brackets");
}

TEST(LbModel, ParsesHealthChecks) {
  auto tcp = parse_health_check("tcp:8080");
  ASSERT_TRUE(tcp);
  EXPECT_EQ(tcp->kind, HealthCheck::Kind::Tcp);
  EXPECT_EQ(tcp->port, 8080);
  EXPECT_EQ(to_string(*tcp), "tcp:8080");
  auto http = parse_health_check("http:80/healthz?full=1");
  ASSERT_TRUE(http);
  EXPECT_EQ(http->kind, HealthCheck::Kind::Http);
  EXPECT_EQ(http->port, 80);
  EXPECT_EQ(http->http_path, "/healthz?full=1");
  EXPECT_EQ(to_string(*http), "http:80/healthz?full=1");
  for (const char* text : {"tcp", "http", "http:80", "http:/ready"}) {
    auto check = parse_health_check(text);
    ASSERT_TRUE(check) << text << ": " << check.error().message;
    EXPECT_EQ(to_string(*check), text) << "canonical form round-trips";
  }
  EXPECT_EQ(parse_health_check("http:/ready")->port, 0) << "the VIP's port";
  EXPECT_MENTIONS(error_of(parse_health_check("icmp:1")), "kind 'icmp'");
  EXPECT_MENTIONS(error_of(parse_health_check("tcp:0")), "port '0'");
  EXPECT_MENTIONS(error_of(parse_health_check("tcp:99999")), "port '99999'");
  EXPECT_MENTIONS(error_of(parse_health_check("tcp:80/x")), "port '80/x'");
  EXPECT_MENTIONS(error_of(parse_health_check("http:80/a b")), "path '/a b'");
  EXPECT_MENTIONS(error_of(parse_health_check("http:80/a\r\nHost: evil")), "path");
}

TEST(LbModel, ParsesMacs) {
  auto mac = parse_mac("02:00:00:aB:cd:EF");
  ASSERT_TRUE(mac);
  EXPECT_EQ(mac_to_string(*mac), "02:00:00:ab:cd:ef");
  for (const char* bad : {"", "02:00:00:ab:cd", "02:00:00:ab:cd:ef:01", "02-00-00-ab-cd-ef", "0g:00:00:ab:cd:ef"})
    EXPECT_MENTIONS(error_of(parse_mac(bad)), std::string("mac '") + bad + "'");
}

TEST(LbModel, PrimesAreRecognised) {
  EXPECT_FALSE(is_prime(0));
  EXPECT_FALSE(is_prime(1));
  EXPECT_TRUE(is_prime(2));
  EXPECT_TRUE(is_prime(SLUICE_LB_MAGLEV_SIZE_DEFAULT));
  EXPECT_TRUE(is_prime(SLUICE_LB_MAGLEV_SIZE_MAX));
  EXPECT_FALSE(is_prime(65536));
  EXPECT_FALSE(is_prime(65535));
  EXPECT_FALSE(is_prime(4294967295u));
}

Backend backend_at(const Address& address) {
  Backend backend;
  backend.address = address;
  return backend;
}

Vip vip_with(std::initializer_list<const char*> backends, const char* key = "198.18.0.10:80/tcp") {
  Vip vip;
  vip.key = parse_vip_key(key).value();
  for (const char* b : backends) vip.backends.push_back(backend_at(addr(b)));
  return vip;
}

TEST(LbModel, ValidVipsPass) {
  EXPECT_TRUE(validate(vip_with({"198.18.1.1", "198.18.1.2"})));
  // IPv4 VIP, IPv6 backend: IPv4-in-IPv6.
  EXPECT_TRUE(validate(vip_with({"198.18.1.1", "2001:db8::1"})));
  EXPECT_TRUE(validate(vip_with({"2001:db8::1"}, "[2001:db8::10]:443/tcp")));
  EXPECT_TRUE(validate(vip_with({})));
}

TEST(LbModel, VipErrorsNameFieldAndValue) {
  Vip vip = vip_with({"198.18.1.1"});
  vip.table_size = 65536;
  auto message = error_of(validate(vip));
  EXPECT_MENTIONS(message, "198.18.0.10:80/tcp");
  EXPECT_MENTIONS(message, "table_size 65536: not prime");
  vip.table_size = 1000033;  // prime, over the maximum
  EXPECT_MENTIONS(error_of(validate(vip)), "table_size 1000033");

  vip = vip_with({"198.18.1.1", "198.18.1.2", "198.18.1.1"});
  message = error_of(validate(vip));
  EXPECT_MENTIONS(message, "backend 198.18.1.1");
  EXPECT_MENTIONS(message, "duplicate");

  vip = vip_with({"198.18.1.1"});
  vip.backends[0].weight = 0;
  EXPECT_MENTIONS(error_of(validate(vip)), "weight 0");
  vip.backends[0].weight = SLUICE_LB_WEIGHT_MAX + 1;
  EXPECT_MENTIONS(error_of(validate(vip)), "weight 1001: must be 1..1000");
  vip.backends[0].weight = SLUICE_LB_WEIGHT_MAX;
  EXPECT_TRUE(validate(vip));

  vip = vip_with({"198.18.1.1"});
  vip.l2_dsr = true;
  message = error_of(validate(vip));
  EXPECT_MENTIONS(message, "backend 198.18.1.1");
  EXPECT_MENTIONS(message, "mac missing");
  vip.backends[0].mac = parse_mac("02:00:00:00:00:01").value();
  EXPECT_TRUE(validate(vip));

  message = error_of(validate(vip_with({"198.18.1.1"}, "[2001:db8::10]:443/tcp")));
  EXPECT_MENTIONS(message, "backend 198.18.1.1");
  EXPECT_MENTIONS(message, "IPv4 backend cannot serve an IPv6 VIP");

  vip = vip_with({"198.18.1.1", "198.18.1.2", "198.18.1.3"});
  vip.table_size = 2;
  EXPECT_MENTIONS(error_of(validate(vip)), "3 backends, more than table_size 2");

  EXPECT_MENTIONS(error_of(validate(vip_with({"0.0.0.0"}))), "backend 0.0.0.0");
  EXPECT_MENTIONS(error_of(validate(vip_with({"224.0.0.1"}))), "not a unicast address");
  EXPECT_MENTIONS(error_of(validate(vip_with({}, "0.0.0.0:80/tcp"))), "address 0.0.0.0");
  vip = vip_with({});
  vip.key.protocol = static_cast<Protocol>(1);
  EXPECT_MENTIONS(error_of(validate(vip)), "protocol 1");
}

TEST(LbModel, CheckErrorsNameFieldAndValue) {
  Vip vip = vip_with({"198.18.1.1"});
  vip.check = HealthCheck{};
  EXPECT_TRUE(validate(vip));
  auto bad = [&](auto mutate, const char* needle) {
    Vip copy = vip;
    mutate(*copy.check);
    EXPECT_MENTIONS(error_of(validate(copy)), needle);
  };
  bad([](HealthCheck& c) { c.interval_ms = 99; }, "check.interval_ms 99");
  bad([](HealthCheck& c) { c.interval_ms = 3'600'001; }, "check.interval_ms 3600001");
  bad([](HealthCheck& c) { c.timeout_ms = 5; }, "check.timeout_ms 5");
  bad([](HealthCheck& c) { c.timeout_ms = 3000; }, "check.timeout_ms 3000: must be 10..2000 (at most interval_ms)");
  bad([](HealthCheck& c) { c.rise = 0; }, "check.rise 0");
  bad([](HealthCheck& c) { c.fall = 101; }, "check.fall 101");
  bad(
      [](HealthCheck& c) {
        c.kind = HealthCheck::Kind::Http;
        c.http_path = "healthz";
      },
      "check.http_path 'healthz'");
  Vip portless = vip_with({"198.18.1.1"}, "198.18.0.10/tcp");
  portless.check = HealthCheck{};
  EXPECT_MENTIONS(error_of(validate(portless)), "check.port 0");
  portless.check->port = 8080;
  EXPECT_TRUE(validate(portless));
}

TEST(LbModel, SettingsErrorsNameFieldAndValue) {
  LbSettings settings;
  EXPECT_TRUE(validate(settings));
  auto bad = [&](auto mutate, const char* needle) {
    LbSettings copy = settings;
    mutate(copy);
    EXPECT_MENTIONS(error_of(validate(copy)), needle);
  };
  bad([](LbSettings& s) { s.encap_source_v4 = addr("2001:db8::1"); }, "encap_source_v4 2001:db8::1");
  bad([](LbSettings& s) { s.encap_source_v6 = addr("198.18.0.1"); }, "encap_source_v6 198.18.0.1");
  bad([](LbSettings& s) { s.encap_source_v4 = addr("0.0.0.0"); }, "encap_source_v4 0.0.0.0");
  bad([](LbSettings& s) { s.egress = static_cast<sluice_lb_egress>(7); }, "egress 7");
  bad([](LbSettings& s) { s.mtu = 100; }, "mtu 100");
  bad([](LbSettings& s) { s.conn_timeout_s = 0; }, "conn_timeout_s 0");
  bad([](LbSettings& s) { s.next_hop_mac = parse_mac("01:00:5e:00:00:01").value(); }, "next_hop_mac 01:00:5e:00:00:01");
  settings.mtu = 1500;
  settings.encap_source_v4 = addr("198.18.0.1");
  settings.encap_source_v6 = addr("2001:db8::1");
  EXPECT_TRUE(validate(settings));
}

TEST(LbModel, ConfigErrorsNameTheVip) {
  LbConfig config;
  config.vips.push_back(vip_with({"198.18.1.1"}));
  config.vips.push_back(vip_with({"198.18.1.1"}, "198.18.0.11:80/tcp"));
  EXPECT_TRUE(validate(config));
  config.vips[1].table_size = 65536;
  EXPECT_MENTIONS(error_of(validate(config)), "vips[1] (198.18.0.11:80/tcp): vip 198.18.0.11:80/tcp: table_size 65536: not prime");
  config.vips[1] = config.vips[0];
  EXPECT_MENTIONS(error_of(validate(config)), "vips[1] (198.18.0.10:80/tcp): duplicate VIP");
  // More backends over all VIPs than slots.
  config.vips.clear();
  for (std::uint32_t v = 0; v < 5; ++v) {
    Vip vip = vip_with({}, ("198.18.0." + std::to_string(v + 1) + ":80/tcp").c_str());
    for (std::uint32_t b = 0; b < 1000; ++b) {
      Address a = addr("198.19.0.0");
      a.bytes[2] = static_cast<std::uint8_t>(b >> 8);
      a.bytes[3] = static_cast<std::uint8_t>(b);
      if (b == 0) a.bytes[3] = 1, a.bytes[2] = 16;
      vip.backends.push_back(backend_at(a));
    }
    config.vips.push_back(vip);
  }
  auto message = error_of(validate(config));
  EXPECT_MENTIONS(message, "vips[4]");
  EXPECT_MENTIONS(message, "5000 backends over all VIPs");
}

// A packet-too-big answer announcing less than 1280 is ignored by IPv6
// hosts: such a flow would be answered forever and never delivered.
TEST(LbModel, Ipv6VipRefusesAnMtuBelowWhatIpv6Accepts) {
  LbConfig config;
  config.vips.push_back(vip_with({"2001:db8::1"}, "[2001:db8::10]:443/tcp"));
  config.settings.mtu = 1300;
  EXPECT_MENTIONS(error_of(validate(config)), "vips[0] ([2001:db8::10]:443/tcp): settings.mtu 1300: an IPv6 VIP needs 0 or at least 1320");
  config.settings.mtu = 1320;
  EXPECT_TRUE(validate(config));
  config.settings.mtu = 0;
  EXPECT_TRUE(validate(config));
  // An IPv4 VIP may use the smaller MTU (its answer is ICMPv4, minimum 68).
  config.vips[0] = vip_with({"198.18.1.1"});
  config.settings.mtu = 1300;
  EXPECT_TRUE(validate(config));
}

}  // namespace
}  // namespace sluice::lb
