#include "decap_host.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

#include "dataplane.hpp"
#include "prefix.hpp"
#include "decap.skel.h"

namespace sluice::decap {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr const char* bpffs_mount_point = "/sys/fs/bpf";
constexpr mode_t pin_dir_mode = 0700;

struct SkeletonDeleter {
  void operator()(decap_bpf* skel) const { decap_bpf__destroy(skel); }
};
using Skeleton = std::unique_ptr<decap_bpf, SkeletonDeleter>;

using AddressMap = maps::HashMap<sluice_decap_addr_key, sluice_decap_addr>;
using CounterMap = maps::PerCpuArrayMap<sluice_decap_counter>;
using Source4Map = maps::LpmTrie<sluice_decap_source4_key, sluice_decap_source>;
using Source6Map = maps::LpmTrie<sluice_decap_source6_key, sluice_decap_source>;
static_assert(SLUICE_DECAP_OUTCOME_COUNT <= SLUICE_DECAP_COUNTER_SLOTS, "one counter slot per outcome");
static_assert(sizeof(sluice_decap_source4_key) == sizeof(sluice_lpm_v4_key));
static_assert(sizeof(sluice_decap_source6_key) == sizeof(sluice_lpm_v6_key));

// Every map the program uses, by its pin name (the map's name).
constexpr std::array pinned_maps{addresses_pin, counters_pin, sources_v4_pin, sources_v6_pin};

bool same_key(const sluice_decap_addr_key& a, const sluice_decap_addr_key& b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

std::string pin_dir_of(const std::string& pin_root, const std::string& ifname) { return pin_root + "/" + ifname; }

bool exists(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0;
}

fs::path existing_ancestor(fs::path path) {
  std::error_code ec;
  path = path.lexically_normal();
  while (!path.empty() && !fs::exists(path, ec) && path != path.parent_path()) path = path.parent_path();
  return path.empty() ? fs::path("/") : path;
}

bool on_bpffs(const std::string& path) {
  struct statfs info {};
  return ::statfs(existing_ancestor(path).c_str(), &info) == 0 && info.f_type == BPF_FS_MAGIC;
}

bool under_mount_point(const std::string& path) {
  const auto rel = fs::path(path).lexically_normal().lexically_relative(bpffs_mount_point);
  return !rel.empty() && *rel.begin() != "..";
}

Result<void> make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), pin_dir_mode) != 0 && errno != EEXIST)
    return maps::make_error("create pin directory", path, errno, maps::ErrnoSubject::Path);
  return {};
}

// As sluiced does: a pin root under /sys/fs/bpf gets bpffs mounted there
// when nothing is; any other root must already be on a bpffs.
Result<void> ensure_pin_dir(const std::string& pin_root, const std::string& ifname) {
  if (!on_bpffs(pin_root)) {
    if (!under_mount_point(pin_root))
      return maps::make_error_because("use --bpffs", pin_root, "it is not on a bpffs", EINVAL);
    std::error_code ec;
    fs::create_directories(bpffs_mount_point, ec);
    if (ec) return maps::make_error("create bpffs mount point", bpffs_mount_point, ec.value(), maps::ErrnoSubject::Path);
    if (::mount("bpf", bpffs_mount_point, "bpf", 0, "mode=0700") != 0)
      return maps::make_error("mount bpffs on", bpffs_mount_point, errno, maps::ErrnoSubject::Path);
  }
  std::error_code ec;
  if (const fs::path parent = fs::path(pin_root).parent_path(); !parent.empty() && !fs::exists(parent, ec))
    return maps::make_error_because("create pin directory", pin_root, "its parent " + parent.string() + " is missing",
                                    ENOENT);
  if (auto made = make_dir(pin_root); !made) return made;
  return make_dir(pin_dir_of(pin_root, ifname));
}

Result<int> interface_index(const std::string& ifname) {
  const unsigned index = if_nametoindex(ifname.c_str());
  if (index == 0) return maps::make_error_because("use", "IFACE '" + ifname + "'", "no such interface", ENODEV);
  return static_cast<int>(index);
}

