#!/usr/bin/env bash
# The sluice .deb, end to end without installing it on this machine: cpack
# builds it from the build tree, dpkg-deb reads its control data and
# contents, dpkg -x unpacks it into a scratch root, and the checks run there.
# Usage: deb_test.sh BUILD_DIR VERSION. Needs no root.
set -euo pipefail

build_dir=$1
version=$2
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sluice-deb-test.$$.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
need() { command -v "$1" >/dev/null || { echo "FAIL: $1 not found (dpkg-dev, cmake)" >&2; exit 1; }; }
need cpack; need dpkg-deb; need dpkg; need gzip

# ---- build once ----
if ! cpack -G DEB --config "$build_dir/CPackConfig.cmake" -B "$scratch/out" >"$scratch/cpack.log" 2>&1; then
  cat "$scratch/cpack.log" >&2
  echo "FAIL: cpack" >&2
  exit 1
fi
shopt -s nullglob
debs=("$scratch"/out/sluice_*.deb)
((${#debs[@]} == 1)) || { echo "FAIL: expected one sluice_*.deb, got: ${debs[*]:-none}" >&2; exit 1; }
deb=${debs[0]}
arch=$(dpkg --print-architecture)
[[ $(basename "$deb") == "sluice_${version}_${arch}.deb" ]] || fail "file name $(basename "$deb"), want sluice_${version}_${arch}.deb"

# ---- control data ----
field() { dpkg-deb --field "$deb" "$1"; }
[[ $(field Package) == sluice ]] || fail "Package: $(field Package)"
[[ $(field Version) == "$version" ]] || fail "Version: $(field Version)"
[[ $(field Architecture) == "$arch" ]] || fail "Architecture: $(field Architecture)"
depends=$(field Depends)
# Computed by dpkg-shlibdeps from the binaries, plus the one runtime tool.
for dep in libbpf1 libxdp1 libc6 libstdc++6 init-system-helpers; do
  [[ $depends == *"$dep"* ]] || fail "Depends lacks $dep: $depends"
done
dpkg-deb --info "$deb" >"$scratch/info"
for member in conffiles postinst prerm postrm md5sums; do
  grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +(\* +)?$member( |$)" "$scratch/info" || fail "control member $member missing"
done
mkdir "$scratch/control"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$scratch/control"
[[ $(cat "$scratch/control/conffiles") == /etc/sluice/sluice.yaml ]] || fail "conffiles: $(cat "$scratch/control/conffiles")"
for script in postinst prerm postrm; do
  [[ -x $scratch/control/$script ]] || fail "$script is not executable"
  sh -n "$scratch/control/$script" || fail "$script: shell syntax"
done

# ---- contents ----
dpkg-deb --contents "$deb" >"$scratch/contents"
awk '$2 != "root/root" { print }' "$scratch/contents" | grep . && fail "files not owned by root/root"
grep -q ' \./usr/local/' "$scratch/contents" && fail "files under /usr/local"
grep -qE ' \./(home|tmp|root|build)/' "$scratch/contents" && fail "files outside the system paths"

root=$scratch/root
dpkg -x "$deb" "$root"
for program in usr/sbin/sluiced usr/bin/sluicectl usr/sbin/sluice-decap usr/bin/sluice-bench \
               usr/lib/sluice/bench/{pipeline,filter,lb,forward}_bench; do
  [[ -f $root/$program && -x $root/$program ]] || fail "$program missing or not executable"
done
for file in lib/systemd/system/sluiced.service etc/sluice/sluice.yaml \
            usr/share/bash-completion/completions/sluicectl \
            usr/share/doc/sluice/copyright usr/share/doc/sluice/changelog.gz usr/share/doc/sluice/README.md \
            usr/share/man/man8/sluiced.8.gz usr/share/man/man1/sluicectl.1.gz \
            usr/share/man/man1/sluice-decap.1.gz usr/share/man/man1/sluice-bench.1.gz \
            usr/share/man/man1/sluice-trafficgen.1.gz usr/bin/sluice-trafficgen; do
  [[ -f $root/$file ]] || fail "$file missing"
done
# The operator's documentation: every docs/ file of the source, and README's
# links resolve inside /usr/share/doc/sluice as they do in the source tree.
source_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build_dir/CMakeCache.txt")
[[ -d $source_dir/docs ]] || fail "source dir not found from $build_dir/CMakeCache.txt"
doc_root=$root/usr/share/doc/sluice
for file in "$source_dir"/docs/*; do
  [[ -f $doc_root/docs/${file##*/} ]] || fail "usr/share/doc/sluice/docs/${file##*/} missing"
