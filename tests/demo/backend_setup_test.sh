#!/usr/bin/env bash
# scripts/backend-setup.sh in a namespace of its own: it attaches
# sluice-decap, puts the VIPs on lo and sets ARP and rp_filter, reporting
# each change; a second run changes nothing; --dry-run and bad arguments
# change nothing. Usage: backend_setup_test.sh SOURCE_DIR BUILD_DIR. Root only (77: skipped).
set -euo pipefail
source_dir=$1
build_dir=$2
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root"; exit 77; }
id=$$
ns=sbs-$id
pins=/sys/fs/bpf/sluice-bs-test-$id
decap=$build_dir/control/decap/sluice-decap
setup=$source_dir/scripts/backend-setup.sh
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$pins"; }
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700 bpf /sys/fs/bpf
mkdir -m 0700 "$pins"
ip netns add "$ns"
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
in_ns ip link add bs0 type veth peer name bs1
in_ns ip addr add 198.18.0.11/24 dev bs0
in_ns ip link set bs0 up
in_ns ip link set bs1 up
common=(--vip 198.18.1.10 --vip 2001:db8:1::10 --box 198.18.0.2 --sluice-decap "$decap" --bpffs "$pins")

# Bad arguments: exit 2, the value named, nothing changed.
for bad in "--vip 198.18.1.300" "--box nothere" "--iface ../x" "--frobnicate"; do
  status=0
  out=$(in_ns "$setup" --vip 198.18.1.10 --box 198.18.0.2 --sluice-decap "$decap" $bad 2>&1) || status=$?
  [[ $status -eq 2 ]] || fail "'$bad' exited $status, expected 2"
  word=${bad#* }
  [[ $out == *"$word"* ]] || fail "'$bad': the error does not name '$word': $out"
done
[[ $(in_ns sysctl -n net.ipv4.conf.all.arp_ignore) == 0 ]] || fail "a refused run changed arp_ignore"

# --dry-run: says what it would do, does nothing.
out=$(in_ns "$setup" "${common[@]}" --dry-run)
[[ $out == *"would    198.18.1.10/32 on lo"* ]] || fail "dry run: $out"
grep -q 198.18.1.10 <<<"$(in_ns ip addr show dev lo)" && fail "dry run put the VIP on lo"

# The real run: every change reported and made.
out=$(in_ns "$setup" "${common[@]}")
echo "$out"
for line in "changed  sluice-decap attached to bs0" "changed  198.18.1.10/32 on lo" "changed  2001:db8:1::10/128 on lo" \
            "changed  net.ipv4.conf.all.arp_ignore: 0 -> 1" "changed  net.ipv4.conf.bs0.rp_filter"; do
  [[ $out == *"$line"* ]] || fail "missing '$line'"
done
grep -q "198.18.1.10/32" <<<"$(in_ns ip addr show dev lo)" || fail "VIP not on lo"
grep -q "2001:db8:1::10/128" <<<"$(in_ns ip -6 addr show dev lo)" || fail "IPv6 VIP not on lo"
[[ $(in_ns sysctl -n net.ipv4.conf.all.arp_announce) == 2 ]] || fail "arp_announce"
[[ $(in_ns sysctl -n net.ipv4.conf.bs0.rp_filter) == 2 ]] || fail "rp_filter on bs0"
grep -q '"attached":true' <<<"$(in_ns "$decap" --bpffs "$pins" status bs0 --json)" || fail "sluice-decap not attached"
grep -q '"198.18.0.2' <<<"$(in_ns "$decap" --bpffs "$pins" status bs0 --json)" || fail "sluice-decap does not take the box's source"

# Again: nothing to change.
out=$(in_ns "$setup" "${common[@]}")
[[ $out == *"0 change(s)"* ]] || fail "second run changed something: $out"
[[ $out != *changed* ]] || fail "second run reports changes: $out"

((failures == 0)) || { echo "$failures failure(s)" >&2; exit 1; }
echo "backend_setup_test: ok"