// The accepted set: the interface's addresses, then --address (which wins
// the origin of an address given both ways), without duplicates.
Result<std::vector<AcceptedAddress>> wanted_addresses(const AttachRequest& request) {
  std::vector<AcceptedAddress> wanted;
  auto add = [&](const sluice_decap_addr_key& key, sluice_decap_addr_origin origin) {
    auto same = std::find_if(wanted.begin(), wanted.end(), [&](const AcceptedAddress& a) { return same_key(a.key, key); });
    if (same == wanted.end()) wanted.push_back({key, origin});
    else if (origin == SLUICE_DECAP_ADDR_CONFIGURED) same->origin = origin;
  };
  std::vector<sluice_decap_addr_key> configured;
  for (const std::string& text : request.addresses) {
    auto key = parse_address(text);
    if (!key) return key.error();
    configured.push_back(*key);
  }
  auto own = interface_addresses(request.ifname);
  if (!own) return own.error();
  for (const auto& key : *own) add(key, SLUICE_DECAP_ADDR_INTERFACE);
  for (const auto& key : configured) add(key, SLUICE_DECAP_ADDR_CONFIGURED);
  if (wanted.empty())
    return maps::make_error_because("attach to", request.ifname,
                                    "the interface has no address and no --address was given: nothing to accept",
                                    EINVAL);
  if (wanted.size() > SLUICE_DECAP_MAX_ADDRESSES)
    return maps::make_error_because("attach to", request.ifname,
                                    std::to_string(wanted.size()) + " addresses: at most " +
                                        std::to_string(SLUICE_DECAP_MAX_ADDRESSES) + " are accepted",
                                    E2BIG);
  return wanted;
}

// Writes every wanted address, then removes the ones no longer wanted: a
// packet to an address kept throughout is decapsulated all along.
Result<void> sync_addresses(AddressMap& map, const std::vector<AcceptedAddress>& wanted) {
  for (const auto& address : wanted) {
    sluice_decap_addr value{};
    value.origin = address.origin;
    if (auto written = map.update(address.key, value); !written) return written;
  }
  auto present = map.keys();
  if (!present) return present.error();
  for (const auto& key : *present) {
    const bool keep = std::any_of(wanted.begin(), wanted.end(), [&](const AcceptedAddress& a) { return same_key(a.key, key); });
    if (keep) continue;
    if (auto erased = map.erase(key); !erased) return erased.error();
  }
  return {};
}

// The allowed sources: --source, or the two /0 prefixes of --any-source.
// Refused: neither (fail closed: nothing would ever be decapsulated, or an
// operator forgot that a tunnel from anyone is an open door), both, a bad
// prefix, and more than a family's trie holds.
Result<std::vector<AllowedSource>> wanted_sources(const AttachRequest& request) {
  std::vector<AllowedSource> wanted;
  if (request.any_source && !request.sources.empty())
    return maps::make_error_because("attach to", request.ifname,
                                    "--any-source and --source exclude each other: --any-source accepts every source",
                                    EINVAL);
  if (request.any_source) {
    wanted.push_back({sluice_decap_source4_key{}, SLUICE_DECAP_SOURCE_ANY});
    wanted.push_back({sluice_decap_source6_key{}, SLUICE_DECAP_SOURCE_ANY});
    return wanted;
  }
  if (request.sources.empty())
    return maps::make_error_because(
        "attach to", request.ifname,
        "no --source given: name the balancers' encapsulation sources (--source PREFIX), or say --any-source to "
        "decapsulate from anyone (a forged tunnel then gets any inner source past your edge)",
        EINVAL);
  std::size_t v4 = 0, v6 = 0;
  for (const std::string& text : request.sources) {
    auto source = parse_source(text);
    if (!source) return source.error();
    const bool duplicate = std::any_of(wanted.begin(), wanted.end(), [&](const AllowedSource& s) {
      return s.prefix.index() == source->prefix.index() && source_text(s) == source_text(*source);
    });
    if (duplicate) continue;
    (source->prefix.index() == 0 ? v4 : v6)++;
    wanted.push_back(*source);
  }
  if (v4 > SLUICE_DECAP_MAX_SOURCES || v6 > SLUICE_DECAP_MAX_SOURCES)
    return maps::make_error_because("attach to", request.ifname,
                                    std::to_string(std::max(v4, v6)) + " --source prefixes of one family: at most " +
                                        std::to_string(SLUICE_DECAP_MAX_SOURCES) + " are accepted",
                                    E2BIG);
  return wanted;
}

