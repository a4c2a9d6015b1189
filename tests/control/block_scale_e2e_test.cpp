// Prefix lists at scale through sluiced (issue 8): the lists filled to
// capacity by a streamed block load, refused past it with nothing changed,
// changed one prefix at a time through the journal, and found intact after
// a restart (exact counts, verdicts of the pinned entry program for a
// sample of sources); crash points between the map writes and the journal;
// bad files through sluicectl, each named by file, line and value, with the
// maps and the persisted state unchanged.
#include <bpf/bpf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

#include "daemon_test_support.hpp"
#include "privileges.hpp"
#include "sluice_maps.h"

namespace sluice::test {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
constexpr std::chrono::milliseconds long_call{180'000};
constexpr std::size_t chunk_bytes = 512 * 1024;

// ---- packets through the pinned entry program ----

std::uint16_t ip_checksum(const std::uint8_t* header, std::size_t length) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i + 1 < length; i += 2) sum += header[i] << 8 | header[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// A UDP packet to port 80 from `src` (4 or 16 bytes) and the XDP verdict of the entry program for it.
int verdict_for(int prog_fd, const std::vector<std::uint8_t>& src) {
  std::vector<std::uint8_t> frame = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
  const bool v4 = src.size() == 4;
  frame.push_back(v4 ? 0x08 : 0x86);
  frame.push_back(v4 ? 0x00 : 0xdd);
  const std::uint8_t udp[16] = {0x04, 0xd2, 0x00, 0x50, 0x00, 0x10, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
  if (v4) {
    std::uint8_t ip[20] = {0x45, 0, 0, 36, 0, 1, 0x40, 0, 64, 17, 0, 0};
    std::memcpy(ip + 12, src.data(), 4);
    const std::uint8_t dst[4] = {198, 18, 0, 1};
    std::memcpy(ip + 16, dst, 4);
    const std::uint16_t sum = ip_checksum(ip, sizeof ip);
    ip[10] = sum >> 8, ip[11] = sum & 0xff;
    frame.insert(frame.end(), ip, ip + sizeof ip);
  } else {
    std::uint8_t ip[40] = {0x60, 0, 0, 0, 0, 16, 17, 64};
    std::memcpy(ip + 8, src.data(), 16);
    const std::uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    std::memcpy(ip + 24, dst, 16);
    frame.insert(frame.end(), ip, ip + sizeof ip);
  }
  frame.insert(frame.end(), udp, udp + sizeof udp);
  std::vector<std::uint8_t> out(frame.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, run);
  run.data_in = frame.data();
  run.data_size_in = static_cast<__u32>(frame.size());
  run.data_out = out.data();
  run.data_size_out = static_cast<__u32>(out.size());
  run.repeat = 1;
  if (bpf_prog_test_run_opts(prog_fd, &run) != 0) return -errno;
  return static_cast<int>(run.retval);
}

struct PinnedEntry {
  int fd = -1;
  explicit PinnedEntry(const std::string& pin_dir) : fd(bpf_obj_get((pin_dir + "/prog_entry").c_str())) {}
  PinnedEntry(const PinnedEntry&) = delete;
  PinnedEntry& operator=(const PinnedEntry&) = delete;
  ~PinnedEntry() {
    if (fd >= 0) ::close(fd);
  }
};

std::vector<std::uint8_t> v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) { return {a, b, c, d}; }
std::vector<std::uint8_t> v6(std::uint16_t w2, std::uint16_t w3, std::uint8_t last) {
  return {0x20, 0x01, 0x0d, 0xb8, static_cast<std::uint8_t>(w2 >> 8), static_cast<std::uint8_t>(w2), static_cast<std::uint8_t>(w3 >> 8),
          static_cast<std::uint8_t>(w3), 0, 0, 0, 0, 0, 0, 0, last};
}

// ---- the daemon side ----

std::uint64_t listed(ControlClient& client) {
  return client.result("status").at("filter").at("prefixes").to_number<std::uint64_t>();
}

// Streams `content` as one block load; the commit's reply (or the first refusal).
protocol::Reply stream_load(ControlClient& client, const std::string& content, const std::string& source = "lists.txt") {
  auto begun = client.call("block.load.begin", {{"source", source}});
  if (!begun.ok) return begun;
  const auto id = begun.result->at("load");
  for (std::size_t at = 0; at < content.size(); at += chunk_bytes) {
    auto chunk = client.call("block.load.chunk", {{"load", id}, {"data", content.substr(at, chunk_bytes)}}, long_call);
    if (!chunk.ok) return chunk;
  }
  return client.call("block.load.commit", {{"load", id}}, long_call);
}

std::string error_of(const protocol::Reply& reply) { return reply.error ? reply.error->message : std::string("(ok)"); }

// What the state dir holds, byte for byte (state.yaml, prefix snapshot and journal).
std::map<std::string, std::string> state_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name == "sluiced.lock") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    out[name] = text.str();
  }
  return out;
}

