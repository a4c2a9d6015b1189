#!/bin/sh
# The entry program's tail calls are inline asm (pipeline.h,
# TAIL_CALL_CONSTANT_SLOT). The next stage reads the per-CPU parse slot this
# program wrote just before the call, so each such asm must tell the compiler
# it touches memory: without "memory" in its clobbers, clang may keep those
# stores in registers or sink them past a call that never returns. This
# checks the compiler's own view (the LLVM IR of sluice.bpf.c), where a
# missing clobber shows whatever the optimiser happened to do this time.
# Usage: tail_call_clobber_test.sh CLANG SOURCE CFLAGS...
set -eu
clang=$1
source=$2
shift 2
ir=$("$clang" "$@" -S -emit-llvm -o - "$source")
tail_calls=$(printf '%s\n' "$ir" | grep 'asm sideeffect' | grep -c 'call 12' || true)
if [ "$tail_calls" -lt 3 ]; then
  echo "FAIL: expected the entry program's 3 tail calls as inline asm, found $tail_calls"
  exit 1
fi
unclobbered=$(printf '%s\n' "$ir" | grep 'asm sideeffect' | grep 'call 12' | grep -vc '~{memory}' || true)
if [ "$unclobbered" -ne 0 ]; then
  echo "FAIL: $unclobbered of $tail_calls tail-call asm statements lack the \"memory\" clobber:"
  printf '%s\n' "$ir" | grep 'asm sideeffect' | grep 'call 12' | grep -v '~{memory}'
  exit 1
fi
echo "ok: $tail_calls tail-call asm statements, each clobbering memory"
