#!/bin/sh
# Side-by-side benchmark of substitution from a local binary cache: CppNix
# (/usr/bin/nix copy --from file://...) and nivis (nivis copy --from file://...)
# in the same run, into fresh stores; prints the times and their ratio.
#
#   bench/substitute.sh [COMPRESSION] [RUNS] [TREES...]
#       (defaults: xz, 3, /usr/lib/python3 /usr/share/doc — about 170 MB)
#
# CppNix writes the cache once (not timed). Both sides check every NAR's hash;
# the paths are content-addressed, so no signatures are needed. Set NIVIS_BIN
# to time an existing binary instead of a release build.
set -eu
compression=${1:-xz}
runs=${2:-3}
[ $# -ge 2 ] && shift 2 || shift $#
trees=${*:-/usr/lib/python3 /usr/share/doc}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${NIVIS_BIN:-}" ]; then
    (cd "$root" && cargo build --release -p nivis >&2)
    NIVIS_BIN=${CARGO_TARGET_DIR:-$root/target}/release/nivis
fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
nix() { /usr/bin/nix --extra-experimental-features nix-command "$@"; }

paths=""
for tree in $trees; do
    paths="$paths $(/usr/bin/nix-store --store "$work/source" --add "$tree")"
done
echo "writing a $compression cache with CppNix..." >&2
# shellcheck disable=SC2086
nix copy --store "$work/source" --to "file://$work/cache?compression=$compression" $paths
echo "cache: $(du -sm "$work/cache" | cut -f1) MB compressed, NAR total $(/usr/bin/nix-store --store "$work/source" -q --size $paths | awk '{s+=$1} END {printf "%d", s/1048576}') MB" >&2

now() { date +%s.%N; }
best_cppnix=""
best_nivis=""
i=0
while [ "$i" -lt "$runs" ]; do
    i=$((i + 1))
    chmod -R u+w "$work/dest-c" "$work/dest-n" 2>/dev/null || true
    rm -rf "$work/dest-c" "$work/dest-n"
    # Each tool starts with no dirty pages of the other pending: nivis syncs
    # what it restores (syncfs), which would otherwise also flush CppNix's.
    sync
    start=$(now)
    # shellcheck disable=SC2086
    nix copy --from "file://$work/cache" --to "$work/dest-c" --no-check-sigs $paths
    t_cppnix=$(echo "$(now) - $start" | bc)
    sync
    start=$(now)
    # shellcheck disable=SC2086
    "$NIVIS_BIN" copy --from "file://$work/cache" --store "$work/dest-n" --no-check-sigs $paths
    t_nivis=$(echo "$(now) - $start" | bc)
    echo "run $i: CppNix ${t_cppnix}s, nivis ${t_nivis}s" >&2
    if [ -z "$best_cppnix" ] || [ "$(echo "$t_cppnix < $best_cppnix" | bc)" = 1 ]; then best_cppnix=$t_cppnix; fi
    if [ -z "$best_nivis" ] || [ "$(echo "$t_nivis < $best_nivis" | bc)" = 1 ]; then best_nivis=$t_nivis; fi
done
# Both stores must hold the same contents.
for path in $paths; do
    a=$(/usr/bin/nix-store --store "$work/dest-c" -q --hash "$path")
    b=$(/usr/bin/nix-store --store "$work/dest-n" -q --hash "$path")
    [ "$a" = "$b" ] || { echo "MISMATCH for $path: $a vs $b" >&2; exit 1; }
done
/usr/bin/nix-store --store "$work/dest-n" --verify --check-contents >/dev/null 2>&1
echo "substitute ($compression, best of $runs): CppNix ${best_cppnix}s, nivis ${best_nivis}s, CppNix/nivis = $(echo "scale=2; $best_cppnix / $best_nivis" | bc)"
