#!/bin/sh
# Side-by-side garbage-collection benchmark: a store with N dead paths (small
# text files; nine in ten refer to the path before them, so the collector must
# respect the reference order) and a few live ones behind a gcroots link is
# made once (registered by CppNix's `nix-store --load-db`), copied,
# and collected by CppNix 2.8 (`nix-store --store A --gc`) and by nivis
# (`nix-store --store B --gc`) in the same run, alternating which goes first.
# Prints each time, the median of each, and the ratio CppNix/nivis; checks
# that both left the same valid paths and that CppNix's `--verify` is clean.
#
#   bench/gc.sh [PATHS] [RUNS]      (defaults: 20000, 3)
#
# Set NIVIS_BIN to time an existing binary instead of a release build.
set -eu
paths=${1:-20000}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${NIVIS_BIN:-}" ]; then
    (cd "$root" && cargo build --release -p nivis >&2)
    NIVIS_BIN=${CARGO_TARGET_DIR:-$root/target}/release/nivis
fi
command -v python3 >/dev/null || { echo "needs python3 (to write the registration list)" >&2; exit 1; }
work=$(mktemp -d)
# BENCH_KEEP=1 keeps the stores for a closer look.
[ -n "${BENCH_KEEP:-}" ] && echo "work directory: $work" >&2 || trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/bin"
ln -s "$NIVIS_BIN" "$work/bin/nix-store"
export NIX_CONFIG="experimental-features = nix-command"
unset NIX_REMOTE || true

template="$work/template"
# Make the store's layout with CppNix, then the files and their registrations.
nix-store --store "$template" --init
python3 - "$template/nix/store" "$paths" > "$work/registration" <<'PY'
import hashlib, os, random, struct, sys

def nar_string(data):
    return struct.pack("<Q", len(data)) + data + b"\0" * (-len(data) % 8)

def nar_of_file(contents):
    parts = [b"nix-archive-1", b"(", b"type", b"regular", b"contents", contents, b")"]
    return b"".join(nar_string(p) for p in parts)
store, count = sys.argv[1], int(sys.argv[2])
alphabet = "0123456789abcdfghijklmnpqrsvwxyz"
rng = random.Random(42)
previous = None
out = []
for i in range(count + 10):
    name = "".join(rng.choice(alphabet) for _ in range(32)) + ("-dead-%d" % i if i < count else "-live-%d" % i)
    path = os.path.join(store, name)
    contents = b"path %d\n" % i
    with open(path, "wb") as f:
        f.write(contents)
    nar = nar_of_file(contents)
    os.chmod(path, 0o444)
    os.utime(path, (1, 1))
    refs = [previous] if previous and i % 10 != 0 and i < count else []
    out.append("/nix/store/%s\n%s\n%d\n\n%d\n%s" % (name, hashlib.sha256(nar).hexdigest(), len(nar),
                                              len(refs), "".join("/nix/store/%s\n" % r for r in refs)))
    previous = name
sys.stdout.write("".join(out))
PY
nix-store --store "$template" --load-db < "$work/registration"
# One live path, rooted.
last_live=$(ls "$template/nix/store" | grep -- '-live-' | head -n 1)
ln -s "/nix/store/$last_live" "$template/nix/var/nix/gcroots/live"
echo "store: $((paths + 10)) valid paths, $paths dead" >&2

now() { date +%s.%N; }
cpp_times=""
ours_times=""
run_one() { # tool dir
    rm -rf "$2"; cp -a "$template" "$2"
    sync
    start=$(now)
    if [ "$1" = cppnix ]; then
        nix-store --store "$2" --gc > "$work/$1.out" 2> "$work/$1.err"
    else
        "$work/bin/nix-store" --store "$2" --gc > "$work/$1.out" 2> "$work/$1.err"
    fi
    end=$(now)
    echo "$start $end" | awk '{ printf "%.3f", $2 - $1 }'
}
i=0
while [ $i -lt "$runs" ]; do
    if [ $((i % 2)) -eq 0 ]; then
        c=$(run_one cppnix "$work/a"); o=$(run_one nivis "$work/b")
    else
        o=$(run_one nivis "$work/b"); c=$(run_one cppnix "$work/a")
    fi
    echo "run $((i + 1)): CppNix ${c}s ($(cat "$work/cppnix.out")), nivis ${o}s ($(cat "$work/nivis.out"))"
    cpp_times="$cpp_times $c"
    ours_times="$ours_times $o"
    i=$((i + 1))
done
# Both must leave the same valid paths, and a consistent store.
nix-store --store "$work/a" --dump-db | grep '^/nix/store/' | sort > "$work/a.valid"
nix-store --store "$work/b" --dump-db | grep '^/nix/store/' | sort > "$work/b.valid"
cmp -s "$work/a.valid" "$work/b.valid" || { echo "different valid paths after the collections" >&2; exit 1; }
nix-store --store "$work/b" --verify --check-contents >/dev/null 2>&1 || { echo "CppNix's --verify fails on nivis's result" >&2; exit 1; }
median() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mc=$(median $cpp_times)
mo=$(median $ours_times)
echo "median: CppNix ${mc}s, nivis ${mo}s" 
awk -v c="$mc" -v o="$mo" 'BEGIN { printf "ratio CppNix/nivis: %.2fx\n", c / o }'
