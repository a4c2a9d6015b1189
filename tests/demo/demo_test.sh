#!/usr/bin/env bash
# scripts/demo.sh end to end, as an operator runs it unattended:
# `--duration 20` balances real connections over the three backends, drops
# the blocklisted source and rate-limits the hostile client's SYN flood (its
# summary and sluicectl's counters say so), and leaves nothing behind; a
# demo interrupted with Ctrl-C (SIGINT) mid-run cleans up just the same.
# Usage: demo_test.sh SOURCE_DIR BUILD_DIR. Root only (exit 77: skipped).
set -euo pipefail
source_dir=$1
build_dir=$2
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (namespaces, XDP)"; exit 77; }
command -v python3 >/dev/null && command -v curl >/dev/null || { echo "SKIP: needs python3 and curl"; exit 77; }
export SLUICE_BUILD_DIR=$build_dir
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sluice-demo-test.$$.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Nothing of run ID is left: namespaces, pins, processes, files.
nothing_left() {
  local id=$1 what=$2
  grep -q -- "-$id\b" <<<"$(ip netns list)" && fail "$what: namespaces left: $(ip netns list | grep -- "-$id")"
  [[ -e /sys/fs/bpf/sluice-demo-$id ]] && fail "$what: pins left in /sys/fs/bpf/sluice-demo-$id"
  compgen -G "/tmp/sluice-demo-$id.*" >/dev/null && fail "$what: work dir left: $(compgen -G "/tmp/sluice-demo-$id.*")"
  local pid
  for pid in /proc/[0-9]*; do
    if grep -q "sluice-demo-$id" <<<"$(tr '\0' ' ' <"$pid/cmdline" 2>/dev/null)"; then
      fail "$what: process left: ${pid#/proc/} $(tr '\0' ' ' <"$pid/cmdline")"
    fi
  done
  return 0
}

# ---- unattended, 20 s ----
summary=$scratch/summary.json
if ! timeout 180 "$source_dir/scripts/demo.sh" --duration 20 --no-setup --summary "$summary" >"$scratch/demo.log" 2>&1; then
  cat "$scratch/demo.log" >&2
  fail "demo.sh --duration 20 failed"
fi
cat "$scratch/demo.log"
if [[ -f $summary ]]; then
  python3 - "$summary" <<'PY' || failures=$((failures + 1))
import json, sys
s = json.load(open(sys.argv[1]))
problems = []
if s["connections"] < 100: problems.append("only %d connections to the VIP" % s["connections"])
if s["failed"] != 0: problems.append("%d connections failed" % s["failed"])
for name, n in s["backends"].items():
    if n < 0.15 * s["connections"]: problems.append("backend %s took %d of %d: not balanced" % (name, n, s["connections"]))
if s["blocked_tries"] < 3 or s["blocked_answered"] != 0:
    problems.append("blocked source: %d tries, %d answered" % (s["blocked_tries"], s["blocked_answered"]))
if s["drops"].get("filter_blocklist", 0) < s["blocked_tries"]:
    problems.append("filter_blocklist drops %d < %d tries" % (s["drops"].get("filter_blocklist", 0), s["blocked_tries"]))
if s["routed"] < s["connections"]:
    problems.append("the forward stage routed %d packets for %d connections" % (s["routed"], s["connections"]))
if s["drops"].get("filter_rate_limited", 0) < 5000:
    problems.append("the SYN flood was not rate limited: %s" % s["drops"])
for p in problems: print("FAIL: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
  nothing_left "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$summary")" "after --duration"
else
  fail "no summary written"
fi

# ---- interrupted mid-run ----
# Job control on, so the demo runs in a process group of its own with SIGINT
# not ignored (a plain `&` job would ignore it), as in a terminal.
set -m
"$source_dir/scripts/demo.sh" --duration 60 --no-setup >"$scratch/interrupted.log" 2>&1 &
demo=$!
set +m
up=false
for _ in $(seq 300); do
  grep -q "running unattended" "$scratch/interrupted.log" && { up=true; break; }
  kill -0 "$demo" 2>/dev/null || break
  sleep 0.1
done
$up || { cat "$scratch/interrupted.log" >&2; fail "the second demo never got running"; }
sleep 2
kill -INT -- "-$demo"   # what Ctrl-C does: SIGINT to the foreground process group
status=0
wait "$demo" || status=$?
[[ $status -eq 130 ]] || { cat "$scratch/interrupted.log" >&2; fail "interrupted demo exited $status, expected 130"; }
grep -q "cleaning up" "$scratch/interrupted.log" || fail "the interrupted demo did not clean up"
nothing_left "$demo" "after SIGINT"

# ---- --keep: the lab stays up and serves; its printed commands remove it ----
if timeout 120 "$source_dir/scripts/demo.sh" --duration 3 --keep --no-setup >"$scratch/keep.log" 2>&1; then
  kept_id=$(sed -n 's/.*lab \*-\([0-9]*\)$/\1/p' "$scratch/keep.log" | head -1)
  [[ -n $kept_id ]] || fail "no lab id in the --keep output"
  answer=$(nsenter --net="/run/netns/sd-cl-$kept_id" curl -s --max-time 3 http://198.18.1.10/ || true)
  [[ $answer =~ ^b[123]$ ]] || fail "the kept lab does not serve the VIP: '$answer'"
  sed -n '/^Remove it:$/,$p' "$scratch/keep.log" | tail -n +2 >"$scratch/remove.sh"
  bash "$scratch/remove.sh" >/dev/null 2>&1 || fail "the printed removal failed: $(cat "$scratch/remove.sh")"
  nothing_left "$kept_id" "after --keep and its removal"
else
  cat "$scratch/keep.log" >&2
  fail "demo.sh --keep failed"
fi

# ---- bad arguments create nothing ----
status=0
"$source_dir/scripts/demo.sh" --duration 0x10 --no-setup >"$scratch/bad.log" 2>&1 || status=$?
[[ $status -eq 2 ]] || fail "--duration 0x10 exited $status, expected 2"
grep -q "duration: '0x10'" "$scratch/bad.log" || fail "the error does not name the value: $(cat "$scratch/bad.log")"

((failures == 0)) || { echo "$failures failure(s)" >&2; exit 1; }
echo "demo_test: ok"
