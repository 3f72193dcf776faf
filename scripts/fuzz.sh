#!/usr/bin/env bash
# fuzz.sh BUILD_DIR — make fuzz: builds the libFuzzer harnesses of tests/fuzz with clang
# (-fsanitize=fuzzer,address,undefined) into BUILD_DIR, makes the seed corpora
# (scripts/fuzz_seeds.sh), and runs every harness (or those in FUZZ_TARGETS) for
# FUZZ_SECONDS seconds (default 60) or FUZZ_RUNS executions, with the format's
# dictionary. New corpus entries go to BUILD_DIR/corpus/<name>, crashes to
# BUILD_DIR/crashes/<name>; one line of figures per harness to BUILD_DIR/stats.txt.
# Exit status 1 when a harness found a crash.
set -uo pipefail
B=${1:-build-fuzz}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DHF=${DHF:-$ROOT/build/bin/dhf}
command -v clang >/dev/null || { echo "fuzz: clang is not installed"; exit 1; }
cmake -S "$ROOT/tests/fuzz" -B "$B" -DCMAKE_C_COMPILER=clang >/dev/null || exit 1
cmake --build "$B" -j"$(nproc)" >/dev/null || exit 1
[ -d "$B/seeds" ] || bash "$ROOT/scripts/fuzz_seeds.sh" "$B/seeds" "$DHF" || exit 1
export LSAN_OPTIONS=suppressions=$ROOT/tests/fuzz/lsan.supp
targets=${FUZZ_TARGETS:-safetensors config pickle spair cub predictions image tokenizer prompt cache}
limit="-max_total_time=${FUZZ_SECONDS:-60}"
[ -n "${FUZZ_RUNS:-}" ] && limit="-runs=$FUZZ_RUNS"
rc=0
for t in $targets; do
    mkdir -p "$B/corpus/$t" "$B/crashes/$t"
    dict=""
    [ -f "$ROOT/tests/fuzz/dict/$t.dict" ] && dict="-dict=$ROOT/tests/fuzz/dict/$t.dict"
    log="$B/fuzz_$t.log"
    start=$(date +%s)
    "$B/fuzz_$t" $limit $dict -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$B/crashes/$t/" "$B/corpus/$t" "$B/seeds/$t" \
        $( [ -d "$ROOT/tests/fuzz/regressions/$t" ] && echo "$ROOT/tests/fuzz/regressions/$t" ) >"$log" 2>&1
    st=$?
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}')
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    crashes=$(ls "$B/crashes/$t" | wc -l)
    line=$(printf '%-12s %10s execs %6s s  cov %6s  crashes %s  exit %s' "$t" "${runs:-?}" \
        "$(( $(date +%s) - start ))" "${cov:-?}" "$crashes" "$st")
    echo "$line" | tee -a "$B/stats.txt"
    [ "$st" -ne 0 ] && rc=1
done
exit $rc
