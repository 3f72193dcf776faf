#!/usr/bin/env bash
# bench.sh — runs every bench program that was built (`make bench`); each prints
# its own ratios. Figures are recorded in BENCHMARKS.md with this command.
set -euo pipefail
BUILD=${1:-build}
found=0
for b in "$BUILD"/bin/bench_*; do
    [ -x "$b" ] || continue
    found=1
    echo "== $(basename "$b")"
    "$b"
done
[ $found -eq 1 ] || echo "bench: no bench programs built yet"
