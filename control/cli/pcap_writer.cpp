#include "pcap_writer.hpp"

#include <pcap/pcap.h>

// sluice_maps.h, not contract.hpp: <linux/bpf.h> and <pcap/pcap.h> both define struct bpf_insn.
#include "sluice_maps.h"

namespace sluice::cli {
namespace {

constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;
constexpr std::uint64_t kNanosPerMicro = 1'000;

}  // namespace

struct PcapWriter::State {
  pcap_t* handle = nullptr;
  pcap_dumper_t* dumper = nullptr;
  std::string path;
  ~State() {
    if (dumper) pcap_dump_close(dumper);
    if (handle) pcap_close(handle);
  }
};

boost::system::result<PcapWriter, std::string> PcapWriter::create(const std::string& path) {
  auto state = std::make_shared<State>();
  state->path = path;
  // snaplen: the most any event carries.
  state->handle = pcap_open_dead(DLT_EN10MB, SLUICE_EVENT_HEAD_BYTES);
  if (!state->handle) return std::string("pcap_open_dead failed");
  state->dumper = pcap_dump_open(state->handle, path.c_str());
  if (!state->dumper) return "cannot write " + path + ": " + pcap_geterr(state->handle);
  return PcapWriter(std::move(state));
}

boost::system::result<void, std::string> PcapWriter::write(std::uint64_t timestamp_ns, std::span<const std::uint8_t> head,
                                                           std::uint32_t pkt_len) {
  pcap_pkthdr header{};
  header.ts.tv_sec = static_cast<time_t>(timestamp_ns / kNanosPerSecond);
  header.ts.tv_usec = static_cast<suseconds_t>(timestamp_ns % kNanosPerSecond / kNanosPerMicro);
  header.caplen = static_cast<bpf_u_int32>(head.size());
  header.len = std::max<bpf_u_int32>(pkt_len, header.caplen);
  pcap_dump(reinterpret_cast<u_char*>(state_->dumper), &header, head.data());
  if (pcap_dump_flush(state_->dumper) != 0) return "write " + state_->path + ": flush failed";
  return {};
}

}  // namespace sluice::cli
