#!/usr/bin/env bash
# extract_resume.sh — `dhf extract` end to end on a random-weight tiny model
# (`dhf init-model`) and a synthetic SPair set (`dhf synth`): an extraction killed
# by the DHF_TEST_ABORT_AFTER hook after 2 images, then re-run, must equal an
# uninterrupted run bit for bit (every image exported with `dhf cache export`; tensor
# names, shapes and bytes compared); `dhf cache verify`/`info` on both; two shards
# merged equal the whole; merging caches of different extractions is refused; a
# changed setting on resume is refused; `dhf eval` scores the layer:4 and concat
# providers from the cache.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
T=$(mktemp -d /tmp/dhf_e2e_extract_XXXXXX) || fail "mktemp"
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
export DHF_PROGRESS=0
# One thread: these tensors are tiny, and spinning OpenMP threads on a busy machine
# cost far more than they give.

# The tensor part of a safetensors file: the header's tensor entries and the data
# region (the metadata holds the config, whose cache_path differs between runs).
st_tensors() {
    local hlen
    hlen=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    head -c $((8 + hlen)) "$1" | tail -c +9 | grep -o '"t[0-9]*/layer[0-9]*":{[^}]*}'
    tail -c +$((9 + hlen)) "$1" | od -An -tx1 | md5sum
}
same_tensors() {
    local a b
    a=$(st_tensors "$1") && b=$(st_tensors "$2") || return 1
    [ "$(echo "$a" | grep -c layer)" -gt 0 ] && [ "$a" = "$b" ]
}

"$DHF" init-model --preset tiny-sd15 --seed 3 -o "$T/model" --threads 1 >/dev/null ||
    fail "init-model"
"$DHF" synth -o "$T/data" --seed 1 --spair-only --categories bird,dog \
    --images-per-category 6 --pairs-per-category 3 --min-size 64 --max-size 96 \
    --antialias 1 --threads 1 >/dev/null || fail "synth"

cat > "$T/extract.yaml" <<YAML
model_id: $T/model
dataset: spair
data_root: $T/data/SPair-71k
split: test
diffusion_resolution: 64
num_timesteps: 5
save_timestep: [4, 2, 0]
vae_latent: sample
seed: 7
cache_dtype: float16
cache_compression: 1
YAML

# 1. uninterrupted
out=$("$DHF" extract "$T/extract.yaml" --set cache_path="$T/full/feats.h5" --threads 1) ||
    fail "full extraction"
echo "$out" | grep -q "0 already cached" || fail "full run summary: $out"
[ -f "$T/full/config.resolved.yaml" ] || fail "config.resolved.yaml not written next to the cache"
n=$(echo "$out" | sed -n 's/.*extracted \([0-9]*\) image.*/\1/p')
[ -n "$n" ] && [ "$n" -ge 4 ] || fail "expected >= 4 images, got '$n': $out"

# 2. interrupted after 2 committed images, then resumed
DHF_TEST_ABORT_AFTER=2 "$DHF" extract "$T/extract.yaml" --set cache_path="$T/resume/feats.h5" \
    --threads 1 >/dev/null 2>&1
rc=$?
[ $rc -eq 86 ] || fail "abort hook: exit $rc, expected 86"
info=$("$DHF" cache info "$T/resume/feats.h5") || fail "cache info on the interrupted file"
echo "$info" | grep -q "^images: *2 done / $n total" || fail "interrupted file: $info"
"$DHF" cache verify "$T/resume/feats.h5" >/dev/null || fail "verify interrupted file"
# A different setting on resume is refused.
err=$("$DHF" extract "$T/extract.yaml" --set cache_path="$T/resume/feats.h5" \
      --set num_timesteps=6 --set save_timestep=[5,2,0] 2>&1)
[ $? -eq 1 ] || fail "resume with other settings should fail: $err"
echo "$err" | grep -q "extracted differently" || fail "resume mismatch message: $err"
out=$("$DHF" extract "$T/extract.yaml" --set cache_path="$T/resume/feats.h5" --threads 1) ||
    fail "resumed extraction"
echo "$out" | grep -q "extracted $((n - 2)) image(s)" || fail "resume summary: $out"
echo "$out" | grep -q "2 already cached" || fail "resume summary: $out"

# 3. shards, then merge
for k in 0 1; do
    "$DHF" extract "$T/extract.yaml" --set cache_path="$T/shard/feats.h5" --shard $k/2 \
        --threads 1 >/dev/null || fail "shard $k/2"
done
[ -f "$T/shard/feats.shard0of2.h5" ] && [ -f "$T/shard/feats.shard1of2.h5" ] ||
    fail "shard files missing: $(ls "$T/shard")"
"$DHF" cache merge "$T/merged.h5" "$T/shard/feats.shard1of2.h5" "$T/shard/feats.shard0of2.h5" \
    >/dev/null || fail "merge"

# 4. bit-exact: every image of the full run vs the resumed and the merged files
keys=$("$DHF" cache info "$T/full/feats.h5" --keys | awk -F'\t' '$2 == "done" {print $1}') ||
    fail "cache info --keys"
checked=0
for key in $keys; do
    "$DHF" cache export "$T/full/feats.h5" "$key" -o "$T/a.safetensors" >/dev/null ||
        fail "export $key from the full file"
    "$DHF" cache export "$T/resume/feats.h5" "$key" -o "$T/b.safetensors" >/dev/null ||
        fail "export $key from the resumed file"
    "$DHF" cache export "$T/merged.h5" "$key" -o "$T/c.safetensors" >/dev/null ||
        fail "export $key from the merged file"
    same_tensors "$T/a.safetensors" "$T/b.safetensors" || fail "$key: resumed run differs"
    same_tensors "$T/a.safetensors" "$T/c.safetensors" || fail "$key: merged shards differ"
    checked=$((checked + 1))
done
[ "$checked" -eq "$n" ] || fail "compared $checked images, expected $n"
for f in full/feats.h5 resume/feats.h5 merged.h5; do
    "$DHF" cache verify "$T/$f" >/dev/null || fail "verify $f"
done
"$DHF" cache info "$T/merged.h5" | grep -q "^images: *$n done / $n total" || fail "merged info"

# 5. merging different extractions is refused, and leaves no output
"$DHF" extract "$T/extract.yaml" --set cache_path="$T/other.h5" --set vae_latent=mean \
    --threads 1 >/dev/null || fail "second extraction"
err=$("$DHF" cache merge "$T/bad.h5" "$T/full/feats.h5" "$T/other.h5" 2>&1)
[ $? -eq 1 ] || fail "merge of different extractions should fail"
echo "$err" | grep -q "vae_latent" || fail "merge refusal message: $err"
[ ! -e "$T/bad.h5" ] || fail "refused merge left an output"

# 6. the raw-feature baselines score from the cache
for p in layer:4 concat; do
    out=$("$DHF" eval "$T/extract.yaml" --set cache_path="$T/full/feats.h5" --provider $p \
          --set load_resolution=64 -o "$T/eval-$p" --quiet --threads 1) || fail "eval $p: $out"
    [ -f "$T/eval-$p/results.json" ] || fail "eval $p wrote no results.json"
done
echo "1 passed, 0 failed ($n images)"
