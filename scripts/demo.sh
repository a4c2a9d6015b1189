#!/usr/bin/env bash
# The whole appliance on one machine, in namespaces this script creates:
#
#   client   198.18.0.1  ─┐                      lab switch: bridge br0 and the
#   hostile  198.18.0.66 ─┤  br0 198.18.0.254    router the box sends its
#            198.18.0.99 ─┤                      encapsulated packets to
#   box      198.18.0.2  ─┤  (sluiced, one-armed)
#   b1..b3   .11 .12 .13 ─┘  (HTTP servers behind sluice-decap, VIP on lo)
#
# sluiced on the box filters (a blocklist holding 198.18.0.99, a SYN rate
# limit per source, ordered rules) and balances the VIP 198.18.1.10:80 over
# the three backends with Maglev, health-checked over HTTP; its encapsulated
# packets are routed by the forward stage (a route via the lab's router); the
# backends answer the client directly. The client makes real HTTP connections to the
# VIP, the blocked address tries too, and the hostile client sends a
# bounded SYN flood. Shown live with `sluicectl top`, or, with --duration,
# run unattended and summed up.
#
#   scripts/demo.sh [--duration SECONDS] [--keep] [--summary FILE] [--no-setup]
#
# Root only. Everything it makes (namespaces, pins, processes, files) carries
# this run's pid and is removed on exit, on Ctrl-C and on failure; --keep
# leaves the lab up and prints how to explore it and how to remove it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
duration=0
keep=false
setup=true
summary_file=
usage() { echo "usage: scripts/demo.sh [--duration SECONDS] [--keep] [--summary FILE] [--no-setup]" >&2; exit 2; }
while (($#)); do
  case $1 in
    --duration)
      [[ ${2:-} =~ ^[1-9][0-9]{0,4}$ ]] || { echo "demo: --duration: '${2:-}' is not a number of seconds 1..99999" >&2; exit 2; }
      duration=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    --summary) [[ -n ${2:-} ]] || usage; summary_file=$2; shift 2 ;;
    --no-setup) setup=false; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (namespaces, XDP, bpffs)" >&2; exit 2; }
if [[ $duration -eq 0 && ! -t 1 ]]; then
  echo "demo: stdout is not a terminal: give --duration SECONDS to run unattended" >&2
  exit 2
fi

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# ---- 1. what it needs, and the build ----
if $setup; then
  say "installing what is missing (scripts/setup.sh)"
  "$root/scripts/setup.sh"
fi
build=${SLUICE_BUILD_DIR:-$root/build}
sluiced=$build/control/sluiced
sluicectl=$build/control/cli/sluicectl
decap=$build/control/decap/sluice-decap
if [[ ! -x $sluiced || ! -x $sluicectl || ! -x $decap ]]; then
  say "building sluiced, sluicectl and sluice-decap in $build"
  [[ -f $build/build.ninja ]] || cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$build" sluiced sluicectl sluice-decap >/dev/null
fi
mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700 bpf /sys/fs/bpf

# ---- 2. the lab ----
id=$$
work=$(mktemp -d "/tmp/sluice-demo-$id.XXXXXX")
pins=/sys/fs/bpf/sluice-demo-$id
ns_sw=sd-sw-$id ns_client=sd-cl-$id ns_hostile=sd-ho-$id ns_box=sd-box-$id
backends=(1 2 3)
pids=()          # traffic and timers: ended when the run ends
server_pids=()   # the backends' HTTP servers: kept up with --keep
sluiced_pid=

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if $keep && [[ $status -eq 0 ]]; then return; fi
  say "cleaning up"
  for pid in "${pids[@]}" "${server_pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
  if [[ -n $sluiced_pid ]]; then
    "$sluicectl" --socket "$work/sluice.sock" --timeout 5 shutdown --detach >/dev/null 2>&1 || true
    for _ in $(seq 50); do kill -0 "$sluiced_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$sluiced_pid" 2>/dev/null || true
  fi
  for ns in "$ns_sw" "$ns_client" "$ns_hostile" "$ns_box" "${backends[@]/#/sd-b}"; do
    [[ $ns == sd-b? ]] && ns=$ns-$id
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$pins" "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
plug() {  # plug NS IFNAME ADDRESS: a veth from NS to the switch's bridge
  local ns=$1 ifname=$2 address=$3 port=p${2}
  ip link add "$ifname" netns "$ns" type veth peer name "$port" netns "$ns_sw"
  in_ns "$ns_sw" ip link set "$port" master br0 up
  in_ns "$ns" ip addr add "$address/24" dev "$ifname"
  in_ns "$ns" ip link set "$ifname" up
  in_ns "$ns" ip link set lo up
}