done
while IFS= read -r target; do
  [[ -e $doc_root/$target ]] || fail "README.md links $target, not in usr/share/doc/sluice"
done < <(grep -o '](docs/[^)#]*' "$doc_root/README.md" | sed 's/^](//' | sort -u)
grep -q 'docs/config-reference.md' "$root/etc/sluice/sluice.yaml" ||
  fail "the default config does not point at the config reference"
[[ -f $doc_root/docs/config-reference.md ]] || fail "the default config points at a file not packaged"

# Man pages: gzip'd (Debian policy 12.1), valid, and groff reads them without a warning.
while IFS= read -r -d '' page; do
  [[ $page == *.gz ]] || { fail "man page not gzip'd: ${page#"$root"/}"; continue; }
  gzip -t "$page" || fail "bad gzip: ${page#"$root"/}"
  if command -v groff >/dev/null; then
    warnings=$(zcat "$page" | groff -man -ww -z 2>&1) || true
    [[ -z $warnings ]] || fail "groff on ${page#"$root"/}: $warnings"
  fi
done < <(find "$root/usr/share/man" -type f -print0)
# Stripped (CPACK_STRIP_FILES): no debug sections shipped.
for program in usr/sbin/sluiced usr/bin/sluicectl usr/sbin/sluice-decap; do
  if readelf -S "$root/$program" | grep -q '\.debug_info'; then fail "$program is not stripped"; fi
done

# Every file an install() rule writes is in the package (under its
# compressed name where Debian compresses it): nobody's rule is left out.
DESTDIR="$scratch/installed" cmake --install "$build_dir" --prefix /usr >"$scratch/install.log" 2>&1 ||
  { cat "$scratch/install.log" >&2; fail "cmake --install"; }
while IFS= read -r -d '' file; do
  relative=${file#"$scratch/installed/"}
  [[ -e $root/$relative || -e $root/$relative.gz ]] || fail "installed but not packaged: /$relative"
done < <(find "$scratch/installed" -type f -print0)

# ---- the unit: the packaged binary, the packaged config, restart on failure ----
unit=$root/lib/systemd/system/sluiced.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
binary=${exec_start%% *}
[[ -x $root$binary ]] || fail "ExecStart runs $binary, not in the package"
config=$(sed -n 's/.*--config \([^ ]*\).*/\1/p' <<<"$exec_start")
[[ -n $config && -f $root$config ]] || fail "ExecStart's --config '$config' is not the packaged config"
grep -qx 'Restart=on-failure' "$unit" || fail "unit does not restart on failure"
grep -qx 'WantedBy=multi-user.target' "$unit" || fail "unit has no [Install] target"

# ---- the installed programs run from the scratch root (system libraries) ----
for program in usr/sbin/sluiced usr/bin/sluicectl usr/sbin/sluice-decap; do
  if ldd "$root/$program" | grep -q 'not found'; then fail "$program: $(ldd "$root/$program" | grep 'not found')"; fi
done
got=$("$root/usr/bin/sluicectl" --version) || fail "sluicectl --version exit $?"
[[ $got == "sluicectl $version" ]] || fail "sluicectl --version: '$got'"
got=$("$root/usr/sbin/sluiced" --version) || fail "sluiced --version exit $?"
[[ $got == "$version" ]] || fail "sluiced --version: '$got'"
# The completion script loads in bash and defines its function.
bash -c "source '$root/usr/share/bash-completion/completions/sluicectl' && declare -F _sluicectl >/dev/null" ||
  fail "bash completion does not define _sluicectl"

# ---- lintian, when this machine has it (not a dependency: it is heavy) ----
if command -v lintian >/dev/null; then
  lintian --fail-on error --suppress-tags no-manual-page "$deb" || fail "lintian errors"
else
  echo "lintian not installed: skipped (optional)"
fi

echo "package: $deb"
cat "$scratch/contents"
if ((failures)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all package checks passed"
