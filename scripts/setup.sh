#!/usr/bin/env bash
# Installs every Debian package sluice needs to build, test and benchmark,
# and mounts bpffs. Idempotent: apt runs only when something is missing.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang llvm
  # libFuzzer + sanitizer runtimes for clang (fuzz harnesses run as ctests)
  libclang-rt-14-dev
  # BPF toolchain and loaders
  libbpf-dev libxdp-dev bpftool xdp-tools linux-libc-dev libelf-dev zlib1g-dev
  # C++ libraries
  libboost1.81-dev libyaml-cpp-dev libcli11-dev libspdlog-dev libfmt-dev libpcap-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # end-to-end labs: real clients, servers and peers
  iproute2 iputils-ping netcat-openbsd nftables tcpdump curl
  # control plane tests: promtool judges sluiced's /metrics; strace checks the socket's chown/chmod calls
  prometheus strace
  # forward stage: next-hop MACs from the kernel's neighbour table and `route sync` (netlink)
  libnl-3-dev libnl-route-3-dev
  # the status page's browser test (headless), sluicectl top's terminal test
  chromium tmux
  # sluice-bench --plots: one PNG per scaling curve
  gnuplot-nox
)

missing=()
for pkg in "${packages[@]}"; do
  if ! grep -q "install ok installed" <<<"$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# bpffs: pinned maps live here. Only root can mount it; tests say so if absent.
# Mode 0700 (as systemd mounts it): a pin is a capability, and in a bpffs
# others may write to they could plant sluice's pin dir before sluiced makes
# it (sluiced refuses a pin dir that is not its own). A bpffs mounted without
# mode= (1777, as earlier versions of this script did) is tightened in place.
if [[ $(id -u) -eq 0 ]]; then
  if ! mountpoint -q /sys/fs/bpf; then
    mount -t bpf -o mode=0700 bpf /sys/fs/bpf
  elif [[ $(stat -f -c %T /sys/fs/bpf) == bpf_fs && $(stat -c %a /sys/fs/bpf) != 700 ]]; then
    chmod 0700 /sys/fs/bpf
  fi
fi
