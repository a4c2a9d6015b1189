#pragma once
// libnl-route-3 pieces shared by NeighbourTable and KernelMirror: owners of
// libnl objects (move-only), and conversions from libnl's addresses. Every
// netlink message is parsed by libnl; nothing here reads netlink bytes.
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "route_table.hpp"

namespace sluice::route::netlink {

struct SocketFree {
  void operator()(nl_sock* sock) const noexcept { nl_socket_free(sock); }
};
struct ManagerFree {
  void operator()(nl_cache_mngr* manager) const noexcept { nl_cache_mngr_free(manager); }
};
struct AddrPut {
  void operator()(nl_addr* addr) const noexcept { nl_addr_put(addr); }
};
using Socket = std::unique_ptr<nl_sock, SocketFree>;
using Manager = std::unique_ptr<nl_cache_mngr, ManagerFree>;
using Addr = std::unique_ptr<nl_addr, AddrPut>;

// An error from libnl (a negative NLE_* code) in the repo's form.
inline Error nl_error(std::string_view operation, int nl_code) {
  return Error{EIO, std::string(operation) + " (netlink): " + nl_geterror(nl_code)};
}

// A connected NETLINK_ROUTE socket in the calling thread's network namespace, for dumps.
inline Result<Socket> connect_route_socket(std::string_view purpose) {
  Socket sock(nl_socket_alloc());
  if (!sock) return Error{ENOMEM, "allocate a netlink socket for " + std::string(purpose)};
  if (int rc = nl_connect(sock.get(), NETLINK_ROUTE); rc < 0)
    return nl_error("connect netlink for " + std::string(purpose), rc);
  return sock;
}

// A cache manager on a socket of ours (so its receive buffer can be sized),
// non-blocking, in the calling thread's network namespace. libnl does not
// free a socket it is given: `sock` outlives `manager` (member order).
struct CacheManager {
  Socket sock;
  Manager manager;

  // rx_buffer_bytes 0: libnl's default.
  static Result<CacheManager> open(std::string_view purpose, int rx_buffer_bytes) {
    CacheManager out;
    out.sock.reset(nl_socket_alloc());
    if (!out.sock) return Error{ENOMEM, "allocate a netlink socket for " + std::string(purpose)};
    nl_cache_mngr* raw = nullptr;
    if (int rc = nl_cache_mngr_alloc(out.sock.get(), NETLINK_ROUTE, 0, &raw); rc < 0)
      return nl_error("open a netlink cache manager for " + std::string(purpose), rc);
    out.manager.reset(raw);
    if (rx_buffer_bytes > 0)
      if (int rc = nl_socket_set_buffer_size(out.sock.get(), rx_buffer_bytes, 0); rc < 0)
        return nl_error("size the netlink receive buffer for " + std::string(purpose), rc);
    return out;
  }
  int fd() const { return nl_cache_mngr_get_fd(manager.get()); }
};

inline std::optional<IpAddress> ip_of(const nl_addr* addr) {
  if (!addr) return std::nullopt;
  IpAddress ip;
  ip.family = nl_addr_get_family(addr);
  const unsigned len = nl_addr_get_len(addr);
  if (ip.family == AF_INET && len == 4) {
  } else if (ip.family == AF_INET6 && len == 16) {
  } else {
    return std::nullopt;
  }
  std::memcpy(ip.bytes.data(), nl_addr_get_binary_addr(addr), len);
  return ip;
}

inline Addr addr_of(const IpAddress& ip) {
  return Addr(nl_addr_build(ip.family, ip.bytes.data(), ip.family == AF_INET ? 4 : 16));
}

}  // namespace sluice::route::netlink
