#!/usr/bin/env bash
# eval_pck.sh — `dhf eval` end to end on a tiny `dhf synth` benchmark with the
# image-based provider (SPair-71k and CUB layouts, stretch and pad), then
# `dhf pck --predictions` recomputes every metric from the dump: the two
# results.json "metrics" must be identical, and a tampered dump must not be.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
export DHF_PROGRESS=0

if ! "$DHF" --help | awk '{print $1}' | grep -qx synth; then
    echo "dhf synth is not available in this build: skipped"
    exit 77
fi
work=$(mktemp -d /tmp/dhf_e2e_eval.XXXXXX) || fail "mktemp"
trap 'rm -rf "$work"' EXIT
passed=0

"$DHF" synth -o "$work/data" --images-per-category 6 --pairs-per-category 3 \
    --cub-classes 2 --cub-images-per-class 4 --threads 2 >"$work/synth.log" 2>&1 ||
    fail "dhf synth: $(tail -3 "$work/synth.log")"
spair="$work/data/SPair-71k"
cub="$work/data/CUB_200_2011"
[ -d "$spair/JPEGImages" ] || fail "no SPair-71k layout under $work/data"

# same_metrics A B: the "metrics" objects of two results.json are identical.
same_metrics() {
    "$DHF" pck --predictions "$1/predictions.jsonl" -o "$2" --check "$1/results.json" >"$work/pck.log" 2>&1 ||
        fail "dhf pck --check $1: $(cat "$work/pck.log")"
    grep -q "metrics identical" "$work/pck.log" || fail "pck did not confirm: $(cat "$work/pck.log")"
    if command -v jq >/dev/null 2>&1; then
        jq -S .metrics "$1/results.json" >"$work/m1.json" || fail "jq $1/results.json"
        jq -S .metrics "$2/results.json" >"$work/m2.json" || fail "jq $2/results.json"
        cmp -s "$work/m1.json" "$work/m2.json" || fail "metrics of $1 and $2 differ: $(diff "$work/m1.json" "$work/m2.json" | head -5)"
        n_lines=$(grep -c . "$1/predictions.jsonl")
        n_kps=$(jq .metrics.n_keypoints "$1/results.json")
        [ "$n_lines" = "$n_kps" ] || fail "$n_lines prediction lines but $n_kps keypoints"
        [ "$(jq -r .protocol.subset.hash "$1/results.json")" != null ] || fail "no subset hash in the protocol"
        [ "$(jq -r .protocol.descriptor_source.provider "$1/results.json")" != null ] || fail "no descriptor source"
    fi
}

# 1. SPair-71k test split, the paper's protocol (stretch, argmax).
out=$("$DHF" eval --data "$spair" -o "$work/eval1" --threads 2 2>"$work/eval.err") ||
    fail "dhf eval: $(cat "$work/eval.err")"
echo "$out" | grep -Eq "^PCK@0.1 img [0-9.]+ bbox [0-9.]+ \(pooled per keypoint" || fail "summary line: $out"
for f in results.json results.md predictions.jsonl config.resolved.yaml; do
    [ -s "$work/eval1/$f" ] || fail "eval wrote no $f"
done
grep -q "^| \*\*all\*\* |" "$work/eval1/results.md" || fail "results.md lacks the table"
same_metrics "$work/eval1" "$work/pck1"
passed=$((passed + 1))

# 2. The same pairs, padded, window soft-argmax, 3x3 patch descriptors.
"$DHF" eval --data "$spair" --provider image:patch --set eval.resize=pad \
    --set eval.matcher=window_soft_argmax --set load_resolution=96 -o "$work/eval2" --quiet >/dev/null 2>&1 ||
    fail "dhf eval (pad)"
grep -q '"resize":[[:space:]]*"pad"' "$work/eval2/results.json" || fail "protocol does not record pad"
same_metrics "$work/eval2" "$work/pck2"
passed=$((passed + 1))

# 3. CUB-200-2011 layout, 2 pairs per class.
if [ -d "$cub" ]; then
    "$DHF" eval --dataset cub --data "$cub" --pairs-per-category 2 --seed 3 -o "$work/eval3" --quiet >/dev/null 2>&1 ||
        fail "dhf eval (cub)"
    grep -q '"name":[[:space:]]*"per-category-2"' "$work/eval3/results.json" || fail "cub subset name not recorded"
    same_metrics "$work/eval3" "$work/pck3"
    passed=$((passed + 1))
fi

# 4. A tampered dump (every target 100000 px wide: img thresholds explode) must
#    not pass the check.
sed 's/"target_size":\[[0-9]*,[0-9]*\]/"target_size":[100000,100000]/g' \
    "$work/eval1/predictions.jsonl" >"$work/tampered.jsonl"
cmp -s "$work/tampered.jsonl" "$work/eval1/predictions.jsonl" && fail "sed did not change the dump"
err=$("$DHF" pck --predictions "$work/tampered.jsonl" --check "$work/eval1/results.json" 2>&1 >/dev/null)
[ $? -eq 1 ] || fail "tampered predictions passed the check"
echo "$err" | grep -q "metrics differ" || fail "check message: $err"
passed=$((passed + 1))

# 5. Bootstrap intervals: the same seed gives the same interval, the estimate is the
#    pooled PCK and lies inside; a method against itself differs by exactly 0.
"$DHF" pck --predictions "$work/eval1/predictions.jsonl" --bootstrap 300 --seed 5 \
    --versus "$work/eval1/predictions.jsonl" >"$work/b1.txt" 2>&1 || fail "pck --bootstrap: $(cat "$work/b1.txt")"
"$DHF" pck --predictions "$work/eval1/predictions.jsonl" --bootstrap 300 --seed 5 \
    --versus "$work/eval1/predictions.jsonl" >"$work/b2.txt" 2>&1 || fail "pck --bootstrap (again)"
cmp -s "$work/b1.txt" "$work/b2.txt" || fail "bootstrap not deterministic for a seed"
grep -q "^PCK@0.1 img .*95% interval \[.*\] (300 pair resamples)" "$work/b1.txt" ||
    fail "bootstrap output: $(cat "$work/b1.txt")"
awk '/^PCK@0.1 img/ { gsub(/[\[\],]/, " "); if (!($3 >= $6 && $3 <= $7)) exit 1 }' "$work/b1.txt" ||
    fail "estimate outside its interval: $(cat "$work/b1.txt")"
grep -q "minus .*: +0.00  95% interval \[+0.00, +0.00\], 1.0000 of resamples <= 0" "$work/b1.txt" ||
    fail "a method against itself: $(cat "$work/b1.txt")"
"$DHF" pck --predictions "$work/eval1/predictions.jsonl" --versus "$work/eval1/predictions.jsonl" \
    >/dev/null 2>&1; [ $? -eq 2 ] || fail "--versus without --bootstrap should exit 2"
passed=$((passed + 1))

# 6. Usage and user errors.
"$DHF" pck >/dev/null 2>&1; [ $? -eq 2 ] || fail "pck without --predictions should exit 2"
"$DHF" eval --data "$spair" --provider nope -o "$work/x" >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown provider should exit 2"
"$DHF" pck --predictions "$work/missing.jsonl" >/dev/null 2>&1; [ $? -eq 1 ] || fail "missing predictions should exit 1"
passed=$((passed + 1))

echo "$passed passed, 0 failed"
