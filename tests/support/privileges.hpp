#pragma once
// Tests that need root, bpffs or network namespaces call
// SLUICE_REQUIRE_PRIVILEGES() first. Without the privilege they skip with the
// reason; under CI=true a skip would hide a missing proof, so they fail instead.
#include <gtest/gtest.h>

#include <string>

namespace sluice::test {

// Empty when the process may load BPF programs and create maps; otherwise why not.
std::string missing_bpf_privileges();
// Empty when bpffs is mounted at /sys/fs/bpf (mounting it if root and absent).
std::string missing_bpffs();
bool running_in_ci();

}  // namespace sluice::test

#define SLUICE_SKIP_OR_FAIL(why)                                                      \
  do {                                                                                \
    if (::sluice::test::running_in_ci()) GTEST_FAIL() << "CI=true and " << (why);     \
    GTEST_SKIP() << (why);                                                            \
  } while (0)

#define SLUICE_REQUIRE_PRIVILEGES()                                                   \
  do {                                                                                \
    if (auto why_ = ::sluice::test::missing_bpf_privileges(); !why_.empty())          \
      SLUICE_SKIP_OR_FAIL("skipped: " + why_);                                        \
  } while (0)

#define SLUICE_REQUIRE_BPFFS()                                                        \
  do {                                                                                \
    SLUICE_REQUIRE_PRIVILEGES();                                                      \
    if (auto why_ = ::sluice::test::missing_bpffs(); !why_.empty())                   \
      SLUICE_SKIP_OR_FAIL("skipped: " + why_);                                        \
  } while (0)
