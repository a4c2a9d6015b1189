#!/usr/bin/env bash
# Prefix lists at scale through sluiced (issue 8), end to end:
#   - sluicectl block load of 1,000,000 IPv4 prefixes (streamed, one load)
#   - block.add of 1,000 prefixes into the 1,000,000-prefix list (ROUNDS times)
#   - a restart at 1,000,000 prefixes (SIGTERM, start, until status answers)
# Wall time and the daemon's CPU time (utime+stime) for each; min/median/max
# over the rounds of the block.add. Not part of the test suite (needs root,
# bpffs, ~1 GiB of memory and a minute).
#   bench/block_bench.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=${1:-build}
rounds=${2:-5}
sluiced=$build/control/sluiced
sluicectl=$build/control/cli/sluicectl
work=$(mktemp -d /tmp/sluice-block-bench.XXXXXX)
pins=/sys/fs/bpf/sluice-block-bench-$$
chmod 700 "$work"
mkdir -m 700 "$work/state" "$work/run"
sock=$work/run/sluice.sock
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    "$sluicectl" --socket "$sock" shutdown --detach >/dev/null 2>&1 || kill "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$pins" "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$pid/stat"; }
start() {
  "$sluiced" --socket "$sock" --bpffs "$pins" --metrics off --state-dir "$work/state" >>"$work/sluiced.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do "$sluicectl" --socket "$sock" status >/dev/null 2>&1 && return; sleep 0.1; done
  echo "sluiced did not start:"; cat "$work/sluiced.log"; exit 1
}
# 1,000,000 distinct /24s (1.0.0.0/24 ...), every 7th passes.
awk 'BEGIN { for (i = 0; i < 1000000; ++i) printf "%d.%d.%d.0/24%s\n", 1 + int(i / 65536), int(i / 256) % 256, i % 256, (i % 7 ? "" : " pass") }' >"$work/million.txt"

start
t0=$(now); c0=$(cpu)
"$sluicectl" --socket "$sock" block load "$work/million.txt" >/dev/null
t1=$(now); c1=$(cpu)
printf "block load 1,000,000 IPv4 prefixes: %.2f s wall, %.2f s daemon CPU (%s bytes)\n" \
  "$(echo "$t1 - $t0" | bc)" "$(echo "$c1 - $c0" | bc)" "$(stat -c %s "$work/million.txt")"

declare -a adds
for r in $(seq 1 "$rounds"); do
  # 1,000 new /25s under 100.64.0.0/10 per round; a status probe runs alongside.
  args=$(awk -v r="$r" 'BEGIN { for (i = 0; i < 1000; ++i) printf "100.%d.%d.%d/26 ", 64 + r, int(i / 4), (i % 4) * 64 }')
  t0=$(now)
  # shellcheck disable=SC2086
  "$sluicectl" --socket "$sock" block add $args >/dev/null &
  add=$!
  p0=$(now); "$sluicectl" --socket "$sock" status >/dev/null; p1=$(now)
  wait "$add"
  t1=$(now)
  adds+=("$(echo "($t1 - $t0) * 1000" | bc)")
  printf "block.add 1,000 into 1,00%d,000: %.1f ms wall (status alongside answered in %.1f ms)\n" \
    "$((r - 1))" "$(echo "($t1 - $t0) * 1000" | bc)" "$(echo "($p1 - $p0) * 1000" | bc)"
done
printf "block.add 1,000: min/median/max %s ms\n" \
  "$(printf '%s\n' "${adds[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f/%.1f/%.1f", v[1], v[int((NR + 1) / 2)], v[NR] }')"
ls -l "$work/state" | awk 'NR > 1 { print "  state dir:", $5, $9 }'

kill -TERM "$pid"; wait "$pid" || true
t0=$(now)
start
t1=$(now)
printf "restart at %s prefixes: %.2f s wall until status answers, %.2f s daemon CPU\n" \
  "$("$sluicectl" --socket "$sock" --json status | sed 's/.*"prefixes":\([0-9]*\).*/\1/')" "$(echo "$t1 - $t0" | bc)" "$(cpu)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
