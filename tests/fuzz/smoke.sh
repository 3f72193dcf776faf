#!/usr/bin/env bash
# smoke.sh — the fuzz harnesses' smoke run in make test: seed corpora from dhf's own
# outputs (scripts/fuzz_seeds.sh), then every harness built over driver.c feeds them
# and deterministic mutations of them for FUZZ_SMOKE_SECONDS (default 2) each. Any
# crash fails the test. The long runs are make fuzz (libFuzzer, scripts/fuzz.sh).
set -u
DHF=${DHF_BIN:-build/bin/dhf}
BIN=${DHF_FUZZ_BIN:-build/fuzz}
S=${FUZZ_SMOKE_SECONDS:-2}
fail() { echo "FAIL: $*"; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }
[ -d "$BIN" ] || { echo "$BIN: the smoke harnesses are not built: skipped"; exit 77; }
work=$(mktemp -d /tmp/dhf_fuzz_smoke.XXXXXX) || fail "mktemp"
trap 'rm -rf "$work"' EXIT
bash scripts/fuzz_seeds.sh "$work/seeds" "$DHF" >"$work/seeds.log" 2>&1 || fail "seeds: $(tail -3 "$work/seeds.log")"
# regression: a cache whose superblock is damaged must be refused at once (it used to
# hang in HDF5's SWMR retry loop); the smoke run's timeout catches a return of the hang
mkdir -p "$work/regress_cache"
python3 - "$work/seeds/cache/seed.h5" "$work/regress_cache/damaged-superblock.h5" <<'EOF' || fail "regression input"
import sys
d = bytearray(open(sys.argv[1], "rb").read()); d[40] ^= 0xFF; d[44] ^= 0x55
open(sys.argv[2], "wb").write(d)
EOF
for t in safetensors config pickle spair cub predictions image tokenizer prompt cache; do
    extra=""
    [ -d "tests/fuzz/regressions/$t" ] && extra="$(pwd)/tests/fuzz/regressions/$t"
    [ "$t" = cache ] && extra="$extra $work/regress_cache"
    exe="$(cd "$BIN" && pwd)/fuzz_${t}_smoke"
    [ -x "$exe" ] || fail "$exe missing"
    (cd "$work" && timeout 120 "$exe" "$S" "$work/seeds/$t" $extra) >"$work/$t.log" 2>&1 ||
        fail "fuzz_$t: $(tail -5 "$work/$t.log")"
    tail -1 "$work/$t.log"
done
echo "fuzz smoke: OK"
