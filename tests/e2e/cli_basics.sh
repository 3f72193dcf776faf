#!/usr/bin/env bash
# cli_basics.sh — the dispatcher's contract: --help/--version exit 0, unknown
# commands and options exit 2 with a hint, `dhf info` reports the libraries.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }

"$DHF" --help | grep -q "Usage: dhf <command>" || fail "--help"
"$DHF" --version | grep -Eq "^dhf [0-9]+\.[0-9]+\.[0-9]+$" || fail "--version"
"$DHF" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no command should exit 2"
err=$("$DHF" frobnicate 2>&1); [ $? -eq 2 ] || fail "unknown command exit code"
echo "$err" | grep -q "unknown command 'frobnicate'" || fail "unknown command message: $err"
err=$("$DHF" info --bogus 2>&1); [ $? -eq 2 ] || fail "unknown option exit code"
echo "$err" | grep -q "Try 'dhf info --help'" || fail "usage hint: $err"
"$DHF" info --threads x >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad --threads"
out=$("$DHF" info --threads 1 --no-probe) || fail "info exit code"
for k in libtorch HDF5 cJSON libyaml threads CUDA BLAS; do
    echo "$out" | grep -q "^$k" || fail "info lacks $k"
done
echo "$out" | grep -q "^threads    1" || fail "--threads 1 not applied: $out"
"$DHF" info --json --no-probe | grep -q '"cuda_available"' || fail "info --json"
# every command answers --help with exit 0
for c in $("$DHF" --help | awk '/^Commands:/{f=1;next} f&&!NF{exit} f{print $1}'); do
    "$DHF" "$c" --help >/dev/null || fail "$c --help"
done
echo "1 passed, 0 failed"
