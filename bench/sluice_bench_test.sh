#!/usr/bin/env bash
# sluice-bench end to end. 1: --quick over the real sections writes a table,
# a run JSON whose every section is a valid report with ratios, and one PNG
# per scaling curve. 2: over broken sections (garbage, a failing exit, a
# hang past no deadline is not waited for here) it reports each by name,
# exits 1, and still merges the good ones. 3: usage errors exit 2. 4: killed
# mid-run (SIGKILL: no cleanup of its own), it leaves no section and no
# sluiced running, checked by pid.
# Usage: sluice_bench_test.sh SLUICE_BENCH. Root only (77: skipped).
set -euo pipefail
bench=$1
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (BPF_PROG_TEST_RUN)"; exit 77; }
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot not installed (scripts/setup.sh)"; exit 77; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench-test.$$.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# ---- 1. the real sections, quick ----
if ! "$bench" --quick --json "$scratch/run.json" --plots "$scratch/plots" >"$scratch/table.txt" 2>"$scratch/progress.txt"; then
  cat "$scratch/table.txt" "$scratch/progress.txt" >&2
  fail "sluice-bench --quick failed"
fi
cat "$scratch/table.txt"
for section in pipeline dir24_8 filter lb forward pps control; do
  grep -q "^== $section ==" "$scratch/table.txt" || fail "no $section table"
  grep -q "\] $section done in" "$scratch/progress.txt" || fail "no progress line for $section"
done
grep -q "^sluice-bench --quick .* kernel .*bpf_jit_enable" "$scratch/table.txt" || fail "the machine is not stated"
python3 - "$scratch/run.json" <<'PY' || failures=$((failures + 1))
import json, sys
run = json.load(open(sys.argv[1]))
problems = []
if run["schema"] != "sluice-bench-run/1": problems.append("schema %r" % run["schema"])
if run["failures"]: problems.append("failures: %s" % run["failures"])
names = [s["section"] for s in run["sections"]]
if names != ["pipeline", "dir24_8", "filter", "lb", "forward", "pps", "control"]: problems.append("sections %s" % names)
for s in run["sections"]:
    if not s["figures"]: problems.append("%s: no figures" % s["section"])
    for f in s["figures"]:
        if f["unit"] == "ns/packet" and ("ratio" not in f or "baseline_value" not in f):
            problems.append("%s/%s: no ratio" % (s["section"], f["name"]))
        if f["value"]["median"] <= 0: problems.append("%s/%s: median %s" % (s["section"], f["name"], f["value"]["median"]))
