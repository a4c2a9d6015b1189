#include "route_fixture.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <stdexcept>

#include "route_lookup_probe.skel.h"
#include "sluice.skel.h"

namespace sluice::test {

std::unique_ptr<dataplane::Dataplane> RouteStageTest::plane_;

route::Mac mac_of(const char* text) { return parse_mac(text); }

route::NextHopSpec test_hop(std::uint8_t tag) {
  route::Mac dst = parse_mac("02:00:00:00:01:00");
  dst[5] = tag;
  return route::NextHopSpec{kTestEgress, dst, parse_mac(kRouterMac)};
}

maps::Prefix prefix(const char* text) {
  auto parsed = maps::parse_prefix(text);
  if (!parsed) throw std::invalid_argument(parsed.error().message);
  return *parsed;
}

LookupProbe::LookupProbe(const dataplane::Dataplane& plane) {
  skeleton_ = route_lookup_probe_bpf__open();
  if (!skeleton_) throw std::runtime_error("open route_lookup_probe");
  bpf_object* own = plane.skeleton()->obj;
  bpf_map* map;
  bpf_object__for_each_map(map, skeleton_->obj) {
    const bpf_map* theirs = bpf_object__find_map_by_name(own, bpf_map__name(map));
    if (!theirs) continue;
    if (int err = bpf_map__reuse_fd(map, bpf_map__fd(theirs)); err)
      throw std::runtime_error(std::string("reuse ") + bpf_map__name(map) + ": " + std::strerror(-err));
  }
  if (int err = route_lookup_probe_bpf__load(skeleton_); err)
    throw std::runtime_error(std::string("load route_lookup_probe: ") + std::strerror(-err));
}

LookupProbe::~LookupProbe() { route_lookup_probe_bpf__destroy(skeleton_); }

int LookupProbe::pass_prog_fd() const { return bpf_program__fd(skeleton_->progs.route_pass_probe); }

namespace {
constexpr std::size_t kV4Batch = 512;
constexpr std::size_t kV6Batch = 128;

std::vector<std::uint8_t> run_probe(int fd, std::vector<std::uint8_t> frame) {
  std::vector<std::uint8_t> out(frame.size());
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
              .data_size_in = static_cast<std::uint32_t>(frame.size()),
              .data_size_out = static_cast<std::uint32_t>(out.size()), .repeat = 1);
  if (int err = bpf_prog_test_run_opts(fd, &opts); err)
    throw std::runtime_error(std::string("test run route_lookup_probe: ") + std::strerror(-err));
  if (opts.retval != XDP_TX) throw std::runtime_error("route_lookup_probe refused the frame");
  return out;
}
}  // namespace

std::vector<std::uint32_t> LookupProbe::lookup_v4(const std::vector<std::uint32_t>& dsts) const {
  std::vector<std::uint32_t> values;
  values.reserve(dsts.size());
  const int fd = bpf_program__fd(skeleton_->progs.route_lookup_probe);
  for (std::size_t at = 0; at < dsts.size(); at += kV4Batch) {
    const std::size_t n = std::min(kV4Batch, dsts.size() - at);
    std::vector<std::uint8_t> frame(ETH_HLEN + 4 * n);
    frame[12] = 0x08;
    frame[13] = 0x00;
    std::memcpy(frame.data() + ETH_HLEN, dsts.data() + at, 4 * n);
    const auto out = run_probe(fd, std::move(frame));
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t v;
      std::memcpy(&v, out.data() + ETH_HLEN + 4 * i, 4);
      values.push_back(v);
    }
  }
  return values;
}

std::vector<std::uint32_t> LookupProbe::lookup_v6(const std::vector<std::array<std::uint32_t, 4>>& dsts) const {
  std::vector<std::uint32_t> values;
  values.reserve(dsts.size());
  const int fd = bpf_program__fd(skeleton_->progs.route_lookup_probe);
  for (std::size_t at = 0; at < dsts.size(); at += kV6Batch) {
    const std::size_t n = std::min(kV6Batch, dsts.size() - at);
    std::vector<std::uint8_t> frame(ETH_HLEN + 16 * n);
    frame[12] = 0x86;
    frame[13] = 0xdd;
    std::memcpy(frame.data() + ETH_HLEN, dsts.data() + at, 16 * n);
    const auto out = run_probe(fd, std::move(frame));
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t v;
      std::memcpy(&v, out.data() + ETH_HLEN + 16 * i, 4);
      values.push_back(v);
    }
  }
  return values;
}

void RouteStageTest::SetUpTestSuite() {
  if (!missing_bpf_privileges().empty()) return;
  auto loaded = dataplane::Dataplane::load({});
  if (!loaded) throw std::runtime_error(loaded.error().message);
  plane_ = std::make_unique<dataplane::Dataplane>(std::move(*loaded));
  if (auto installed = plane_->install_stages(); !installed) throw std::runtime_error(installed.error().message);
}

void RouteStageTest::TearDownTestSuite() { plane_.reset(); }

void RouteStageTest::SetUp() {
  SLUICE_REQUIRE_PRIVILEGES();
  ASSERT_TRUE(plane_);
  ASSERT_OK(plane_->set_config(dataplane::default_config()));
  open_table();
}

void RouteStageTest::open_table(route::RouteTableOptions options) {
  table_.reset();
  auto opened = route::RouteTable::open(*plane_, options);
  ASSERT_TRUE(opened) << opened.error().message;
  table_.emplace(std::move(*opened));
}

RunResult RouteStageTest::run(const Bytes& frame) const { return run_xdp(plane_->entry_prog_fd(), frame); }

std::uint64_t RouteStageTest::packets(sluice_verdict verdict, std::uint32_t reason) const {
  auto counted = plane_->verdict_count(verdict, static_cast<sluice_reason>(reason));
  EXPECT_TRUE(counted) << counted.error().message;
  return counted ? counted->packets : 0;
}

std::uint64_t RouteStageTest::event(sluice_fwd_event_slot slot) const {
  auto events = table_->event_counters();
  EXPECT_TRUE(events) << events.error().message;
  return events ? (*events)[slot].packets : 0;
}

int RouteStageTest::map_fd(const char* name) const {
  const bpf_map* map = bpf_object__find_map_by_name(plane_->skeleton()->obj, name);
  return map ? bpf_map__fd(map) : -1;
}

}  // namespace sluice::test
