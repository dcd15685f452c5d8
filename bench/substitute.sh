#!/bin/sh
# Side-by-side benchmark of substitution from a local binary cache: CppNix
# (/usr/bin/nix copy --from file://...) and nivis (nivis copy --from file://...)
# in the same run, into fresh stores; prints the times and their ratios.
#
#   bench/substitute.sh [COMPRESSIONS] [RUNS] [TREES...]
#       (defaults: xz,zstd, 3, /usr/lib/python3 /usr/share/doc — about 170 MB)
#
# CppNix writes each cache once (not timed). Both sides check every NAR's hash;
# the paths are content-addressed, so no signatures are needed. Wall time is
# the goal (issue #7: nivis at least 1.5x faster); CPU time (user + system, of
# the process and its threads) is reported beside it because on a shared
# machine it is the steadier of the two. The load average is printed at the
# start and the end: wall-time ratios taken under load are rough. Set
# NIVIS_BIN to time an existing binary instead of a release build.
set -eu
compressions=$(echo "${1:-xz,zstd}" | tr ',' ' ')
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
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average at the start: $(load) ($(nproc) cores)" >&2

paths=""
for tree in $trees; do
    paths="$paths $(/usr/bin/nix-store --store "$work/source" --add "$tree")"
done
echo "NAR total $(/usr/bin/nix-store --store "$work/source" -q --size $paths | awk '{s+=$1} END {printf "%d", s/1048576}') MB in$(echo "$paths" | wc -w) paths" >&2

# Runs a command; prints "WALL CPU" in seconds. GNU time when it is there (CPU
# time of the command alone), else the shell's (children's times).
measure() {
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f "%e %U %S" -o "$work/time" "$@" 2>"$work/stderr" || { cat "$work/stderr" >&2; return 1; }
        awk '{printf "%.2f %.2f\n", $1, $2 + $3}' "$work/time"
    else
        start=$(date +%s.%N)
        "$@" 2>"$work/stderr" || { cat "$work/stderr" >&2; return 1; }
        echo "$(echo "$(date +%s.%N) - $start" | bc) 0"
    fi
}
min() { if [ -z "$1" ] || [ "$(echo "$2 < $1" | bc)" = 1 ]; then echo "$2"; else echo "$1"; fi; }
ratio() { if [ "$(echo "$2 > 0" | bc)" = 1 ]; then echo "scale=2; $1 / $2" | bc; else echo "?"; fi; }

summary=""
for compression in $compressions; do
    echo "writing a $compression cache with CppNix..." >&2
    # shellcheck disable=SC2086
    nix copy --store "$work/source" --to "file://$work/cache-$compression?compression=$compression" $paths
    echo "cache: $(du -sm "$work/cache-$compression" | cut -f1) MB compressed" >&2
    best_cppnix="" best_nivis="" cpu_cppnix="" cpu_nivis=""
    i=0
    while [ "$i" -lt "$runs" ]; do
        i=$((i + 1))
        # Fresh stores, and nothing deleted until the end: ext4 skips inodes
        # freed in the last minutes when it allocates new ones, which made
        # file creation (both tools') several times slower right after an
        # `rm -rf` of the previous run's store.
        dest_c=$work/dest-c-$compression-$i dest_n=$work/dest-n-$compression-$i
        # Each tool starts with no dirty pages of the other pending: nivis syncs
        # what it restores, which would otherwise also flush CppNix's.
        sync
        # shellcheck disable=SC2086
        out=$(measure /usr/bin/nix --extra-experimental-features nix-command copy \
            --from "file://$work/cache-$compression" --to "$dest_c" --no-check-sigs $paths) || exit 1
        t_cppnix=${out% *} c_cppnix=${out#* }
        sync
        # shellcheck disable=SC2086
        out=$(measure "$NIVIS_BIN" copy --from "file://$work/cache-$compression" --store "$dest_n" \
            --no-check-sigs $paths) || exit 1
        t_nivis=${out% *} c_nivis=${out#* }
        echo "$compression run $i: CppNix ${t_cppnix}s (CPU ${c_cppnix}s), nivis ${t_nivis}s (CPU ${c_nivis}s); load $(load)" >&2
        best_cppnix=$(min "$best_cppnix" "$t_cppnix") best_nivis=$(min "$best_nivis" "$t_nivis")
        cpu_cppnix=$(min "$cpu_cppnix" "$c_cppnix") cpu_nivis=$(min "$cpu_nivis" "$c_nivis")
    done
    # Both stores must hold the same contents.
    for path in $paths; do
        a=$(/usr/bin/nix-store --store "$dest_c" -q --hash "$path")
        b=$(/usr/bin/nix-store --store "$dest_n" -q --hash "$path")
        [ "$a" = "$b" ] || { echo "MISMATCH for $path: $a vs $b" >&2; exit 1; }
    done
    /usr/bin/nix-store --store "$dest_n" --verify --check-contents >/dev/null 2>&1
    summary="${summary}substitute ($compression, best of $runs): CppNix ${best_cppnix}s, nivis ${best_nivis}s, CppNix/nivis = $(ratio "$best_cppnix" "$best_nivis"); CPU CppNix ${cpu_cppnix}s, nivis ${cpu_nivis}s, CppNix/nivis = $(ratio "$cpu_cppnix" "$cpu_nivis")
"
done
echo "load average at the end: $(load)" >&2
printf '%s' "$summary"
