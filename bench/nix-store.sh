#!/bin/sh
# Side-by-side benchmark of the local store: nivis and CppNix (/usr/bin/nix-store)
# in the same run, with hyperfine; prints speed ratios.
#
#   bench/nix-store.sh [TREE] [RUNS]     (defaults: /usr/share/doc, 5)
#
# Cases: `--add TREE` into a fresh store (hashing, copying, syncing, one
# registration), `--export` of the added path, `--import` of that export into a
# fresh store. Set NIVIS_BIN to time an existing binary instead of a release build.
set -eu
tree=${1:-/usr/share/doc}
runs=${2:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${NIVIS_BIN:-}" ]; then
    (cd "$root" && cargo build --release -p nivis >&2)
    NIVIS_BIN=${CARGO_TARGET_DIR:-$root/target}/release/nivis
fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/bin"
ln -s "$NIVIS_BIN" "$work/bin/nix-store"

clean() { echo "chmod -R u+w $work/$1 2>/dev/null; rm -rf $work/$1"; }

path=$(/usr/bin/nix-store --store "$work/ref" --add "$tree")
ours=$("$work/bin/nix-store" --store "$work/check" --add "$tree")
if [ "$path" != "$ours" ]; then
    echo "MISMATCH: CppNix $path, nivis $ours" >&2
    exit 1
fi
/usr/bin/nix-store --store "$work/ref" --export "$path" > "$work/export"

hyperfine --runs "$runs" --export-json "$work/add.json" \
    -n cppnix --prepare "$(clean s1)" "/usr/bin/nix-store --store $work/s1 --add $tree" \
    -n nivis --prepare "$(clean s2)" "$work/bin/nix-store --store $work/s2 --add $tree" >&2
hyperfine --warmup 1 --runs "$runs" --export-json "$work/export.json" \
    -n cppnix "/usr/bin/nix-store --store $work/ref --export $path > /dev/null" \
    -n nivis "$work/bin/nix-store --store $work/ref --export $path > /dev/null" >&2
hyperfine --runs "$runs" --export-json "$work/import.json" \
    -n cppnix --prepare "$(clean s3)" "/usr/bin/nix-store --store $work/s3 --import < $work/export" \
    -n nivis --prepare "$(clean s4)" "$work/bin/nix-store --store $work/s4 --import < $work/export" >&2

python3 - "$work" <<'PY'
import json, sys
for case in ["add", "export", "import"]:
    results = {r["command"]: r for r in json.load(open(f"{sys.argv[1]}/{case}.json"))["results"]}
    cpp, ours = results["cppnix"], results["nivis"]
    print(f"{case:7} cppnix {cpp['mean']:.3f}s  nivis {ours['mean']:.3f}s  speed-up {cpp['mean'] / ours['mean']:.2f}x")
PY