// /24s of 10.x.y.0 ... then 11.x.y.0: `count` distinct IPv4 prefixes; odd ones pass, even ones drop.
std::string v4_lines(std::size_t count) {
  std::string out;
  out.reserve(count * 20);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t a = 10 + (i >> 16), b = (i >> 8) & 0xff, c = i & 0xff;
    out += std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + ".0/24" + (i & 1 ? " pass\n" : "\n");
  }
  return out;
}
// 2001:db8:X:Y::/64 for i = X << 16 | Y, all drop.
std::string v6_lines(std::size_t count) {
  std::string out;
  out.reserve(count * 26);
  char text[64];
  for (std::size_t i = 0; i < count; ++i) {
    std::snprintf(text, sizeof text, "2001:db8:%zx:%zx::/64\n", i >> 16, i & 0xffff);
    out += text;
  }
  return out;
}

TEST(BlockScaleE2E, ListsFilledToCapacitySurviveARestartExactly) {
  SLUICE_REQUIRE_BPFFS();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  constexpr std::size_t v4_capacity = SLUICE_FILTER_MAX_V4_PREFIXES, v6_capacity = SLUICE_FILTER_MAX_V6_PREFIXES;
  {
    ControlClient client(daemon.socket_path());
    auto loaded = stream_load(client, v4_lines(v4_capacity) + v6_lines(v6_capacity));
    ASSERT_TRUE(loaded.ok) << error_of(loaded) << daemon.log();
    EXPECT_EQ(loaded.result->at("loaded").to_number<std::uint64_t>(), v4_capacity + v6_capacity);
    ASSERT_EQ(listed(client), v4_capacity + v6_capacity);

    // Past capacity: refused, nothing changed (maps, persisted state).
    const auto files_before = state_files(daemon.state_dir());
    auto one_more = client.call("block.add", {{"prefixes", json::array{"203.0.113.0/24"}}});
    ASSERT_FALSE(one_more.ok);
    EXPECT_NE(error_of(one_more).find("over its capacity of " + std::to_string(v4_capacity)), std::string::npos)
        << error_of(one_more);
    auto over = stream_load(client, "# one more\n2001:db8:ffff::/48\n", "more.txt");
    ASSERT_FALSE(over.ok);
    EXPECT_NE(error_of(over).find("more.txt:2: prefix 2001:db8:ffff::/48: the IPv6 list would hold " +
                                  std::to_string(v6_capacity + 1)),
              std::string::npos)
        << error_of(over);
    EXPECT_EQ(listed(client), v4_capacity + v6_capacity);
    EXPECT_EQ(state_files(daemon.state_dir()), files_before) << "a refused change rewrote the state";

    // One prefix out, another in: journal records, not a million-line rewrite.
    client.result("block.del", {{"prefixes", json::array{"10.0.2.0/24"}}});
    client.result("block.add", {{"prefixes", json::array{"203.0.113.0/24"}}});
    const auto files = state_files(daemon.state_dir());
    EXPECT_LT(files.at("state.yaml").size(), 4096u) << "state.yaml holds no prefixes";
    std::string journal;
    for (const auto& [name, text] : files)
      if (name.ends_with(".journal")) journal = text;
    EXPECT_NE(journal.find("- 10.0.2.0/24\n"), std::string::npos) << journal;
    EXPECT_NE(journal.find("+ b 203.0.113.0/24\n"), std::string::npos) << journal;
    EXPECT_LT(journal.size(), 256u);
  }
  ASSERT_EQ(daemon.stop(SIGTERM), 0) << daemon.log();
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  EXPECT_EQ(listed(client), v4_capacity + v6_capacity) << daemon.log();
  PinnedEntry entry(daemon.pin_dir());
  ASSERT_GE(entry.fd, 0) << std::strerror(errno);
  // A sample: first, last, drop and pass entries of both families, the changed ones, unlisted sources.
  EXPECT_EQ(verdict_for(entry.fd, v4(10, 0, 0, 7)), XDP_DROP);     // i = 0
  EXPECT_EQ(verdict_for(entry.fd, v4(10, 0, 1, 7)), XDP_PASS);     // i = 1: pass
  EXPECT_EQ(verdict_for(entry.fd, v4(10, 0, 2, 7)), XDP_PASS);     // deleted before the restart
  EXPECT_EQ(verdict_for(entry.fd, v4(10, 0, 4, 200)), XDP_DROP);   // i = 4
  EXPECT_EQ(verdict_for(entry.fd, v4(25, 255, 254, 1)), XDP_DROP);  // i = 2^20 - 2, the last drop
  EXPECT_EQ(verdict_for(entry.fd, v4(203, 0, 113, 9)), XDP_DROP);  // added before the restart
  EXPECT_EQ(verdict_for(entry.fd, v4(26, 0, 0, 1)), XDP_PASS);     // past the last listed
  EXPECT_EQ(verdict_for(entry.fd, v6(0, 0, 1)), XDP_DROP);
  EXPECT_EQ(verdict_for(entry.fd, v6(1, 0xffff, 9)), XDP_DROP);    // i = 2^17 - 1, the last
  EXPECT_EQ(verdict_for(entry.fd, v6(2, 0, 1)), XDP_PASS);         // unlisted
}

