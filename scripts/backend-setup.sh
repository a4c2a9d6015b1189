#!/usr/bin/env bash
# Prepares a backend behind a sluice load balancer for direct server return,
# and reports each setting it changed (and each it found already right):
#   - decapsulation of the box's IP-in-IP: sluice-decap on the interface
#     (no kernel tunnel module needed), or with --tunnel the kernel's ipip
#     fallback device tunl0 where the module exists;
#   - every VIP on lo, so the server accepts the decapsulated packets and
#     answers from the VIP straight to the client;
#   - arp_ignore=1 / arp_announce=2, so the backend never answers ARP for a
#     VIP (the box owns it on the client side);
#   - rp_filter=2 (loose) on all and the interface: the inner packet's
#     client source would fail a strict reverse-path check.
#
#   scripts/backend-setup.sh --vip ADDR [--vip ADDR ...] --box ADDR [--box ADDR ...]
#                            [--iface IFACE] [--tunnel] [--sluice-decap PATH] [--bpffs DIR] [--dry-run]
#
# --box: the box's encapsulation source addresses (sluice-decap accepts
# only those). --iface: where the encapsulated packets arrive (default: the
# interface of the route to the first --box). Root only; runs in the
# current network namespace. Exit 0 done, 1 a step failed (the steps before
# it stay; each is idempotent, so run it again), 2 bad arguments (nothing changed).
set -euo pipefail

vips=() boxes=() iface= tunnel=false dry_run=false bpffs=
decap=$(command -v sluice-decap || true)
die_usage() { echo "backend-setup: $*" >&2; exit 2; }
is_address() { python3 -c 'import ipaddress,sys; ipaddress.ip_address(sys.argv[1])' "$1" 2>/dev/null; }
while (($#)); do
  case $1 in
    --vip) is_address "${2:-}" || die_usage "--vip: '${2:-}' is not an IPv4 or IPv6 address"; vips+=("$2"); shift 2 ;;
    --box) is_address "${2:-}" || die_usage "--box: '${2:-}' is not an IPv4 or IPv6 address"; boxes+=("$2"); shift 2 ;;
    --iface) [[ ${2:-} =~ ^[A-Za-z0-9_.@:-]{1,15}$ ]] || die_usage "--iface: '${2:-}' is not an interface name"; iface=$2; shift 2 ;;
    --tunnel) tunnel=true; shift ;;
    --sluice-decap) [[ -x ${2:-} ]] || die_usage "--sluice-decap: '${2:-}' is not an executable"; decap=$2; shift 2 ;;
    --bpffs) [[ -n ${2:-} ]] || die_usage "--bpffs needs a directory"; bpffs=$2; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
  esac
done
((${#vips[@]})) || die_usage "at least one --vip"
((${#boxes[@]})) || die_usage "at least one --box"
[[ $(id -u) -eq 0 ]] || die_usage "run as root"
if [[ -z $iface ]]; then
  iface=$(ip -o route get "${boxes[0]}" 2>/dev/null | sed -n 's/.* dev \([^ ]*\).*/\1/p')
  [[ -n $iface ]] || die_usage "--iface: no route to ${boxes[0]}; give the interface"
fi
ip link show dev "$iface" >/dev/null 2>&1 || die_usage "--iface: no interface '$iface' here"
if ! $tunnel && [[ -z $decap ]]; then die_usage "no sluice-decap found: give --sluice-decap PATH, or --tunnel"; fi

changed=0
quiet() { "$@" >/dev/null; }
report() { printf '%-8s %s\n' "$1" "$2"; }
apply() {  # apply WHAT COMMAND...: run it (or only say so with --dry-run)
  local what=$1; shift
  if $dry_run; then report would "$what"; return; fi
  "$@"
  report changed "$what"
  changed=$((changed + 1))
}
sysctl_set() {  # sysctl_set KEY VALUE
  local now
  now=$(sysctl -n "$1")
  if [[ $now == "$2" ]]; then report kept "$1 = $2"; else apply "$1: $now -> $2" sysctl -qw "$1=$2"; fi
}

# Decapsulation first: with the VIP on lo and no decap, the backend would
# hold a VIP nothing reaches.
if $tunnel; then
  if ! ip link show tunl0 >/dev/null 2>&1; then
    apply "loaded the ipip module (fallback device tunl0)" modprobe ipip
  fi
  ip link show tunl0 >/dev/null 2>&1 || $dry_run || { echo "backend-setup: no tunl0: this kernel has no ipip module; use sluice-decap" >&2; exit 1; }
  if grep -q '[<,]UP[,>]' <<<"$(ip link show tunl0 2>/dev/null)"; then report kept "tunl0 up"; else apply "tunl0 up" ip link set tunl0 up; fi
  sysctl_set net.ipv4.conf.tunl0.rp_filter 0
else
  args=()
  [[ -n $bpffs ]] && args+=(--bpffs "$bpffs")
  sources=()
  for box in "${boxes[@]}"; do sources+=(--source "$box"); done
  if grep -q '"attached":true' <<<"$("$decap" "${args[@]}" status "$iface" --json 2>/dev/null)"; then
    report kept "sluice-decap on $iface (run \`sluice-decap detach $iface\` first to change its sources)"
  else
    apply "sluice-decap attached to $iface, sources ${boxes[*]}" quiet "$decap" "${args[@]}" attach "$iface" "${sources[@]}"
  fi
fi

for vip in "${vips[@]}"; do
  if [[ $vip == *:* ]]; then prefix=$vip/128; else prefix=$vip/32; fi
  if grep -qw "inet6\? ${prefix}" <<<"$(ip addr show dev lo)"; then report kept "$prefix on lo"; else apply "$prefix on lo" ip addr add "$prefix" dev lo; fi
done
sysctl_set net.ipv4.conf.all.arp_ignore 1
sysctl_set net.ipv4.conf.all.arp_announce 2
sysctl_set net.ipv4.conf.all.rp_filter 2
sysctl_set "net.ipv4.conf.$iface.rp_filter" 2
$dry_run && echo "backend-setup: dry run, nothing changed" || echo "backend-setup: $changed change(s) on $(hostname) ($iface)"