template <class Map, class Key>
Result<void> sync_family(Map& map, const std::vector<AllowedSource>& wanted) {
  std::vector<Key> keep;
  for (const auto& source : wanted) {
    const Key* key = std::get_if<Key>(&source.prefix);
    if (!key) continue;
    sluice_decap_source value{};
    value.origin = source.origin;
    if (auto written = map.update(*key, value); !written) return written;
    keep.push_back(*key);
  }
  auto present = map.keys();
  if (!present) return present.error();
  for (const auto& key : *present) {
    const bool kept =
        std::any_of(keep.begin(), keep.end(), [&](const Key& k) { return std::memcmp(&k, &key, sizeof k) == 0; });
    if (kept) continue;
    if (auto erased = map.erase(key); !erased) return erased.error();
  }
  return {};
}

// As sync_addresses: the new prefixes first, then the ones no longer wanted go.
Result<void> sync_sources(Source4Map& v4, Source6Map& v6, const std::vector<AllowedSource>& wanted) {
  if (auto synced = sync_family<Source4Map, sluice_decap_source4_key>(v4, wanted); !synced) return synced;
  return sync_family<Source6Map, sluice_decap_source6_key>(v6, wanted);
}

Result<void> sync_pinned_sources(const std::string& dir, const std::vector<AllowedSource>& wanted) {
  auto v4 = Source4Map::open_pinned(dir + "/" + sources_v4_pin);
  if (!v4) return v4.error();
  auto v6 = Source6Map::open_pinned(dir + "/" + sources_v6_pin);
  if (!v6) return v6.error();
  return sync_sources(*v4, *v6, wanted);
}

template <class Map>
Result<void> read_sources(const std::string& path, std::vector<AllowedSource>& out) {
  auto map = Map::open_pinned(path);
  if (!map) return map.error();
  auto entries = map->entries();
  if (!entries) return entries.error();
  for (const auto& [key, value] : *entries) out.push_back({key, static_cast<sluice_decap_source_origin>(value.origin)});
  return {};
}

