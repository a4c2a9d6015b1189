#pragma once
// Drop samples as a pcap file tcpdump and Wireshark read: DLT_EN10MB, one
// record per event, caplen = the bytes of head the event carries, len = the
// frame's length on the wire. Each record is flushed as it is written, so a
// capture stopped by Ctrl-C leaves a complete file.
#include <boost/system/result.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sluice::cli {

class PcapWriter {
 public:
  // Creates (truncates) path. Error: libpcap's message naming the file.
  static boost::system::result<PcapWriter, std::string> create(const std::string& path);

  // timestamp_ns: wall clock, nanoseconds since the epoch.
  // pkt_len below head.size() (a lying event) is recorded as head.size().
  boost::system::result<void, std::string> write(std::uint64_t timestamp_ns, std::span<const std::uint8_t> head,
                                                 std::uint32_t pkt_len);

 private:
  struct State;
  explicit PcapWriter(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace sluice::cli
