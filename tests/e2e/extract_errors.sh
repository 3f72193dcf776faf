#!/usr/bin/env bash
# extract_errors.sh — `dhf extract` on bad input fails with exit 1 and a message
# naming the file and what was expected, never a crash or a silent result: an
# image that does not decode, a missing model folder, a config key that does not
# exist, a truncated weights file.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
T=$(mktemp -d /tmp/dhf_e2e_extract_err_XXXXXX) || fail "mktemp"
trap 'rm -rf "$T"' EXIT
export DHF_PROGRESS=0

"$DHF" init-model --preset tiny-sd15 --seed 5 -o "$T/model" --threads 1 >/dev/null || fail "init-model"
mkdir -p "$T/img/cat"
# a PNG header followed by garbage: looks like an image, fails to decode
printf '\x89PNG\r\n\x1a\n' > "$T/img/cat/broken.png"
head -c 300 /dev/urandom >> "$T/img/cat/broken.png"
echo "$T/img/cat/broken.png" > "$T/list.txt"
cat > "$T/x.yaml" <<YAML
model_id: $T/model
image_list: $T/list.txt
cache_path: $T/f.h5
diffusion_resolution: 64
num_timesteps: 2
save_timestep: [1, 0]
YAML

expect_fail() {   # expect_fail NAME PATTERN CMD...
    local name=$1 pat=$2; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    [ $rc -eq 1 ] || fail "$name: exit $rc (want 1): $out"
    echo "$out" | grep -q -- "$pat" || fail "$name: message lacks '$pat': $out"
}

expect_fail "undecodable image" "broken.png" "$DHF" extract "$T/x.yaml" --threads 1
# the remaining cases start from a list of good images
"$DHF" synth -o "$T/data" --seed 2 --spair-only --categories dog --images-per-category 6 \
    --pairs-per-category 1 --min-size 64 --max-size 80 --antialias 1 --threads 1 >/dev/null || fail "synth"
ls "$T"/data/SPair-71k/JPEGImages/dog/*.jpg | head -1 > "$T/list.txt"
expect_fail "missing model" "$T/nope" "$DHF" extract "$T/x.yaml" --set model_id="$T/nope" --threads 1
printf 'model_idd: x\n' > "$T/bad.yaml"
expect_fail "unknown key" "model_idd" "$DHF" extract "$T/bad.yaml" --threads 1
w="$T/model/unet/diffusion_pytorch_model.safetensors"
head -c $(( $(stat -c %s "$w") / 2 )) "$w" > "$w.half" && mv "$w.half" "$w"
expect_fail "truncated weights" "diffusion_pytorch_model.safetensors" "$DHF" extract "$T/x.yaml" --threads 1
echo "1 passed, 0 failed"
