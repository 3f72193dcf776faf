#!/usr/bin/env bash
# demo.sh — the whole pipeline on the embedded default (configs/demo.yaml): a
# synthetic SPair-format benchmark, a tiny generated diffusers-layout model,
# extraction, training, evaluation of five descriptor sources, the mixing heatmap,
# and the paper's Table 1 with two tiny models (dhf table1, configs/demo-table1.yaml),
# into demo/. Called by `make demo` with the dhf binary as $1.
set -euo pipefail
DHF=${1:-build/bin/dhf}
OUT=demo
CFG=configs/demo.yaml
export DHF_PROGRESS=${DHF_PROGRESS:-plain}
t0=$(date +%s)
step() { echo; echo "== [$(( $(date +%s) - t0 ))s] $*"; }

mkdir -p "$OUT"
# Every feature cache of an earlier demo run that this dhf cannot read (an older cache
# schema: the extraction, the generation and dhf table1 caches alike) is kept aside as
# *.unreadable, and the step that made it makes it anew.
while IFS= read -r f; do
    if ! "$DHF" cache info "$f" >/dev/null 2>&1; then
        mv "$f" "$f.unreadable"
        echo "($f is not readable by this dhf: moved to $f.unreadable)"
    fi
done < <(find "$OUT" -name '*.h5' -type f)

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

step "dhf eval: test split, five descriptor sources (Table 1's pruned rows too)"
declare -A NAMES=([layer4]="SD-Layer-4 (raw)" [concat]="SD-Concat-All (raw)" [hyper]="Diffusion Hyperfeatures"
                  [pruned]="SD-Layer-Pruned (raw)" [bneck]="Ours-Pruned")
"$DHF" eval "$CFG" --split test --provider layer:4 -o "$OUT/eval/layer4" --quiet | tee "$OUT/eval-layer4.txt"
"$DHF" eval "$CFG" --split test --provider concat -o "$OUT/eval/concat" --quiet | tee "$OUT/eval-concat.txt"
"$DHF" eval "$CFG" --split test --checkpoint "$CKPT" -o "$OUT/eval/hyper" --quiet | tee "$OUT/eval-hyper.txt"
"$DHF" eval "$CFG" --split test --provider pruned --checkpoint "$CKPT" -o "$OUT/eval/pruned" --quiet | tee "$OUT/eval-pruned.txt"
"$DHF" eval "$CFG" --split test --provider bottleneck --checkpoint "$CKPT" -o "$OUT/eval/bneck" --quiet | tee "$OUT/eval-bneck.txt"

step "dhf pck --bootstrap: is Hyperfeatures vs SD-Layer-4 more than noise?"
"$DHF" pck --predictions "$OUT/eval/hyper/predictions.jsonl" --bootstrap 2000 \
    --versus "$OUT/eval/layer4/predictions.jsonl" -o "$OUT/eval/bootstrap"

step "dhf export / dhf import: the network in the paper's torch.save layout and back"
"$DHF" export "$CKPT" -o "$OUT/best.pt"
"$DHF" import "$OUT/best.pt" -o "$OUT/imported.safetensors"

step "dhf heatmap: mixing weights -> $OUT/mixing.png"
"$DHF" heatmap "$CKPT" -o "$OUT/mixing.png"

step "dhf generate: two images from one prompt (CFG 7.5), their generation features -> $OUT/generate"
"$DHF" generate "$CFG" --prompt "a cat sitting in a living room" -n 2 --seed 0 \
    --set guidance_scale=7.5 --set flip_timesteps=true -o "$OUT/generate"
GEN="$OUT/generate/images/0000-a-cat-sitting-in-a-living-room"

step "dhf match / dhf draw: the inversion-trained network on the generated pair and on a real one"
"$DHF" match "$CFG" "$GEN/0.png" "$GEN/1.png" --checkpoint "$CKPT" \
    --cache "$OUT/generate/features.h5" -o "$OUT/match-generated.png"
"$DHF" match "$CFG" "$OUT/data/SPair-71k/JPEGImages/bird/bird_000001.jpg" \
    "$OUT/data/SPair-71k/JPEGImages/bird/bird_000003.jpg" --checkpoint "$CKPT" -o "$OUT/match-real.png"
"$DHF" draw "$OUT/eval/hyper/predictions.jsonl" --pair 0 -o "$OUT/pair0.png"

step "dhf init-model: tiny SD-2.1-structured model -> $OUT/model-sd21"
if [ ! -f "$OUT/model-sd21/model_index.json" ]; then
    "$DHF" init-model --preset tiny-sd21 --seed 0 -o "$OUT/model-sd21"
else
    echo "(exists)"
fi

step "dhf init-model: tiny random DINO and DINOv2 ViTs -> $OUT/dino, $OUT/dinov2"
for m in dino dinov2; do
    if [ ! -f "$OUT/$m/config.json" ]; then
        "$DHF" init-model --preset tiny-$m --seed 0 -o "$OUT/$m"
    else
        echo "(exists: $OUT/$m)"
    fi
done

step "dhf table1: the paper's Table 1 from configs/demo-table1.yaml (a re-run redoes nothing)"
"$DHF" table1 configs/demo-table1.yaml --quiet

echo
echo "PCK@0.1 on the synthetic SPair test split (pooled per keypoint)"
printf '%-28s %8s %8s\n' "method" "img" "bbox"
for m in layer4 concat pruned bneck hyper; do
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
echo "  $OUT/best.pt          the network as the paper's code saves it (dhf export)"
echo "  $OUT/generate/        dhf generate: images/, features.h5, latents/, generations.jsonl"
echo "  $OUT/match-*.png      dhf match: dense correspondences (generated and real pair)"
echo "  $OUT/pair0.png        dhf draw: one evaluated pair"
echo "  $OUT/table1/          dhf table1: table1.md, table1.json, per_category/, heatmaps/"
echo "(a tiny random-weight model: the numbers show the pipeline, not the paper)"