// --fault-kill-before journal: the maps were written, the journal record
// not; the client saw no reply. The next start enforces what was reported
// accepted, and not the killed change. --fault-kill-before journal-synced:
// the record is on disk (the reply was lost): the next start has it.
TEST(BlockScaleE2E, KilledBetweenMapsAndJournalTheNextStartEnforcesWhatWasAccepted) {
  SLUICE_REQUIRE_BPFFS();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  {
    ControlClient client(daemon.socket_path());
    client.result("block.add", {{"prefixes", json::array{"198.18.1.0/24", "2001:db8:1::/48"}}});
  }
  ASSERT_EQ(daemon.stop(SIGTERM), 0);
  daemon.set_extra_args({"--fault-kill-before", "journal"});
  ASSERT_EQ(daemon.start(), "");
  {
    ControlClient client(daemon.socket_path());
    auto killed = client.call("block.add", {{"prefixes", json::array{"198.18.2.0/24"}}});
    EXPECT_FALSE(killed.ok) << "the daemon must die before replying";
  }
  daemon.wait_exit();
  daemon.set_extra_args({});
  ASSERT_EQ(daemon.start(), "");
  {
    ControlClient client(daemon.socket_path());
    EXPECT_EQ(listed(client), 2u) << daemon.log();
    PinnedEntry entry(daemon.pin_dir());
    ASSERT_GE(entry.fd, 0);
    EXPECT_EQ(verdict_for(entry.fd, v4(198, 18, 1, 1)), XDP_DROP) << "accepted before the crash";
    EXPECT_EQ(verdict_for(entry.fd, v4(198, 18, 2, 1)), XDP_PASS) << "written to the maps, never journalled or reported";
    EXPECT_EQ(verdict_for(entry.fd, v6(1, 0, 1)), XDP_DROP);
  }
  ASSERT_EQ(daemon.stop(SIGTERM), 0);
  daemon.set_extra_args({"--fault-kill-before", "journal-synced"});
  ASSERT_EQ(daemon.start(), "");
  {
    ControlClient client(daemon.socket_path());
    EXPECT_FALSE(client.call("block.del", {{"prefixes", json::array{"198.18.1.0/24"}}}).ok);
  }
  daemon.wait_exit();
  daemon.set_extra_args({});
  ASSERT_EQ(daemon.start(), "");
  ControlClient client(daemon.socket_path());
  EXPECT_EQ(listed(client), 1u) << "the fsynced record counts, reply or not\n" << daemon.log();
  PinnedEntry entry(daemon.pin_dir());
  EXPECT_EQ(verdict_for(entry.fd, v4(198, 18, 1, 1)), XDP_PASS);
}

struct CliRun {
  int code = -1;
  std::string out, err;
};

