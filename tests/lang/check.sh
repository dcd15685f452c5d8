#!/bin/sh
# Run the language corpus through any nix-instantiate-compatible binary and
# compare with the expected outputs, without writing anything. Use it for the
# whole product (e.g. nivis's multi-call binary invoked as nix-instantiate,
# end to end, through the command line, where crates/glue/tests/lang.rs calls
# the library):
#
#   tests/lang/check.sh /path/to/nix-instantiate [NAME-GLOB]
#
# Prints one line per failing case and a summary; exits 1 if any case fails.
set -u
cd "$(dirname "$0")" || exit 1
binary=${1:?usage: check.sh NIX-INSTANTIATE [NAME-GLOB]}
pattern=${2:-*}
unset NIX_PATH
export HOME=/tmp TZ=UTC LC_ALL=C
passed=0
failed=0
for file in $pattern.nix; do
    name=${file%.nix}
    # Extra command-line flags of the case (experimental features).
    flags=$(cat "$name.flags" 2>/dev/null)
    case "$name" in
        eval-okay-*)
            # eval-okay-whnf-*: printed without --strict (only the result is forced).
            case "$name" in eval-okay-whnf-*) strict= ;; *) strict=--strict ;; esac
            if actual=$("$binary" --readonly-mode $flags --eval $strict "$file" 2>/dev/null) &&
                [ "$actual" = "$(cat "$name.exp")" ]; then
                ok=1
            else
                ok=0
            fi
            ;;
        eval-fail-*)
            "$binary" --readonly-mode $flags --eval --strict "$file" > /dev/null 2>&1
            status=$?
            # An error is exit status 1; a crash (signal, >128) is a failure too.
            if [ "$status" -eq 1 ]; then ok=1; else ok=0; fi
            ;;
        parse-okay-*)
            if "$binary" --readonly-mode $flags --parse "$file" > /dev/null 2>&1; then ok=1; else ok=0; fi
            ;;
        parse-fail-*)
            "$binary" --readonly-mode $flags --parse "$file" > /dev/null 2>&1
            if [ $? -eq 1 ]; then ok=1; else ok=0; fi
            ;;
        *) continue ;;
    esac
    if [ "$ok" = 1 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
