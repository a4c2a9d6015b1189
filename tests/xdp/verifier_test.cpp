// Every BPF object of the data plane must load: a program the verifier
// rejects is a bug, caught here with the verifier's log in the failure.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <cstdarg>
#include <cstdio>
#include <string>

#include "contract.hpp"
#include "privileges.hpp"
// after the contract: the skeletons name its structs
#include "empty.skel.h"
#include "parse_only.skel.h"
#include "sluice.skel.h"

namespace sluice::test {
namespace {

std::string verifier_log;

int capture_libbpf(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[4096];
  const int n = std::vsnprintf(line, sizeof(line), format, args);
  verifier_log += line;
  return n;
}

template <class Skeleton>
void expect_loads(Skeleton* (*open_and_load)(), void (*destroy)(Skeleton*), const char* name) {
  verifier_log.clear();
  libbpf_print_fn_t previous = libbpf_set_print(capture_libbpf);
  Skeleton* skeleton = open_and_load();
  libbpf_set_print(previous);
  EXPECT_NE(skeleton, nullptr) << name << " was rejected:\n" << verifier_log;
  if (skeleton) destroy(skeleton);
}

TEST(Verifier, AcceptsEveryDataPlaneObject) {
  SLUICE_REQUIRE_PRIVILEGES();
  expect_loads(sluice_bpf__open_and_load, sluice_bpf__destroy, "sluice.bpf.o");
  expect_loads(parse_only_bpf__open_and_load, parse_only_bpf__destroy, "parse_only.bpf.o");
  expect_loads(empty_bpf__open_and_load, empty_bpf__destroy, "empty.bpf.o");
}

}  // namespace
}  // namespace sluice::test
