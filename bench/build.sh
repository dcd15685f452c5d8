#!/bin/sh
# Side-by-side build benchmark: 50 trivial derivations plus one that depends
# on all of them, sandboxed (chroot stores force the sandbox), built from the
# same expression by nivis and by CppNix 2.8 (`nix-build --store ROOT -j2`),
# each into a fresh store, alternating, in one run. Prints the median wall
# times and their ratio, and the median CPU times (user + system, builders
# included) and theirs: on a machine shared with other work, wall time
# follows the load and CPU time is the steadier figure. Times include
# evaluation and writing the .drv files.
#
#   bench/build.sh [RUNS] [JOBS]     (defaults: 3, 2)
#
# Set NIVIS_BIN to time an existing binary instead of a release build.
set -eu
runs=${1:-3}
jobs=${2:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${NIVIS_BIN:-}" ]; then
    (cd "$root" && cargo build --release -p nivis >&2)
    NIVIS_BIN=${CARGO_TARGET_DIR:-$root/target}/release/nivis
fi
busybox=/usr/bin/busybox
[ -x "$busybox" ] || { echo "needs $busybox (apt-get install busybox-static)" >&2; exit 1; }
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/bb/bin"
ln -s "$NIVIS_BIN" "$work/bin/nix-build"
cp "$busybox" "$work/bb/bin/busybox"
ln -s busybox "$work/bb/bin/sh"
ln -s busybox "$work/bb/bin/mkdir"
ln -s busybox "$work/bb/bin/ln"
cat > "$work/bench.nix" <<NIX
let
  bb = builtins.path { path = $work/bb; name = "busybox"; };
  mk = name: script: derivation {
    inherit name; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
    PATH = "\${bb}/bin"; args = [ "-c" script ];
  };
  leaves = builtins.genList (i: mk "leaf-\${toString i}" "echo \${toString i} > \$out") 50;
in mk "top" ("mkdir \$out; " + builtins.concatStringsSep "; " (map (l: "ln -s \${l} \$out/\${l.name}") leaves))
NIX

[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
time_one() { # tool store name -> appends wall and CPU milliseconds to $work/name.times, .cpu
    rm -rf "$2"
    /usr/bin/time -o "$2.time" -f "%e %U %S" \
        "$1" --store "$2" "$work/bench.nix" -j "$jobs" --no-out-link --option substituters "" > "$2.out" 2> "$2.err" \
        || { cat "$2.err" >&2; exit 1; }
    awk '{ printf "%d\n", $1 * 1000 }' "$2.time" >> "$work/$3.times"
    awk '{ printf "%d\n", ($2 + $3) * 1000 }' "$2.time" >> "$work/$3.cpu"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

: > "$work/nivis.times"; : > "$work/nivis.cpu"
: > "$work/cppnix.times"; : > "$work/cppnix.cpu"
i=0
while [ "$i" -lt "$runs" ]; do
    time_one "$work/bin/nix-build" "$work/s-nivis" nivis
    time_one /usr/bin/nix-build "$work/s-cppnix" cppnix
    i=$((i + 1))
done
if ! cmp -s "$work/s-nivis.out" "$work/s-cppnix.out"; then
    echo "MISMATCH: nivis built $(cat "$work/s-nivis.out"), CppNix $(cat "$work/s-cppnix.out")" >&2
    exit 1
fi
nivis=$(median < "$work/nivis.times")
cppnix=$(median < "$work/cppnix.times")
nivis_cpu=$(median < "$work/nivis.cpu")
cppnix_cpu=$(median < "$work/cppnix.cpu")
echo "51 derivations, -j$jobs, median of $runs fresh-store builds each (same output path: $(cat "$work/s-nivis.out"))"
echo "  nivis:  ${nivis} ms wall, ${nivis_cpu} ms CPU   (runs: $(tr '\n' ' ' < "$work/nivis.times"); CPU: $(tr '\n' ' ' < "$work/nivis.cpu"))"
echo "  CppNix: ${cppnix} ms wall, ${cppnix_cpu} ms CPU   (runs: $(tr '\n' ' ' < "$work/cppnix.times"); CPU: $(tr '\n' ' ' < "$work/cppnix.cpu"))"
awk -v a="$cppnix" -v b="$nivis" 'BEGIN { printf "  ratio CppNix/nivis: %.2fx wall\n", a / b }'
awk -v a="$cppnix_cpu" -v b="$nivis_cpu" 'BEGIN { printf "  ratio CppNix/nivis: %.2fx CPU\n", a / b }'
echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
