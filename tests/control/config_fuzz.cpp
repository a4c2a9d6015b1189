// libFuzzer harness for the YAML desired-state loader. Any input must give a
// state or an error — never a crash, hang or sanitizer report — and every
// accepted state must survive the round trip the CLI relies on
// (`config show` output fed back to `apply`): parse(to_yaml(x)) == x, and
// the diff between them is empty.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "desired_state.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_desired_state(text);
  if (!parsed) {
    // Errors must be printable (to_string touches every field).
    (void)parsed.error().to_string();
    return 0;
  }
  const std::string yaml = to_yaml(*parsed);
  auto again = parse_desired_state(yaml);
  if (!again || !(*again == *parsed) || !diff(*parsed, *again).empty()) __builtin_trap();
  return 0;
}
