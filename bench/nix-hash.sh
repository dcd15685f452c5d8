#!/bin/sh
# Side-by-side benchmark: `nix-hash --type sha256 DIR` by nivis and by CppNix
# (/usr/bin/nix-hash) in the same run, with hyperfine; prints the speed ratio.
#
#   bench/nix-hash.sh [DIR] [RUNS]      (defaults: /usr/share, 10)
#
# Both hash the same tree from the page cache (the warm-up runs fill it), so
# this measures NAR serialisation and SHA-256, not the disk.
set -eu
target=${1:-/usr/share}
runs=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release -p nivis >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release/nivis
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$bin" "$work/nix-hash"

theirs=$(/usr/bin/nix-hash --type sha256 "$target")
ours=$("$work/nix-hash" --type sha256 "$target")
if [ "$theirs" != "$ours" ]; then
    echo "MISMATCH: CppNix $theirs, nivis $ours" >&2
    exit 1
fi
echo "both print $ours for $target" >&2

hyperfine --warmup 2 --runs "$runs" --export-json "$work/result.json" \
    -n cppnix "/usr/bin/nix-hash --type sha256 $target" \
    -n nivis "$work/nix-hash --type sha256 $target" >&2

python3 - "$work/result.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
cpp, ours = results["cppnix"], results["nivis"]
print(f"cppnix {cpp['mean']:.3f}s ± {cpp['stddev']:.3f}  nivis {ours['mean']:.3f}s ± {ours['stddev']:.3f}  "
      f"speed-up {cpp['mean'] / ours['mean']:.2f}x (median {cpp['median'] / ours['median']:.2f}x)")
PY
