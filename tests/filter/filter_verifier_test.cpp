// Verifier headroom of the filter stage: the verifier must accept sluice_filter
// having processed well under its 1M-instruction limit, so that the next
// change to the stage does not tip it over. The count is the verifier's own
// ("processed N insns", log level BPF_LOG_STATS), for the whole program
// including its global subprograms and bpf_loop callbacks. A change that
// blows the budget fails here, with the number, instead of landing.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "contract.hpp"
#include "privileges.hpp"
// after the contract: the skeleton names its structs
#include "sluice.skel.h"

namespace sluice::test {
namespace {

// The verifier's complexity limit (BPF_COMPLEXITY_LIMIT_INSNS).
constexpr long kVerifierLimit = 1'000'000;
// The budget: 15% of the limit. The stage verified with ~420k before the
// classifier's word scan became a bpf_loop callback; keep it down here.
constexpr long kFilterInsnBudget = 150'000;
// BPF_LOG_STATS: only the summary lines, so a small buffer holds the log.
constexpr std::uint32_t kLogLevelStats = 4;
constexpr std::size_t kLogBytes = 64 * 1024;

struct Verified {
  bool loaded = false;
  long processed = -1;  // -1: no "processed N insns" line in the log
  std::string log;
};

// The lb stage (xdp/stage_lb.h): its too-big answer sums up to 310 quote
// words in a bounded loop, the bulk of its count (~20k at first).
constexpr long kLbInsnBudget = 100'000;

Verified verify_stage(bpf_program* (*program)(sluice_bpf*)) {
  Verified out;
  std::vector<char> log(kLogBytes, '\0');
  sluice_bpf* skeleton = sluice_bpf__open();
  if (!skeleton) return out;
  bpf_program__set_log_level(program(skeleton), kLogLevelStats);
  bpf_program__set_log_buf(program(skeleton), log.data(), log.size());
  out.loaded = sluice_bpf__load(skeleton) == 0;
  out.log.assign(log.data());
  sluice_bpf__destroy(skeleton);
  std::smatch match;
  if (std::regex_search(out.log, match, std::regex(R"(processed (\d+) insns)"))) out.processed = std::stol(match[1]);
  return out;
}

TEST(FilterVerifier, StageVerifiesWellUnderTheComplexityLimit) {
  SLUICE_REQUIRE_PRIVILEGES();
  const Verified verified = verify_stage([](sluice_bpf* skeleton) { return skeleton->progs.sluice_filter; });
  ASSERT_TRUE(verified.loaded) << "sluice_filter was rejected:\n" << verified.log;
  ASSERT_GE(verified.processed, 0) << "no 'processed N insns' in the verifier log:\n" << verified.log;
  std::printf("sluice_filter: %ld insns processed (budget %ld, limit %ld)\n", verified.processed, kFilterInsnBudget,
              kVerifierLimit);
  EXPECT_LT(verified.processed, kFilterInsnBudget)
      << "the filter stage's verifier cost grew past its budget; look for new path splits before loops, "
         "unmasked indexes, or loops the verifier walks once per iteration:\n"
      << verified.log;
}

TEST(LbVerifier, StageVerifiesWellUnderTheComplexityLimit) {
  SLUICE_REQUIRE_PRIVILEGES();
  const Verified verified = verify_stage([](sluice_bpf* skeleton) { return skeleton->progs.sluice_lb; });
  ASSERT_TRUE(verified.loaded) << "sluice_lb was rejected:\n" << verified.log;
  ASSERT_GE(verified.processed, 0) << "no 'processed N insns' in the verifier log:\n" << verified.log;
  std::printf("sluice_lb: %ld insns processed (budget %ld, limit %ld)\n", verified.processed, kLbInsnBudget,
              kVerifierLimit);
  EXPECT_LT(verified.processed, kLbInsnBudget) << "the lb stage's verifier cost grew past its budget:\n" << verified.log;
}

}  // namespace
}  // namespace sluice::test
