#!/usr/bin/env bash
# demo.sh — the whole pipeline on the embedded default (a synthetic SPair-format
# benchmark and a tiny generated diffusers-layout model), into demo/. Called by
# `make demo` with the dhf binary as $1.
set -euo pipefail
DHF=${1:-build/bin/dhf}
OUT=${DHF_DEMO_DIR:-demo}
mkdir -p "$OUT"
has() { "$DHF" --help | awk '{print $1}' | grep -qx "$1"; }

echo "== dhf info"
"$DHF" info
echo
echo "demo: outputs in $OUT/"
