#!/bin/sh
# Regenerate the expected outputs of the language corpus from CppNix 2.8, and
# check that every eval-fail/parse-fail case fails and every parse-okay case
# parses under CppNix 2.8.
#
# Cases listed in POST-2.8.md (lines "- NAME: reason") are skipped: their
# expected behaviour comes from current CppNix's documentation, not from 2.8.
#
# Usage: tests/lang/accept.sh [NAME-GLOB]    (default: all cases)
# Environment: NIX_INSTANTIATE (default /usr/bin/nix-instantiate).
# --readonly-mode: store paths (derivation, toFile, path interpolation) are
# computed without writing to /nix/store.
set -u
cd "$(dirname "$0")" || exit 1
nix_instantiate=${NIX_INSTANTIATE:-/usr/bin/nix-instantiate}
pattern=${1:-*}
# Evaluate in a clean, path-independent environment.
unset NIX_PATH
export HOME=/tmp TZ=UTC LC_ALL=C

post28() {
    grep -q "^- $1:" POST-2.8.md
}

status=0
for file in $pattern.nix; do
    case "$file" in
        eval-okay-*|eval-fail-*|parse-okay-*|parse-fail-*) ;;
        *) continue ;;
    esac
    name=${file%.nix}
    if post28 "$name"; then
        continue
    fi
    case "$name" in
        eval-okay-*)
            # eval-okay-whnf-*: printed without --strict (only the result is forced).
            case "$name" in eval-okay-whnf-*) strict= ;; *) strict=--strict ;; esac
            if "$nix_instantiate" --readonly-mode --eval $strict "$file" > "$name.exp.tmp" 2> "$name.err.tmp"; then
                mv "$name.exp.tmp" "$name.exp"
            else
                echo "FAIL (expected success): $name"; sed 's/^/    /' "$name.err.tmp" | head -8
                rm -f "$name.exp.tmp"
                status=1
            fi
            rm -f "$name.err.tmp"
            ;;
        eval-fail-*)
            if "$nix_instantiate" --readonly-mode --eval --strict "$file" > /dev/null 2>&1; then
                echo "UNEXPECTED SUCCESS: $name"; status=1
            fi
            ;;
        parse-okay-*)
            if ! "$nix_instantiate" --readonly-mode --parse "$file" > /dev/null 2> "$name.err.tmp"; then
                echo "FAIL (expected parse): $name"; sed 's/^/    /' "$name.err.tmp" | head -8
                status=1
            fi
            rm -f "$name.err.tmp"
            ;;
        parse-fail-*)
            if "$nix_instantiate" --readonly-mode --parse "$file" > /dev/null 2>&1; then
                echo "UNEXPECTED PARSE SUCCESS: $name"; status=1
            fi
            ;;
    esac
done
exit $status