CliRun sluicectl(const std::string& socket, const std::vector<std::string>& args) {
  const fs::path dir = fs::temp_directory_path() / ("block-scale-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string out = (dir / "out").string(), err = (dir / "err").string();
  std::string command = std::string(SLUICECTL_PATH) + " --socket '" + socket + "'";
  for (const auto& arg : args) command += " '" + arg + "'";
  command += " >" + out + " 2>" + err;
  CliRun run;
  const int status = std::system(command.c_str());
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream o(out), e(err);
  std::stringstream os, es;
  os << o.rdbuf();
  es << e.rdbuf();
  run.out = os.str();
  run.err = es.str();
  fs::remove_all(dir);
  return run;
}

TEST(BlockScaleE2E, BadFilesAreRefusedWholeNamingFileLineAndValue) {
  SLUICE_REQUIRE_BPFFS();
  SluicedProcess daemon;
  ASSERT_EQ(daemon.start(), "");
  {
    ControlClient client(daemon.socket_path());
    client.result("block.add", {{"prefixes", json::array{"198.18.9.0/24"}}});
  }
  struct Dir {
    fs::path path = fs::temp_directory_path() / ("block-files-" + std::to_string(::getpid()));
    Dir() { fs::create_directories(path); }
    ~Dir() { fs::remove_all(path); }
  } dir;
  const std::string good = "# ok so far\n198.18.10.0/24\n198.18.11.0/24 pass\n";
  struct Case {
    std::string name, content, expected;
  };
  const std::vector<Case> cases = {
      {"hostbits.txt", good + "198.18.12.1/24\n", "hostbits.txt:4: bad prefix '198.18.12.1/24': host bits set beyond /24"},
      {"dup.txt", good + "198.18.10.0/24 drop\n", "dup.txt:4: prefix 198.18.10.0/24 is also on line 2"},
      {"long.txt", good + std::string(5000, 'x') + "\n", "long.txt:4: a line of 5000 bytes, over the 4096-byte limit"},
      {"utf8.txt", good + "198.18.13.0/24 # caf\xc3\x28\n", "utf8.txt:4: invalid UTF-8 at byte 21: '198.18.13.0/24 # caf\\xc3('"},
      {"cut.txt", good + "198.18.14.0/2", "cut.txt:4: the last line has no newline"},
      {"action.txt", good + "198.18.15.0/24 block\n", "action.txt:4: "},
  };
  const auto files_before = state_files(daemon.state_dir());
  for (const auto& c : cases) {
    const std::string path = (dir.path / c.name).string();
    std::ofstream(path, std::ios::binary) << c.content;
    const CliRun run = sluicectl(daemon.socket_path(), {"block", "load", path});
    EXPECT_NE(run.code, 0) << c.name;
    EXPECT_NE(run.err.find(dir.path.string() + "/" + c.expected), std::string::npos) << c.name << ": " << run.err;
    EXPECT_EQ(run.out, "") << c.name << ": no progress line when stdout is not a terminal";
    ControlClient client(daemon.socket_path());
    EXPECT_EQ(listed(client), 1u) << c.name << ": nothing of the file may be loaded";
    EXPECT_FALSE(client.result("status").as_object().contains("block_load")) << c.name << ": the load is over";
    EXPECT_EQ(state_files(daemon.state_dir()), files_before) << c.name << ": the persisted state changed";
  }
  // The same file with its last line ended loads whole.
  const std::string path = (dir.path / "fixed.txt").string();
  std::ofstream(path) << good << "198.18.14.0/24\n";
  const CliRun run = sluicectl(daemon.socket_path(), {"block", "load", path});
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.out, "loaded 3 prefixes from " + path + "\n");
  ControlClient client(daemon.socket_path());
  EXPECT_EQ(listed(client), 4u);
  // block.add: a duplicate in the request and host bits, refused whole.
  auto twice = client.call("block.add", {{"prefixes", json::array{"198.18.20.0/24", "198.18.20.0/24"}}});
  EXPECT_NE(error_of(twice).find("block.add: prefixes[1]: 198.18.20.0/24 is also prefixes[0]"), std::string::npos)
      << error_of(twice);
  auto host = client.call("block.add", {{"prefixes", json::array{"198.18.21.0/24", "198.18.22.1/24"}}});
  EXPECT_NE(error_of(host).find("prefixes[1]: bad prefix '198.18.22.1/24': host bits set beyond /24"), std::string::npos)
      << error_of(host);
  EXPECT_EQ(listed(client), 4u);
}

}  // namespace
}  // namespace sluice::test