say "creating the lab (namespaces *-$id)"
mkdir -m 0700 "$pins"
for ns in "$ns_sw" "$ns_client" "$ns_hostile" "$ns_box"; do ip netns add "$ns"; done
in_ns "$ns_sw" ip link add br0 type bridge
in_ns "$ns_sw" ip link set br0 up
in_ns "$ns_sw" ip addr add 198.18.0.254/24 dev br0
in_ns "$ns_sw" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.br0.send_redirects=0
plug "$ns_client" dc$id 198.18.0.1
plug "$ns_hostile" dh$id 198.18.0.66
in_ns "$ns_hostile" ip addr add 198.18.0.99/24 dev dh$id   # the blocklisted address
plug "$ns_box" dx$id 198.18.0.2
vip=198.18.1.10
for host in "$ns_client" "$ns_hostile"; do in_ns "$host" ip route add $vip/32 via 198.18.0.2; done

cat >"$work/server.py" <<'EOF'
import socket, sys
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
name = sys.argv[1]
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = (name + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    def handle_error(self, request, client_address):
        pass
Server(("0.0.0.0", 80), Handler).serve_forever()
EOF
for i in "${backends[@]}"; do
  ns=sd-b$i-$id
  ip netns add "$ns"
  plug "$ns" db$i$id 198.18.0.1$i
  # Direct server return, as an operator prepares a real backend: sluice-decap,
  # the VIP on lo, ARP only for the own address, loose rp_filter.
  in_ns "$ns" "$root/scripts/backend-setup.sh" --vip $vip --box 198.18.0.2 --iface db$i$id \
    --sluice-decap "$decap" --bpffs "$pins/decap" >"$work/backend-setup-b$i.log"
  setsid nsenter --net="/run/netns/$ns" python3 "$work/server.py" b$i >/dev/null 2>&1 &
  server_pids+=($!)
  disown
done
router_mac=$(ip -n "$ns_sw" -br link show br0 | awk '{print $3}')

# ---- 3. sluiced with the demo's desired state ----
cat >"$work/demo.yaml" <<EOF
interfaces:
  - {name: dx$id, mode: skb}
prefix_lists:
  block:
    - 198.18.0.99/32
limits:
  - {class: syn, pps: 100, burst: 50}
rules:
  # Ordered: first match wins. New connections are rate-limited per source,
  # ssh to the VIP is refused, the VIP's web traffic passes.
  - {priority: 10, proto: tcp, tcp_flags: "syn,!ack", action: rate-limit, rate_class: syn}
  - {priority: 20, proto: tcp, dst: $vip/32, dport: 22, action: drop}
  - {priority: 30, proto: tcp, dst: $vip/32, dport: 80, action: pass}
lb:
  settings:
    encap_source_v4: 198.18.0.2
    # The encapsulated packets go on to the forward stage, which routes them
    # by their outer destination (the backends' /24, via the lab's router).
    egress: forward
  vips:
    - vip: $vip:80/tcp
      check: {type: http, port: 80, path: /, interval_ms: 500, timeout_ms: 300, rise: 1, fall: 2}
      backends:
        - {address: 198.18.0.11}
        - {address: 198.18.0.12}
        - {address: 198.18.0.13}
forward:
  settings: {no_route: pass}
  routes:
    - {prefix: 198.18.0.0/24, via: 198.18.0.254, dev: dx$id, mac: "$router_mac"}
    - {prefix: 198.18.0.2/32, to_stack: true}
EOF
say "starting sluiced on the box with $work/demo.yaml"
nsenter --net="/run/netns/$ns_box" "$sluiced" --config "$work/demo.yaml" --socket "$work/sluice.sock" \
  --bpffs "$pins/sluiced" --state-dir "$work/state" --metrics 127.0.0.1:9630 --log-level warn \
  >"$work/sluiced.log" 2>&1 &
sluiced_pid=$!
ctl() { "$sluicectl" --socket "$work/sluice.sock" "$@"; }
for _ in $(seq 100); do [[ -S $work/sluice.sock ]] && ctl status >/dev/null 2>&1 && break; sleep 0.1; done
ctl status >/dev/null || { cat "$work/sluiced.log" >&2; echo "demo: sluiced did not come up" >&2; exit 1; }
ctl config set --drop-sample-every 1 >/dev/null
say "waiting for the backends' health checks"
for _ in $(seq 100); do
  [[ $(ctl --json backend list "$vip:80/tcp" | grep -o '"health":"up"' | wc -l) -eq 3 ]] && break
  sleep 0.1
done

# ---- 4. traffic, every loop bounded in count and time ----
cat >"$work/synflood.py" <<'EOF'
# A bounded SYN flood from one source: COUNT raw TCP SYNs at RATE per second.
import random, socket, struct, sys, time
src, dst, port, count, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def checksum(data):
    if len(data) % 2: data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, 20)
for i in range(count):
    sport = random.randint(1024, 65535)
    header = struct.pack("!HHIIBBHHH", sport, port, random.getrandbits(32), 0, 5 << 4, 0x02, 65535, 0, 0)
    header = header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]
    sock.sendto(header, (dst, 0))
    time.sleep(1.0 / rate)