if run["machine"]["pinned_cpu"] < 0: problems.append("not pinned")
for p in problems: print("FAIL: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
pngs=("$scratch"/plots/*.png)
((${#pngs[@]} >= 3)) || fail "expected a plot per curve (rules, prefixes, vips, routes), got: ${pngs[*]}"
for png in "${pngs[@]}"; do
  [[ $(head -c 8 "$png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fail "$png is not a PNG"
  [[ -f ${png%.png}.gp ]] || fail "no script beside $png"
done

# ---- 2. broken sections: each named, the good one merged, exit 1 ----
fake=$scratch/fake
mkdir "$fake"
good=$(python3 - <<'PY'
import json
spread = {"min": 10, "q1": 10, "median": 10, "q3": 10, "max": 10, "samples": 1}
print(json.dumps({"schema": "sluice-bench/1", "section": "lb",
  "machine": {"cpu_model": "fake", "pinned_cpu": 0, "kernel": "k", "clang": "c", "bpf_jit_enable": 1,
              "bpf_jit_harden": 0, "possible_cpus": 2},
  "figures": [{"section": "lb", "group": "g", "name": "fake path", "unit": "ns/packet", "value": spread,
               "baseline": "empty XDP_DROP", "ratio": spread, "baseline_value": spread}]}))
PY
)
printf '#!/bin/sh\necho "not json"\n' >"$fake/pipeline_bench"
printf '#!/bin/sh\necho "no bpf here" >&2\nexit 3\n' >"$fake/dir24_8_bench"
printf '#!/bin/sh\necho %s\n' "'$(sed 's/"section": "lb"/"section": "forward"/g' <<<"$good")'" >"$fake/filter_bench"
printf '#!/bin/sh\necho %s\n' "'$good'" >"$fake/lb_bench"
printf '#!/bin/sh\nkill -9 $$\n' >"$fake/forward_bench"
printf '#!/bin/sh\nexit 0\n' >"$fake/pps_bench"
printf '#!/bin/sh\nexit 0\n' >"$fake/control_bench"
chmod +x "$fake"/*
status=0
"$bench" --section-dir "$fake" --json "$scratch/broken.json" >"$scratch/broken.txt" 2>&1 || status=$?
[[ $status -eq 1 ]] || fail "broken sections: exit $status, expected 1"
grep -q "FAILED pipeline: its report is not a section report" "$scratch/broken.txt" || fail "garbage not named: $(cat "$scratch/broken.txt")"
grep -q "FAILED dir24_8: exit 3: no bpf here" "$scratch/broken.txt" || fail "exit 3 not named with its stderr"
grep -q "FAILED filter: its report is not a section report" "$scratch/broken.txt" || fail "a report of another section was taken"
grep -q "FAILED forward: killed by signal 9" "$scratch/broken.txt" || fail "a killed section not named"
grep -q "fake path" "$scratch/broken.txt" || fail "the good section was not merged"
grep -q "FAILED pps: its report is not a section report" "$scratch/broken.txt" || fail "an empty report was taken"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert [s["section"] for s in r["sections"]]==["lb"], r; assert len(r["failures"])==6, r' \
  "$scratch/broken.json" || fail "broken run's JSON"

# ---- 3. usage errors ----
for bad in "--sections nope" "--only (" "--cpu -1" "--rounds 0"; do
  status=0
  "$bench" $bad >/dev/null 2>&1 || status=$?
  [[ $status -eq 2 ]] || fail "'$bad' exited $status, expected 2"
done

# ---- 4. killed mid-run: its section and that section's sluiced die with it ----
descendants() {
  local child
  for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}
# Alive: a /proc entry that is not a zombie (an orphan's reaper may be slow) and still runs that program.
alive() { [[ -r /proc/$1/stat && $(cut -d' ' -f3 /proc/"$1"/stat 2>/dev/null) != Z && $(cat /proc/"$1"/comm 2>/dev/null) == "$2" ]]; }
"$bench" --quick --sections control >/dev/null 2>"$scratch/killed.txt" &
runner=$!
control_pid="" sluiced_pid=""
for _ in $(seq 400); do  # 20 s for sluiced to start
  for pid in $(descendants "$runner"); do
    case $(cat /proc/"$pid"/comm 2>/dev/null) in
      control_bench) control_pid=$pid ;;
      sluiced) sluiced_pid=$pid ;;
    esac
  done
  [[ -n $sluiced_pid ]] && break
  sleep 0.05
done
kill -9 "$runner"
wait "$runner" 2>/dev/null || true
if [[ -z $control_pid || -z $sluiced_pid ]]; then
  fail "killed run: no control_bench ($control_pid) and sluiced ($sluiced_pid) seen under sluice-bench"
else
  for _ in $(seq 100); do  # 5 s for the death signals to land
    alive "$control_pid" control_bench || alive "$sluiced_pid" sluiced || break
    sleep 0.05
  done
  alive "$control_pid" control_bench && { fail "control_bench (pid $control_pid) outlived sluice-bench"; kill -9 "$control_pid"; }
  alive "$sluiced_pid" sluiced && { fail "sluiced (pid $sluiced_pid) outlived sluice-bench"; kill -9 "$sluiced_pid"; }
  # SIGKILL let nobody clean up: the section's pins and directory are removed here, by its pid.
  rm -rf "/sys/fs/bpf/sluice-control-bench-$control_pid" "${TMPDIR:-/tmp}/sluice-control-bench.$control_pid"
fi

((failures == 0)) || { echo "$failures failure(s)" >&2; exit 1; }
echo "sluice_bench_test: ok"
