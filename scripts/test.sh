#!/usr/bin/env bash
# The test command: set up a fresh machine, configure, build, run every test.
# With CI=true a skipped privileged test is a failure (tests/support/privileges.hpp),
# and this script checks ctest's summary for skips as a second line of defence.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${SLUICE_BUILD_DIR:-$repo/build}
jobs=$(nproc)

"$repo/scripts/setup.sh"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j "$jobs"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
(cd "$build" && ctest --output-on-failure -j "$jobs" --timeout 900) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# ctest marks a skipped test "***Skipped" (and one it could not start "***Not Run").
skip_marker='\*\*\*(Skipped|Not Run)'
if [[ "${CI:-}" == "true" ]] && grep -Eq "$skip_marker" "$log"; then
  echo "test.sh: tests were skipped under CI=true:" >&2
  grep -E "$skip_marker" "$log" >&2
  exit 1
fi
exit "$status"