EOF
run_for=${duration:-0}
((run_for > 0)) || run_for=3600   # interactive: until top ends (bounded all the same)
end=$((SECONDS + run_for))
# The client: batches of 20 fresh connections, one batch a second.
(
  while ((SECONDS < end)); do
    in_ns "$ns_client" curl -s --max-time 2 -H 'Connection: close' -w '%{http_code}\n' "http://$vip/[1-20]" || true
    sleep 1
  done
) >"$work/client.log" 2>/dev/null &
pids+=($!)
disown
# The blocked address: one attempt a second, all refused by the blocklist.
(
  while ((SECONDS < end)); do
    in_ns "$ns_hostile" curl -s --interface 198.18.0.99 --max-time 1 -o /dev/null -w '%{http_code}\n' "http://$vip/" || true
    sleep 1
  done
) >"$work/blocked.log" 2>/dev/null &
pids+=($!)
disown
# The hostile client: 1,000 SYNs a second for the run, at most 100,000.
flood=$((run_for * 1000 < 100000 ? run_for * 1000 : 100000))
setsid nsenter --net="/run/netns/$ns_hostile" timeout "$run_for" python3 "$work/synflood.py" 198.18.0.66 $vip 80 $flood 1000 \
  >/dev/null 2>&1 &
pids+=($!)
disown

if ((duration == 0)); then
  say "live view: sluicectl top (q quits; the demo then cleans up, or keeps the lab with --keep)"
  ctl top || true
else
  say "running unattended for $duration s"
  # In the background and waited for: a signal ends the wait at once (a trap runs only between commands).
  sleep "$duration" &
  pids+=($!)
  wait $!
fi
sleep 1

# ---- 5. the summary ----
made=$(grep -c '^b[123]$' "$work/client.log" || true)
failed=$(grep -c '^000$' "$work/client.log" || true)
blocked_ok=$(grep -c '^200$' "$work/blocked.log" || true)
blocked_tries=$(grep -c . "$work/blocked.log" || true)
stats=$(ctl --json stats)
count_of() {  # count_of VERDICT REASON: packets of that counter
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(sum(c["packets"] for c in d["counters"] if c["verdict"]==sys.argv[2] and c["reason"]==sys.argv[3]))' "$stats" "$1" "$2"
}
routed_of() {  # packets the forward stage routed, whatever their verdict
  python3 -c 'import json,sys; print(sum(c["packets"] for c in json.loads(sys.argv[1])["counters"] if c["reason"] == "fwd_routed"))' "$stats"
}
{
  echo "sluice demo: $duration s, lab *-$id"
  echo "connections to $vip:80 made: $made, failed: $failed"
  for i in "${backends[@]}"; do
    n=$(grep -c "^b$i\$" "$work/client.log" || true)
    echo "  backend 198.18.0.1$i (b$i): $n ($(( made ? 100 * n / made : 0 ))%)"
  done
  echo "blocked source 198.18.0.99: $blocked_tries tries, $blocked_ok answered"
  echo "routed by the forward stage (encapsulated, to the router): $(routed_of)"
  echo "drops by reason:"
  python3 -c 'import json,sys
for c in json.loads(sys.argv[1])["counters"]:
    if c["verdict"] == "drop" and c["packets"]: print("  %-28s %d" % (c["reason"], c["packets"]))' "$stats"
} | tee "$work/summary.txt"
if [[ -n $summary_file ]]; then
  python3 - "$summary_file" "$id" "$made" "$failed" "$blocked_tries" "$blocked_ok" "$stats" \
    "$(grep -c '^b1$' "$work/client.log" || true)" "$(grep -c '^b2$' "$work/client.log" || true)" \
    "$(grep -c '^b3$' "$work/client.log" || true)" <<'EOF'
import json, sys
path, run_id, made, failed, tries, answered, stats = sys.argv[1:8]
shares = {"b1": int(sys.argv[8]), "b2": int(sys.argv[9]), "b3": int(sys.argv[10])}
counters = json.loads(stats)["counters"]
drops = {c["reason"]: c["packets"] for c in counters if c["verdict"] == "drop" and c["packets"]}
routed = sum(c["packets"] for c in counters if c["reason"] == "fwd_routed")
json.dump({"id": int(run_id), "connections": int(made), "failed": int(failed), "backends": shares,
           "blocked_tries": int(tries), "blocked_answered": int(answered), "drops": drops, "routed": routed},
          open(path, "w"))
EOF
fi

if $keep; then
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
  cat >&2 <<EOF
The lab stays up (--keep). Explore it:
  $sluicectl --socket $work/sluice.sock status     (or top, vip list, backend list $vip:80/tcp, stats)
  nsenter --net=/run/netns/$ns_client curl http://$vip/
Remove it:
  $sluicectl --socket $work/sluice.sock shutdown --detach
  kill ${server_pids[*]}    # the backends' HTTP servers
  for ns in $ns_sw $ns_client $ns_hostile $ns_box sd-b1-$id sd-b2-$id sd-b3-$id; do ip netns del \$ns; done
  rm -rf $pins $work
EOF
fi
