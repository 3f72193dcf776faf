#!/usr/bin/env bash
# vit_baselines.sh — the DINO / DINOv2 providers end to end: dhf init-model writes tiny
# random ViT folders that load back; dhf eval --provider dino:DIR / dinov2:DIR runs on
# a synthetic benchmark and records the baseline's conventions (layer, stride, facet,
# load size) in its protocol; the same provider twice gives the same predictions; a
# preset without weights, a pad resize, a ViT of the other family and a layer past the
# last block are refused with one line naming what is wrong.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
export DHF_PROGRESS=0
work=$(mktemp -d /tmp/dhf_e2e_vit.XXXXXX) || fail "mktemp"
trap 'rm -rf "$work"' EXIT
cd "$work" || fail "cd"

"$DHF" synth -o data --categories dog,car --images-per-category 6 --pairs-per-category 3 \
    --spair-only --threads 2 >synth.log 2>&1 || fail "dhf synth: $(tail -3 synth.log)"
"$DHF" init-model --preset tiny-dino -o dino >m.log 2>&1 || fail "init-model tiny-dino: $(cat m.log)"
grep -q "verified: dino loads (DINO, 10 blocks, C 48, 3 heads)" m.log || fail "tiny-dino: $(cat m.log)"
"$DHF" init-model --preset tiny-dinov2 -o dinov2 >m2.log 2>&1 || fail "init-model tiny-dinov2: $(cat m2.log)"
[ -s dino/config.json ] && [ -s dino/model.safetensors ] || fail "tiny-dino folder incomplete"
"$DHF" init-model --preset tiny-dino -o dino >m3.log 2>&1 && fail "init-model over a model without --force"
grep -q "already holds a model" m3.log || fail "overwrite message: $(cat m3.log)"

E="$DHF eval --data data/SPair-71k --split test --set load_resolution=64 --quiet"
$E --provider dino:dino --set vit.dino_load_size=64 -o e1 >e1.log 2>&1 || fail "eval dino: $(cat e1.log)"
grep -q "^PCK@0.1 img .* dino:tiny-dino" e1.log || fail "dino summary: $(cat e1.log)"
$E --provider dino:dino --set vit.dino_load_size=64 -o e1b >/dev/null 2>&1 || fail "eval dino again"
cmp -s e1/predictions.jsonl e1b/predictions.jsonl || fail "the same provider twice gave other predictions"
$E --provider dinov2:dinov2 --set vit.dinov2_load_size=56 -o e2 >e2.log 2>&1 || fail "eval dinov2: $(cat e2.log)"
python3 - e1/results.json e2/results.json <<'EOF' || fail "protocol of the ViT providers"
import json, sys
a = json.load(open(sys.argv[1]))["protocol"]["descriptor_source"]
b = json.load(open(sys.argv[2]))["protocol"]["descriptor_source"]
assert a["family"] == "dino" and a["layer"] == 9 and a["stride"] == 4 and a["load_size"] == 64, a
assert a["facet"].startswith("key"), a
assert b["family"] == "dinov2" and b["layer"] == 11 and b["stride"] == 14 and b["load_size"] == 56, b
assert b["facet"].startswith("token (block output"), b
EOF

# refusals: exit 1 and one line naming the cause
expect_error() {   # expect_error PATTERN ARGS...
    local pat=$1; shift
    $E "$@" -o bad >bad.log 2>&1; local rc=$?
    [ $rc -eq 1 ] || fail "expected exit 1 for $*: rc=$rc $(cat bad.log)"
    grep -q "$pat" bad.log || fail "expected '$pat' for $*: $(cat bad.log)"
}
expect_error "no weights for dino_vits8: set vit.dino_weights" --provider dino
expect_error "must be stretch" --provider dino:dino --set eval.resize=pad
expect_error "is a dinov2 model" --provider dino:dinov2
expect_error "layer 12 .*vit.dino_layer\|blocks 0..9" --provider dino:dino --set vit.dino_layer=12
expect_error "do not exist" --provider dino --set vit.dino_weights=nowhere.pth
echo "vit_baselines: OK"