Result<std::vector<std::uint32_t>> pinned_map_ids(const std::string& dir) {
  std::vector<std::uint32_t> ids;
  for (const char* name : pinned_maps) {
    auto map = maps::MapFd::open_pinned(dir + "/" + name);
    if (!map) return map.error();
    ids.push_back(map->info().id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

void remove_pins(const std::string& pin_root, const std::string& ifname) {
  const std::string dir = pin_dir_of(pin_root, ifname);
  for (const char* name : pinned_maps) ::unlink((dir + "/" + name).c_str());
  ::rmdir(dir.c_str());
  ::rmdir(pin_root.c_str());  // only when no other interface has pins there
}

Result<AttachReport> refresh(const AttachRequest& request, const dataplane::AttachedProgram& running,
                             std::vector<AcceptedAddress> wanted, std::vector<AllowedSource> sources) {
  const std::string dir = pin_dir_of(request.pin_root, request.ifname);
  if (running.mode != request.mode)
    return maps::make_error_because("attach " + std::string(dataplane::to_string(request.mode)) + " to", request.ifname,
                                    "sluice-decap is attached there in " + std::string(dataplane::to_string(running.mode)) +
                                        " mode: detach it first to change the mode",
                                    EEXIST);
  auto map = AddressMap::open_pinned(dir + "/" + addresses_pin);
  if (!map) return map.error();
  if (auto synced = sync_pinned_sources(dir, sources); !synced) return synced.error();
  if (auto synced = sync_addresses(*map, wanted); !synced) return synced.error();
  return AttachReport{true, running, std::move(wanted), std::move(sources)};
}

// The program on the interface becomes prog_fd with no moment without one.
// A single (legacy) attachment is swapped by the kernel in one step
// (XDP_FLAGS_REPLACE); inside libxdp's dispatcher the new program is added
// before the old one is removed (both strip the outer header: a packet the
// first decapsulated is not IP-in-IP for the second).
Result<dataplane::AttachedProgram> replace_running(const AttachRequest& request,
                                                   const dataplane::AttachedProgram& running, int prog_fd) {
  if (running.mode != request.mode)
    return maps::make_error_because("attach " + std::string(dataplane::to_string(request.mode)) + " to", request.ifname,
                                    "sluice-decap is attached there in " + std::string(dataplane::to_string(running.mode)) +
                                        " mode: detach it first to change the mode",
                                    EEXIST);
  if (!running.dispatcher) {
    if (auto replaced = dataplane::replace_legacy_attachment(running, prog_fd); !replaced) return replaced.error();
  } else {
    auto added = dataplane::attach_xdp(prog_fd, request.ifname, request.mode);
    if (!added) return added.error();
    if (auto detached = dataplane::detach_program(running); !detached) return detached.error();
  }
  bpf_prog_info info{};
  std::uint32_t length = sizeof info;
  if (int err = bpf_obj_get_info_by_fd(prog_fd, &info, &length); err != 0)
    return maps::make_error("read info of", "the new sluice-decap program", -err);
  dataplane::AttachedProgram now = running;
  now.prog_id = info.id;
  return now;
}

}  // namespace

Result<AllowedSource> parse_source(std::string_view text, std::string_view field) {
  auto prefix = maps::parse_prefix(text);
  if (!prefix) return maps::Error(EINVAL, std::string(field) + ": " + prefix.error().message);
  AllowedSource source;
  if (const auto* v4 = std::get_if<sluice_lpm_v4_key>(&*prefix)) {
    sluice_decap_source4_key key{};
    key.prefixlen = v4->prefixlen;
    std::memcpy(key.addr, v4->addr, sizeof key.addr);
    source.prefix = key;
  } else {
    const auto& v6 = std::get<sluice_lpm_v6_key>(*prefix);
    sluice_decap_source6_key key{};
    key.prefixlen = v6.prefixlen;
    std::memcpy(key.addr, v6.addr, sizeof key.addr);
    source.prefix = key;
  }
  return source;
}

std::string source_text(const AllowedSource& source) {
  if (const auto* v4 = std::get_if<sluice_decap_source4_key>(&source.prefix)) {
    sluice_lpm_v4_key key{};
    key.prefixlen = v4->prefixlen;
    std::memcpy(key.addr, v4->addr, sizeof key.addr);
    return maps::to_string(key);
  }
  const auto& v6 = std::get<sluice_decap_source6_key>(source.prefix);
  sluice_lpm_v6_key key{};
  key.prefixlen = v6.prefixlen;
  std::memcpy(key.addr, v6.addr, sizeof key.addr);
  return maps::to_string(key);
}

std::string_view source_origin_name(sluice_decap_source_origin origin) {
  switch (origin) {
    case SLUICE_DECAP_SOURCE_CONFIGURED: return "configured";
    case SLUICE_DECAP_SOURCE_ANY: return "any-source";
  }
  return "unknown";
}

Result<sluice_decap_addr_key> parse_address(std::string_view text, std::string_view field) {
  sluice_decap_addr_key key{};
  const std::string copy(text);
  if (inet_pton(AF_INET, copy.c_str(), &key.addr[0]) == 1) {
    key.ip_version = 4;
    return key;
  }
  if (inet_pton(AF_INET6, copy.c_str(), key.addr) == 1) {
    key.ip_version = 6;
    return key;
  }
  return maps::make_error_because("parse", std::string(field) + " '" + copy + "'", "not an IPv4 or IPv6 address",
                                  EINVAL);
}

std::string address_text(const sluice_decap_addr_key& key) {
  char text[INET6_ADDRSTRLEN] = {};
  if (key.ip_version == 4) inet_ntop(AF_INET, &key.addr[0], text, sizeof text);
  else if (key.ip_version == 6) inet_ntop(AF_INET6, key.addr, text, sizeof text);
  else return "<ip_version " + std::to_string(key.ip_version) + ">";
  return text;
}

std::string_view origin_name(sluice_decap_addr_origin origin) {
  switch (origin) {
    case SLUICE_DECAP_ADDR_INTERFACE: return "interface";
    case SLUICE_DECAP_ADDR_CONFIGURED: return "configured";
  }
  return "unknown";
}

std::string_view outcome_name(std::uint32_t outcome) {
  switch (outcome) {
    case SLUICE_DECAP_4IN4: return "decap_4in4";
    case SLUICE_DECAP_6IN4: return "decap_6in4";
    case SLUICE_DECAP_4IN6: return "decap_4in6";
    case SLUICE_DECAP_6IN6: return "decap_6in6";
    case SLUICE_DECAP_NOT_ENCAPSULATED: return "not_encapsulated";
    case SLUICE_DECAP_NOT_FOR_US: return "not_for_us";
    case SLUICE_DECAP_OUTER_BAD_HEADER: return "outer_bad_header";
    case SLUICE_DECAP_OUTER_BAD_CHECKSUM: return "outer_bad_checksum";
    case SLUICE_DECAP_OUTER_FRAGMENT: return "outer_fragment";
    case SLUICE_DECAP_INNER_TRUNCATED: return "inner_truncated";
    case SLUICE_DECAP_INNER_BAD_HEADER: return "inner_bad_header";
    case SLUICE_DECAP_INNER_LENGTH_MISMATCH: return "inner_length_mismatch";
    case SLUICE_DECAP_INNER_VERSION_MISMATCH: return "inner_version_mismatch";
    case SLUICE_DECAP_STRIP_FAILED: return "strip_failed";
    case SLUICE_DECAP_FOREIGN_SOURCE: return "foreign_source";
    default: return "unknown";
  }
}

Result<void> validate_ifname(std::string_view ifname) {
  const auto refuse = [&](std::string_view why) {
    return maps::make_error_because("use", "IFACE '" + std::string(ifname) + "'", why, EINVAL);
  };
  if (ifname.empty()) return refuse("empty interface name");
  if (ifname.size() >= IFNAMSIZ) return refuse("longer than " + std::to_string(IFNAMSIZ - 1) + " characters");
  if (ifname == "." || ifname == "..") return refuse("not an interface name");
  for (const char c : ifname)
    if (c == '/' || c == '\0' || c == ':' || static_cast<unsigned char>(c) <= ' ')
      return refuse("contains a '/', ':', whitespace or control character");
  return {};
}

Result<std::vector<sluice_decap_addr_key>> interface_addresses(const std::string& ifname) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return maps::make_error("read addresses of", ifname, errno);
  std::unique_ptr<ifaddrs, decltype(&freeifaddrs)> owned(list, freeifaddrs);
  std::vector<sluice_decap_addr_key> found;
  for (const ifaddrs* entry = list; entry; entry = entry->ifa_next) {
    if (!entry->ifa_addr || !entry->ifa_name || ifname != entry->ifa_name) continue;
    sluice_decap_addr_key key{};
    if (entry->ifa_addr->sa_family == AF_INET) {
      key.ip_version = 4;
      std::memcpy(&key.addr[0], &reinterpret_cast<const sockaddr_in*>(entry->ifa_addr)->sin_addr, 4);
    } else if (entry->ifa_addr->sa_family == AF_INET6) {
      key.ip_version = 6;
      std::memcpy(key.addr, &reinterpret_cast<const sockaddr_in6*>(entry->ifa_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    found.push_back(key);
  }
  return found;
}

Result<AttachReport> attach(const AttachRequest& request) {
  if (auto valid = validate_ifname(request.ifname); !valid) return valid.error();
  if (auto index = interface_index(request.ifname); !index) return index.error();
  auto sources = wanted_sources(request);
  if (!sources) return sources.error();
  auto wanted = wanted_addresses(request);
  if (!wanted) return wanted.error();
  if (auto made = ensure_pin_dir(request.pin_root, request.ifname); !made) return made.error();
  const std::string dir = pin_dir_of(request.pin_root, request.ifname);
  // Every failure from here on removes what this call pinned and the
  // directories it made (rmdir leaves a directory that still holds pins).
  std::vector<std::string> fresh_pins;
  auto undo = [&](const maps::Error& error) -> Result<AttachReport> {
    for (const auto& path : fresh_pins) ::unlink(path.c_str());
    ::rmdir(dir.c_str());
    ::rmdir(request.pin_root.c_str());
    return error;
  };

  auto running = dataplane::find_attached(request.ifname, program_name);
  if (!running) return undo(running.error());
  const bool pinned = std::all_of(pinned_maps.begin(), pinned_maps.end(),
                                  [&](const char* name) { return exists(dir + "/" + name); });
  if (*running && pinned) {
    auto running_maps = dataplane::program_state_map_ids_by_id((*running)->prog_id);
    auto pinned_maps = pinned_map_ids(dir);
    if (running_maps && pinned_maps && *running_maps == *pinned_maps) {
      auto refreshed = refresh(request, **running, std::move(*wanted), std::move(*sources));
      if (!refreshed) return undo(refreshed.error());
      return refreshed;
    }
    // Otherwise the attached program runs on maps nobody can reach (pins
    // removed or replaced): a new one on the pinned maps takes its place.
  }

  Skeleton skel(decap_bpf__open());
  if (!skel) return undo(maps::make_error("open", "sluice-decap BPF object", errno));
  std::vector<std::string> unpinned;  // maps the load creates: pinned once loaded
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, skel->obj) {
    if (bpf_map__is_internal(map)) continue;
    const std::string path = dir + "/" + bpf_map__name(map);
    auto reused = maps::reuse_pinned(skel->obj, map, path);
    if (!reused) return undo(reused.error());
    if (!*reused) unpinned.push_back(path);
  }
  if (int err = decap_bpf__load(skel.get()); err != 0)
    return undo(maps::make_error("load", "sluice-decap BPF object", -err));
  auto address_fd = maps::MapFd::from_skeleton(skel->maps.decap_addresses);
  if (!address_fd) return undo(address_fd.error());
  auto addresses = AddressMap::from(std::move(*address_fd));
  if (!addresses) return undo(addresses.error());
  auto sources_v4_fd = maps::MapFd::from_skeleton(skel->maps.decap_sources_v4);
  if (!sources_v4_fd) return undo(sources_v4_fd.error());
  auto sources_v4 = Source4Map::from(std::move(*sources_v4_fd));
  if (!sources_v4) return undo(sources_v4.error());
  auto sources_v6_fd = maps::MapFd::from_skeleton(skel->maps.decap_sources_v6);
  if (!sources_v6_fd) return undo(sources_v6_fd.error());
  auto sources_v6 = Source6Map::from(std::move(*sources_v6_fd));
  if (!sources_v6) return undo(sources_v6.error());
  // Before the program sees a packet: it never runs with an empty set.
  if (auto synced = sync_sources(*sources_v4, *sources_v6, *sources); !synced) return undo(synced.error());
  if (auto synced = sync_addresses(*addresses, *wanted); !synced) return undo(synced.error());
  map = nullptr;
  bpf_object__for_each_map(map, skel->obj) {
    if (bpf_map__is_internal(map)) continue;
    const std::string path = dir + "/" + bpf_map__name(map);
    if (std::find(unpinned.begin(), unpinned.end(), path) == unpinned.end()) continue;
    if (int err = bpf_map__pin(map, path.c_str()); err != 0)
      return undo(maps::make_error("pin", path, -err, maps::ErrnoSubject::Path));
    fresh_pins.push_back(path);
  }
  const int prog_fd = bpf_program__fd(skel->progs.sluice_decap);
  if (*running) {
    // Replace, never detach first: a failed attach must not leave the
    // interface without decap (the old program goes on with its maps).
    auto replaced = replace_running(request, **running, prog_fd);
    if (!replaced) return undo(replaced.error());
    return AttachReport{false, *replaced, std::move(*wanted), std::move(*sources)};
  }
  auto attached = dataplane::attach_xdp(prog_fd, request.ifname, request.mode);
  if (!attached && attached.error().errnum == EBUSY)
    return undo(maps::Error(EBUSY, attached.error().message + ": another XDP program holds " + request.ifname +
                                       " (xdp-loader status shows it); it is left alone"));
  if (!attached) return undo(attached.error());
  return AttachReport{false, *attached, std::move(*wanted), std::move(*sources)};
}

Result<DetachReport> detach(const std::string& ifname, const std::string& pin_root) {
  if (auto valid = validate_ifname(ifname); !valid) return valid.error();
  DetachReport report;
  const std::string dir = pin_dir_of(pin_root, ifname);
  report.had_pins = exists(dir);
  if (if_nametoindex(ifname.c_str()) != 0) {
    auto running = dataplane::find_attached(ifname, program_name);
    if (!running) return running.error();
    if (*running) {
      if (auto detached = dataplane::detach_program(**running); !detached) return detached.error();
      report.was_attached = true;
    }
  } else if (!report.had_pins) {
    return maps::make_error_because("detach from", "IFACE '" + ifname + "'",
                                    "no such interface, and nothing pinned for it under " + pin_root, ENODEV);
  }
  if (report.had_pins) remove_pins(pin_root, ifname);
  return report;
}

Result<std::vector<InterfaceStatus>> status(const std::string& pin_root, const std::optional<std::string>& only) {
  std::vector<std::string> names;
  if (only) {
    if (auto valid = validate_ifname(*only); !valid) return valid.error();
    names.push_back(*only);
  } else {
    std::error_code ec;
    if (fs::is_directory(pin_root, ec)) {
      for (const auto& entry : fs::directory_iterator(pin_root, ec))
        if (entry.is_directory(ec)) names.push_back(entry.path().filename().string());
      if (ec) return maps::make_error("list", pin_root, ec.value(), maps::ErrnoSubject::Path);
    }
    std::sort(names.begin(), names.end());
  }
  std::vector<InterfaceStatus> all;
  for (const auto& name : names) {
    InterfaceStatus s;
    s.ifname = name;
    s.interface_exists = if_nametoindex(name.c_str()) != 0;
    if (s.interface_exists) {
      auto running = dataplane::find_attached(name, program_name);
      if (running) s.program = *running;
      else s.problem = running.error().message;
    } else if (only) {
      return maps::make_error_because("status of", "IFACE '" + name + "'", "no such interface", ENODEV);
    }
    const std::string dir = pin_dir_of(pin_root, name);
    if (!exists(dir)) {
      if (s.problem.empty() && s.program) s.problem = "attached but nothing pinned under " + dir;
      all.push_back(std::move(s));
      continue;
    }
    auto addresses = AddressMap::open_pinned(dir + "/" + addresses_pin);
    if (addresses) {
      auto entries = addresses->entries();
      if (entries) {
        for (const auto& [key, value] : *entries)
          s.addresses.push_back({key, static_cast<sluice_decap_addr_origin>(value.origin)});
        std::sort(s.addresses.begin(), s.addresses.end(), [](const AcceptedAddress& a, const AcceptedAddress& b) {
          return std::memcmp(&a.key, &b.key, sizeof a.key) < 0;
        });
      } else {
        s.problem = entries.error().message;
      }
    } else {
      s.problem = addresses.error().message;
    }
    for (const auto& [path, read] :
         {std::pair{dir + "/" + sources_v4_pin, &read_sources<Source4Map>},
          std::pair{dir + "/" + sources_v6_pin, &read_sources<Source6Map>}}) {
      if (auto got = read(path, s.sources); !got && s.problem.empty()) s.problem = got.error().message;
    }
    auto counters = CounterMap::open_pinned(dir + "/" + counters_pin);
    if (counters) {
      for (std::uint32_t slot = 0; slot < SLUICE_DECAP_OUTCOME_COUNT; ++slot) {
        auto per_cpu = counters->lookup(slot);
        if (!per_cpu || !*per_cpu) {
          s.problem = per_cpu ? "counter slot " + std::to_string(slot) + " missing" : per_cpu.error().message;
          break;
        }
        for (const auto& cpu : **per_cpu) {
          s.counters[slot].packets += cpu.packets;
          s.counters[slot].bytes += cpu.bytes;
        }
      }
    } else if (s.problem.empty()) {
      s.problem = counters.error().message;
    }
    all.push_back(std::move(s));
  }
  return all;
}

std::string status_json(const std::vector<InterfaceStatus>& interfaces) {
  json::array list;
  for (const auto& s : interfaces) {
    json::object entry;
    entry["ifname"] = s.ifname;
    entry["interface_exists"] = s.interface_exists;
    entry["attached"] = s.program.has_value();
    if (s.program) {
      entry["mode"] = std::string(dataplane::to_string(s.program->mode));
      entry["prog_id"] = s.program->prog_id;
    }
    json::array addresses;
    for (const auto& a : s.addresses)
      addresses.push_back(json::object{{"address", address_text(a.key)}, {"origin", std::string(origin_name(a.origin))}});
    entry["addresses"] = std::move(addresses);
    json::array sources;
    for (const auto& source : s.sources)
      sources.push_back(
          json::object{{"prefix", source_text(source)}, {"origin", std::string(source_origin_name(source.origin))}});
    entry["sources"] = std::move(sources);
    json::object counters;
    for (std::uint32_t slot = 0; slot < SLUICE_DECAP_OUTCOME_COUNT; ++slot)
      counters[std::string(outcome_name(slot))] =
          json::object{{"packets", s.counters[slot].packets}, {"bytes", s.counters[slot].bytes}};
    entry["counters"] = std::move(counters);
    if (!s.problem.empty()) entry["problem"] = s.problem;
    list.push_back(std::move(entry));
  }
  return json::serialize(json::object{{"interfaces", std::move(list)}}) + "\n";
}

std::string status_text(const std::vector<InterfaceStatus>& interfaces) {
  std::ostringstream out;
  if (interfaces.empty()) out << "sluice-decap is not attached anywhere\n";
  for (const auto& s : interfaces) {
    out << s.ifname << ": ";
    if (!s.interface_exists) out << "interface missing";
    else if (s.program)
      out << "attached (" << dataplane::to_string(s.program->mode) << ", program id " << s.program->prog_id << ")";
    else out << "not attached";
    out << "\n  addresses:";
    if (s.addresses.empty()) out << " none";
    for (const auto& a : s.addresses) out << " " << address_text(a.key) << " (" << origin_name(a.origin) << ")";
    out << "\n  sources:";
    if (s.sources.empty()) out << " none (every encapsulated packet is dropped)";
    for (const auto& source : s.sources) {
      out << " " << source_text(source);
      if (source.origin == SLUICE_DECAP_SOURCE_ANY) out << " (any-source)";
    }
    out << "\n";
    for (std::uint32_t slot = 0; slot < SLUICE_DECAP_OUTCOME_COUNT; ++slot) {
      if (s.counters[slot].packets == 0) continue;
      out << "  " << outcome_name(slot) << ": " << s.counters[slot].packets << " packets, " << s.counters[slot].bytes
          << " bytes\n";
    }
    if (!s.problem.empty()) out << "  problem: " << s.problem << "\n";
  }
  return out.str();
}

}  // namespace sluice::decap
