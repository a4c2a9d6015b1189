// libFuzzer harness of everything sluiced does with bytes from a client
// before touching the data plane: framing (split at random points),
// request parsing, and the argument parsers of every op. Any crash, leak,
// sanitizer report or exception escaping is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ops.hpp"
#include "protocol.hpp"

namespace {

using namespace sluice::protocol;

void exercise(const Request& request) {
  const auto& args = request.args;
  (void)parse_no_args(request.op, args);
  (void)parse_attach_args(args);
  (void)parse_detach_args(args);
  (void)parse_config_patch(args);
  (void)parse_events_args(args);
  (void)parse_shutdown_args(args);
  (void)ok_reply(request.id, args);
  (void)error_reply(request.id, {ErrorCode::BadArgs, request.op});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  // The first byte picks the read size, as if the client's writes arrived in pieces;
  // a small line limit reaches the too-large paths with small inputs.
  const std::size_t chunk = size ? (static_cast<std::size_t>(data[0]) % 64) + 1 : 1;
  constexpr std::size_t small_limit = 256;
  LineFramer framer(small_limit);
  for (std::size_t offset = 0; offset < bytes.size(); offset += chunk) {
    framer.feed(bytes.substr(offset, chunk));
    while (auto frame = framer.next()) {
      if (const auto* line = std::get_if<std::string>(&*frame)) {
        auto parsed = parse_request(*line);
        if (const auto* request = std::get_if<Request>(&parsed)) exercise(*request);
        (void)parse_reply(*line);
      }
    }
  }
  // The whole input as one line, with the real limit.
  auto parsed = parse_request(bytes);
  if (const auto* request = std::get_if<Request>(&parsed)) exercise(*request);
  return 0;
}
