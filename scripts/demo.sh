#!/usr/bin/env bash
# demo.sh — the whole pipeline on the embedded default (configs/demo.yaml): a
# synthetic SPair-format benchmark, a tiny generated diffusers-layout model,
# extraction, training, evaluation of three descriptor sources and the mixing
# heatmap, into demo/. Called by `make demo` with the dhf binary as $1.
set -euo pipefail
DHF=${1:-build/bin/dhf}
OUT=demo
CFG=configs/demo.yaml
export DHF_PROGRESS=${DHF_PROGRESS:-plain}
t0=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - t0 ))s] $*"; }

mkdir -p "$OUT"
step "dhf info"
"$DHF" info --no-probe

step "dhf synth: synthetic SPair-71k + CUB-200-2011 layouts -> $OUT/data"
"$DHF" synth -o "$OUT/data" --seed 0
"$DHF" data check "$OUT/data/SPair-71k"

step "dhf init-model: tiny SD-1.5-structured model -> $OUT/model"
if [ ! -f "$OUT/model/model_index.json" ]; then
    "$DHF" init-model --preset tiny-sd15 --seed 0 -o "$OUT/model"
else
    echo "(exists)"
fi

step "dhf extract: 50-step DDIM inversion features of every image -> $OUT/features.h5"
for split in trn val test; do
    "$DHF" extract "$CFG" --set split=$split
done
"$DHF" cache info "$OUT/features.h5"

step "dhf train: aggregation network on the cached features"
rm -rf "$OUT/runs/demo"
"$DHF" train "$CFG"
CKPT="$OUT/runs/demo/best.safetensors"

step "dhf eval: test split, three descriptor sources"
declare -A NAMES=([layer4]="SD-Layer-4 (raw)" [concat]="SD-Concat-All (raw)" [hyper]="Diffusion Hyperfeatures")
"$DHF" eval "$CFG" --split test --provider layer:4 -o "$OUT/eval/layer4" --quiet | tee "$OUT/eval-layer4.txt"
"$DHF" eval "$CFG" --split test --provider concat -o "$OUT/eval/concat" --quiet | tee "$OUT/eval-concat.txt"
"$DHF" eval "$CFG" --split test --checkpoint "$CKPT" -o "$OUT/eval/hyper" --quiet | tee "$OUT/eval-hyper.txt"

step "dhf heatmap: mixing weights -> $OUT/mixing.png"
"$DHF" heatmap "$CKPT" -o "$OUT/mixing.png"

echo
echo "PCK@0.1 on the synthetic SPair test split (pooled per keypoint)"
printf '%-28s %8s %8s\n' "method" "img" "bbox"
for m in layer4 concat hyper; do
    # the summary line: "PCK@0.1 img 10.47 bbox 3.69 (pooled per keypoint; ...)"
    read -r img bbox < <(sed -n 's/^PCK@0\.1 img \([0-9.]*\) bbox \([0-9.]*\).*/\1 \2/p' "$OUT/eval-$m.txt") || true
    printf '%-28s %8s %8s\n' "${NAMES[$m]}" "${img:-?}" "${bbox:-?}"
done
echo
echo "demo: done in $(( $(date +%s) - t0 ))s. Files:"
echo "  $OUT/data/            synthetic SPair-71k and CUB_200_2011"
echo "  $OUT/model/           tiny diffusers-layout model"
echo "  $OUT/features.h5      feature cache (dhf cache info $OUT/features.h5)"
echo "  $OUT/runs/demo/       checkpoints, metrics.jsonl, heatmaps"
echo "  $OUT/eval/*/          results.json, results.md, predictions.jsonl"
echo "  $OUT/mixing.png       mixing-weight heatmap (.svg, .csv beside it)"
