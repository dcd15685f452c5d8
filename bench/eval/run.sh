#!/usr/bin/env bash
# Runs every evaluation workload with CppNix 2.8 and with nivis, side by side in
# one run, and prints wall time, CPU (user+system) time, peak RSS and the ratios
# for each (speedup: wall time; cpu-x: CPU time; mem%: nivis RSS / CppNix RSS).
#   bench/eval/run.sh            all workloads, best of 3 runs each
#   RUNS=1 bench/eval/run.sh     one run each (quicker, noisier)
# Both evaluate in read-only mode over a dummy store, so no store is touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=${RUNS:-3}
cppnix=/usr/bin/nix-instantiate
[ -x "$cppnix" ] || { echo "CppNix is not installed (apt-get install -y nix-bin)" >&2; exit 1; }

cargo build --quiet --release -p nivis --manifest-path "$repo/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$target_dir/release/nivis" "$work/nix-instantiate"
nivis="$work/nix-instantiate"

# The import workload reads 2000 generated files.
rm -rf "$here/generated-imports"
mkdir -p "$here/generated-imports"
for i in $(seq 1 2000); do
    printf '{ value = %d; name = "file%d"; list = [ 1 2 3 ]; }\n' "$i" "$i" > "$here/generated-imports/f$i.nix"
done
trap 'rm -rf "$work" "$here/generated-imports"' EXIT

# measure REPS BINARY ARGS...: prints "seconds cpu-seconds kilobytes" (best wall
# time, best user+system time, per evaluation, and max RSS over runs) and leaves
# the output of the last run in $work/out. Each run evaluates REPS times in a
# row under one timer, so that a workload of a few hundredths of a second is
# not measured at the timer's resolution (10 ms). CPU time is the steadier
# figure on a machine shared with other work: it does not count the time spent
# waiting for a core.
measure() {
    local reps=$1; shift
    local best="" best_cpu="" rss=0
    for _ in $(seq 1 "$runs"); do
        /usr/bin/time -f "%e %U %S %M" -o "$work/time" sh -c 'n=$1; out=$2; err=$3; shift 3
            while [ "$n" -gt 0 ]; do "$@" > "$out" 2> "$err" || exit 1; n=$((n - 1)); done' \
            sh "$reps" "$work/out" "$work/err" "$@" || {
            echo "FAILED: $*" >&2; cat "$work/err" >&2; return 1; }
        read -r secs user sys kb < "$work/time"
        secs=$(awk "BEGIN{print $secs / $reps}")
        cpu=$(awk "BEGIN{print ($user + $sys) / $reps}")
        if [ -z "$best" ] || awk "BEGIN{exit !($secs < $best)}"; then best=$secs; fi
        if [ -z "$best_cpu" ] || awk "BEGIN{exit !($cpu < $best_cpu)}"; then best_cpu=$cpu; fi
        [ "$kb" -gt "$rss" ] && rss=$kb
    done
    echo "$best $best_cpu $rss"
}

printf '%-18s %9s %9s %8s %8s %10s %10s %8s %s\n' workload "CppNix-s" "nivis-s" speedup cpu-x "CppNix-MB" "nivis-MB" mem% agree
row() {
    local name=$1; shift
    local common=(--store dummy:// --readonly-mode --eval --strict "$@")
    # Repetitions: enough for about a second of CppNix's time per run
    # (one CppNix run to calibrate), at most 20; the same for both.
    local reps
    /usr/bin/time -f "%e" -o "$work/time" "$cppnix" "${common[@]}" > /dev/null 2>&1 || true
    reps=$(awk -v t="$(cat "$work/time")" 'BEGIN{ r = (t > 0) ? int(1 / t) : 20; if (r < 1) r = 1; if (r > 20) r = 20; print r }')
    read -r c_s c_cpu c_kb < <(measure "$reps" "$cppnix" "${common[@]}")
    cp "$work/out" "$work/cppnix.out"
    if ! read -r n_s n_cpu n_kb < <(measure "$reps" "$nivis" "${common[@]}"); then
        printf '%-18s %9s %9s\n' "$name" "$c_s" FAILED; return 0
    fi
    local agree=yes
    cmp -s "$work/out" "$work/cppnix.out" || agree=NO
    awk -v n="$name" -v cs="$c_s" -v ns="$n_s" -v cc="$c_cpu" -v nc="$n_cpu" -v ck="$c_kb" -v nk="$n_kb" -v a="$agree" 'BEGIN{
        if (ns == 0) ns = 0.005;
        if (nc == 0) nc = 0.005;
        printf "%-18s %9.3f %9.3f %7.1fx %7.1fx %10.1f %10.1f %7.0f%% %s\n", n, cs, ns, cs/ns, cc/nc, ck/1024, nk/1024, 100*nk/ck, a }'
}

cd "$here"
for workload in fib attrset-build merge mapattrs list-fold strings tojson imports callpackage; do
    row "$workload" "$workload.nix"
done
row "pkgset-10k" pkgset.nix --arg n 10000
row "pkgset-20k" pkgset.nix --arg n 20000
# A NixOS-like system (lib.evalModules over ~600 service modules) and a
# nixpkgs-style package set, over the real nixpkgs `lib`, which this repository
# does not hold: point NIXPKGS_LIB at a nixpkgs checkout's lib/ directory.
if [ -n "${NIXPKGS_LIB:-}" ]; then
    row "nixos-like" nixos-like.nix --argstr libPath "$NIXPKGS_LIB"
else
    echo "nixos-like: skipped (set NIXPKGS_LIB=/path/to/nixpkgs/lib to run it)"
fi
