#include "xdp_fixture.hpp"

#include <bpf/bpf.h>

#include <cstring>

namespace sluice::test {

RunResult run_xdp(int prog_fd, const std::vector<std::uint8_t>& frame, std::uint32_t ingress_ifindex) {
  // XDP may grow the frame at the head or tail; leave room so output is never cut.
  constexpr std::size_t headroom_for_rewrites = 256;
  RunResult result;
  result.output.resize(frame.size() + headroom_for_rewrites);
  xdp_md ctx{};
  ctx.data_end = static_cast<std::uint32_t>(frame.size());
  ctx.ingress_ifindex = ingress_ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = result.output.data(),
              .data_size_in = static_cast<std::uint32_t>(frame.size()),
              .data_size_out = static_cast<std::uint32_t>(result.output.size()),
              .ctx_in = ingress_ifindex ? &ctx : nullptr, .ctx_size_in = ingress_ifindex ? std::uint32_t{sizeof(ctx)} : 0u,
              .repeat = 1);
  int err = bpf_prog_test_run_opts(prog_fd, &opts);
  EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(-err);
  result.verdict = static_cast<int>(opts.retval);
  result.output.resize(opts.data_size_out);
  return result;
}

void XdpPipelineTest::SetUp() {
  SLUICE_REQUIRE_PRIVILEGES();
  auto loaded = dataplane::Dataplane::load({});
  ASSERT_TRUE(loaded) << loaded.error().message;
  plane_.emplace(std::move(*loaded));
  auto installed = plane_->install_stages();
  ASSERT_TRUE(installed) << installed.error().message;
}

sluice_counter XdpPipelineTest::count(sluice_verdict verdict, sluice_reason reason) const {
  auto counted = plane_->verdict_count(verdict, reason);
  EXPECT_TRUE(counted) << counted.error().message;
  return counted ? *counted : sluice_counter{};
}

void XdpPipelineTest::set_config(const sluice_config& config) {
  auto written = plane_->set_config(config);
  ASSERT_TRUE(written) << written.error().message;
}

}  // namespace sluice::test
