#!/usr/bin/env bash
# init_model.sh — `dhf init-model`: writes a loadable diffusers folder (verified by
# loading it back), the same seed gives the same bytes, a different seed different
# weights, an existing folder is refused without --force, bad options exit 2.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
TMP=$(mktemp -d /tmp/dhf_e2e_init_XXXXXX) || fail "mktemp"
trap 'rm -rf "$TMP"' EXIT

out=$("$DHF" init-model --preset tiny-sd15 --seed 7 -o "$TMP/a" --threads 1) || fail "init-model a: $out"
echo "$out" | grep -q "^verified: .* loads (UNet 2783076 parameters, 12 DHF layers)" || fail "verify line: $out"
for f in model_index.json unet/config.json unet/diffusion_pytorch_model.safetensors \
         vae/config.json vae/diffusion_pytorch_model.safetensors text_encoder/config.json \
         text_encoder/model.safetensors tokenizer/tokenizer_config.json \
         tokenizer/special_tokens_map.json scheduler/scheduler_config.json; do
    [ -s "$TMP/a/$f" ] || fail "missing $f"
done
grep -q '"pad_token":[[:space:]]*"<|endoftext|>"' "$TMP/a/tokenizer/special_tokens_map.json" || fail "sd15 pad token"
"$DHF" init-model --preset tiny-sd15 --seed 7 -o "$TMP/b" --no-verify >/dev/null || fail "init-model b"
cmp -s "$TMP/a/unet/diffusion_pytorch_model.safetensors" "$TMP/b/unet/diffusion_pytorch_model.safetensors" \
    || fail "same seed, different UNet bytes"
"$DHF" init-model --preset tiny-sd15 --seed 8 -o "$TMP/c" --no-verify >/dev/null || fail "init-model c"
cmp -s "$TMP/a/unet/diffusion_pytorch_model.safetensors" "$TMP/c/unet/diffusion_pytorch_model.safetensors" \
    && fail "different seeds, same UNet bytes"
out=$("$DHF" init-model --preset tiny-sd21 --dtype float16 -o "$TMP/d") || fail "tiny-sd21: $out"
grep -q '"pad_token":[[:space:]]*"!"' "$TMP/d/tokenizer/special_tokens_map.json" || fail "sd21 pad token"
grep -q '"use_linear_projection":[[:space:]]*true' "$TMP/d/unet/config.json" || fail "sd21 linear projection"

# refusals and usage errors
err=$("$DHF" init-model --preset tiny-sd15 -o "$TMP/a" 2>&1); [ $? -eq 1 ] || fail "existing folder exit code"
echo "$err" | grep -q -- "--force" || fail "existing folder message: $err"
"$DHF" init-model --preset tiny-sd15 -o "$TMP/a" --force --no-verify >/dev/null || fail "--force"
err=$("$DHF" init-model --preset huge -o "$TMP/e" 2>&1); [ $? -eq 1 ] || fail "unknown preset exit code"
echo "$err" | grep -q "unknown preset 'huge'" || fail "unknown preset message: $err"
[ ! -e "$TMP/e" ] || fail "a failed run left $TMP/e"
"$DHF" init-model -o "$TMP/f" >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing --preset exit code"
"$DHF" init-model --preset tiny-sd15 >/dev/null 2>&1; [ $? -eq 2 ] || fail "missing -o exit code"
"$DHF" init-model --preset tiny-sd15 -o "$TMP/g" --dtype int8 >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad dtype"
"$DHF" init-model --help | grep -q "sd15-shapes" || fail "--help"
ls "$TMP" | grep -q "\.tmp\." && fail "temporary folder left behind"
echo "1 passed, 0 failed"
