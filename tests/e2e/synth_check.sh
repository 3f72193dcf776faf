#!/usr/bin/env bash
# synth_check.sh — `dhf synth` end to end: writes both layouts, `dhf data check`
# accepts them, a rerun with the same seed is byte-identical (other thread
# count), usage errors exit 2, a foreign folder is refused with exit 1.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d /tmp/dhf_e2e_synth.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
export DHF_PROGRESS=0

small="--categories dog,car,bottle --images-per-category 7 --pairs-per-category 5
       --cub-classes 2 --cub-images-per-class 4 --min-size 96 --max-size 160 --seed 11"
# shellcheck disable=SC2086
out=$("$DHF" synth -o "$tmp/a" $small --threads 2) || fail "synth exit code"
echo "$out" | grep -q "SPair-71k: 21 images" || fail "synth summary: $out"
echo "$out" | grep -q "CUB_200_2011: 8 images in 2 classes" || fail "synth summary: $out"
for f in SPair-71k/Layout/large/trn.txt SPair-71k/Layout/large/val.txt SPair-71k/Layout/large/test.txt \
         SPair-71k/dhf_synth.json SPair-71k/JPEGImages/dog/dog_000001.jpg \
         SPair-71k/ImageAnnotation/car/car_000007.json CUB_200_2011/images.txt \
         CUB_200_2011/parts/part_locs.txt CUB_200_2011/bounding_boxes.txt; do
    [ -s "$tmp/a/$f" ] || fail "missing $f"
done

"$DHF" data check "$tmp/a/SPair-71k" >"$tmp/check_spair.txt" 2>&1 || { cat "$tmp/check_spair.txt"; fail "data check SPair-71k"; }
"$DHF" data check "$tmp/a/CUB_200_2011" >"$tmp/check_cub.txt" 2>&1 || { cat "$tmp/check_cub.txt"; fail "data check CUB"; }
grep -q "OK" "$tmp/check_spair.txt" || fail "data check SPair-71k did not say OK"

# same seed, one thread: identical bytes
# shellcheck disable=SC2086
"$DHF" synth -o "$tmp/b" $small --threads 1 >/dev/null || fail "second synth"
diff -r "$tmp/a" "$tmp/b" >/dev/null || fail "same seed gave different files"
# rerunning into its own output replaces it
# shellcheck disable=SC2086
"$DHF" synth -o "$tmp/b" $small --seed 12 >/dev/null || fail "rerun into own output"
diff -r "$tmp/a" "$tmp/b" >/dev/null && fail "another seed gave the same files"

# usage errors exit 2, a folder it did not write exits 1
"$DHF" synth -o "$tmp/c" --images-per-category 3 >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad count should exit 2"
"$DHF" synth -o "$tmp/c" --categories unicorn >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad category should exit 2"
"$DHF" synth --spair-only --cub-only >/dev/null 2>&1; [ $? -eq 2 ] || fail "exclusive flags should exit 2"
mkdir -p "$tmp/d/SPair-71k" && echo keep >"$tmp/d/SPair-71k/notes.txt"
err=$("$DHF" synth -o "$tmp/d" --spair-only 2>&1); [ $? -eq 1 ] || fail "foreign folder should exit 1"
echo "$err" | grep -q "refusing" || fail "foreign folder message: $err"
[ -f "$tmp/d/SPair-71k/notes.txt" ] || fail "foreign file was touched"
echo "1 passed, 0 failed"
