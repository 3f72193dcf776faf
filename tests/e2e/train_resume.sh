#!/usr/bin/env bash
# train_resume.sh — `dhf train` end to end on a tiny pipeline (dhf synth -> dhf
# init-model tiny-sd15 -> dhf extract -> dhf train): a run killed at a step boundary
# (test hook) and one killed by a real SIGKILL at an arbitrary moment, each resumed
# with --resume, must end with the same last.safetensors / best.safetensors bytes and
# the same loss and validation log as an uninterrupted run; a cache extracted with
# other timesteps is refused; `dhf eval --provider hyperfeatures --checkpoint`
# records the checkpoint in its protocol.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
export DHF_PROGRESS=0

for cmd in synth init-model extract train; do
    if ! "$DHF" --help | awk '{print $1}' | grep -qx "$cmd"; then
        echo "dhf $cmd is not available in this build: skipped"
        exit 77
    fi
done
work=$(mktemp -d /tmp/dhf_e2e_train.XXXXXX) || fail "mktemp"
trap 'rm -rf "$work"' EXIT
cd "$work" || fail "cd $work"

"$DHF" synth -o data --categories bird,car --images-per-category 10 --pairs-per-category 10 \
    --spair-only --threads 2 >synth.log 2>&1 || fail "dhf synth: $(tail -3 synth.log)"
"$DHF" init-model --preset tiny-sd15 -o model --threads 2 >model.log 2>&1 ||
    fail "dhf init-model: $(tail -3 model.log)"
cat >train.yaml <<'EOF'
model_id: model
data_root: data/SPair-71k
cache_path: cache/features.h5
diffusion_resolution: 64
num_timesteps: 2
save_timestep: [1, 0]
projection_dim: 128
output_resolution: 16
load_resolution: 64
max_steps_per_epoch: 8
max_epochs: 2
val_every_n_steps: 6
checkpoint_every_n_steps: 5
val_pairs_per_category: 2
output_dir: runs
run_name: r
threads: 2
EOF
for split in trn val; do
    "$DHF" extract train.yaml --set split=$split >extract_$split.log 2>&1 ||
        fail "dhf extract split=$split: $(tail -3 extract_$split.log)"
done

# The log without its timing tails: train and val records in order.
log_of() { sed -E 's/,"(steps_per_s|seconds)".*//' "$1"; }

# 1. the reference: uninterrupted
"$DHF" train train.yaml >a.out 2>a.err || fail "dhf train: $(cat a.err)"
# the step runs on oneDNN when dhf was built with it, else on libtorch autograd
if "$DHF" info --no-probe | grep -q "^oneDNN     training step on oneDNN"; then
    grep -q "fast order on oneDNN" a.err || fail "built with oneDNN but dhf train did not use it: $(cat a.err)"
else
    grep -q "fast order on libtorch autograd" a.err || fail "no implementation line: $(cat a.err)"
fi
total=$(grep -c '"type":"train"' runs/r/metrics.jsonl)
[ "$total" = 16 ] || fail "only $total training steps: $(cat a.out)"
for f in config.resolved.yaml metrics.jsonl last.safetensors best.safetensors; do
    [ -s runs/r/$f ] || fail "the run wrote no $f"
done
ls runs/r/heatmaps/mixing_step_000006.png runs/r/heatmaps/mixing_step_000006.svg \
    runs/r/heatmaps/mixing_step_000006.csv >/dev/null 2>&1 || fail "no heatmap at step 6"
grep -q '"type":"val","step":6,' runs/r/metrics.jsonl || fail "no validation at step 6"
grep -q "\"type\":\"val\",\"step\":$total," runs/r/metrics.jsonl || fail "no validation at the final step"
mkdir ref && cp runs/r/last.safetensors runs/r/best.safetensors ref/ && log_of runs/r/metrics.jsonl >ref/log
rm -rf runs/r

# 2. killed right after step 9 (the last checkpoint is step 6, the validation): steps
# 7..9 are redone across the epoch boundary (8 steps per epoch)
DHF_TEST_ABORT_AT_STEP=9 "$DHF" train train.yaml >b1.out 2>b1.err
rc=$?
[ $rc -eq 137 ] || fail "the abort hook exited with $rc, expected 137: $(cat b1.err)"
[ "$(grep -c '"type":"train"' runs/r/metrics.jsonl)" = 9 ] || fail "expected 9 logged steps before the kill"
"$DHF" train --resume runs/r >b2.out 2>b2.err || fail "dhf train --resume: $(cat b2.err)"
grep -q "trained steps 7\.\.$total of $total" b2.out || fail "resume did not continue at step 7: $(cat b2.out)"
cmp -s runs/r/last.safetensors ref/last.safetensors || fail "last.safetensors differs after the resume"
cmp -s runs/r/best.safetensors ref/best.safetensors || fail "best.safetensors differs after the resume"
log_of runs/r/metrics.jsonl | diff - ref/log >/dev/null || fail "metrics.jsonl differs after the resume: $(log_of runs/r/metrics.jsonl | diff - ref/log | head -4)"
# resuming a finished run does nothing
"$DHF" train --resume runs/r >b3.out 2>&1 || fail "resume of a finished run: $(cat b3.out)"
grep -q "nothing to do" b3.out || fail "a finished run was trained again: $(cat b3.out)"
cmp -s runs/r/last.safetensors ref/last.safetensors || fail "a no-op resume changed last.safetensors"
rm -rf runs/r

# 3. a real SIGKILL at whatever moment the run has reached after a few steps
"$DHF" train train.yaml >c1.out 2>c1.err &
pid=$!
for _ in $(seq 1 600); do
    n=$(cat runs/r/metrics.jsonl 2>/dev/null | grep -c '"type":"train"')
    [ "$n" -ge 3 ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
"$DHF" train --resume runs/r >c2.out 2>c2.err || fail "resume after kill -9: $(cat c2.err)"
cmp -s runs/r/last.safetensors ref/last.safetensors || fail "last.safetensors differs after kill -9 + resume"
log_of runs/r/metrics.jsonl | diff - ref/log >/dev/null || fail "metrics.jsonl differs after kill -9 + resume"

# 4. other timesteps than the cache holds: refused, both sides printed
"$DHF" train train.yaml --set run_name=bad --set 'save_timestep=[0, 1]' >d.out 2>d.err
rc=$?
[ $rc -eq 1 ] || fail "a mismatched cache was not refused (exit $rc)"
grep -q "save_timestep \[0, 1\]" d.err && grep -q "save_timestep \[1, 0\]" d.err ||
    fail "the refusal does not print both descriptions: $(cat d.err)"
[ ! -e runs/bad ] || fail "a refused run left a folder"

# 5. the trained network as an evaluation provider
"$DHF" eval train.yaml --split val --pairs-per-category 2 --provider hyperfeatures \
    --checkpoint runs/r/best.safetensors -o eval --quiet >e.out 2>e.err ||
    fail "dhf eval --checkpoint: $(cat e.err)"
grep -q '"checkpoint_name":[[:space:]]*"best.safetensors"' eval/results.json ||
    fail "results.json does not name the checkpoint"
grep -q '"step":[[:space:]]*[0-9]' eval/results.json || fail "results.json does not give the step"
# 6. the network through the paper's torch.save layout and back (dhf export, dhf
#    import: no cache identity, the cache's layout taken): the same PCK
"$DHF" export runs/r/best.safetensors -o best.pt >x.out 2>x.err || fail "dhf export: $(cat x.err)"
"$DHF" import best.pt -o imported.safetensors >i.out 2>i.err || fail "dhf import: $(cat i.err)"
"$DHF" eval train.yaml --split val --pairs-per-category 2 --provider hyperfeatures \
    --checkpoint imported.safetensors -o eval_imported --quiet >ei.out 2>ei.err ||
    fail "dhf eval of the imported network: $(cat ei.err)"
a=$(sed -n 's/^PCK@0\.1 \(img [0-9.]* bbox [0-9.]*\).*/\1/p' e.out)
b=$(sed -n 's/^PCK@0\.1 \(img [0-9.]* bbox [0-9.]*\).*/\1/p' ei.out)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "export -> import changed the PCK: '$a' vs '$b'"
# 7. a new run from the imported network and its AdamW state (dhf train --init)
"$DHF" train train.yaml --set run_name=cont --init imported.safetensors --quiet >n.out 2>n.err ||
    fail "dhf train --init: $(cat n.err)"
grep -q "starting from imported.safetensors (parameters, AdamW moments and step count)" n.err ||
    fail "--init did not say what it took: $(cat n.err)"
[ -f runs/cont/last.safetensors ] || fail "dhf train --init wrote no checkpoint"
"$DHF" train train.yaml --resume runs/r --init imported.safetensors >/dev/null 2>&1
[ $? -eq 2 ] || fail "--resume with --init: expected a usage error"
# 8. the pruned rows of Table 1: SD-Layer-Pruned (pruned) is layer:L@LABEL of the largest
#    mixing weight, and that cell is the argmax of dhf heatmap's CSV; Ours-Pruned
#    (bottleneck) takes the same map
"$DHF" eval train.yaml --split val --pairs-per-category 2 --provider pruned \
    --checkpoint runs/r/best.safetensors -o eval_pruned --quiet >p.out 2>p.err ||
    fail "dhf eval --provider pruned: $(cat p.err)"
map=$(sed -n 's/.*pruned(layer:\([0-9]*@[0-9]*\)).*/\1/p' p.out)
[ -n "$map" ] || fail "pruned did not name its map: $(cat p.out)"
"$DHF" eval train.yaml --split val --pairs-per-category 2 --provider "layer:$map" \
    -o eval_layer --quiet >l.out 2>l.err || fail "dhf eval layer:$map: $(cat l.err)"
a=$(sed -n 's/^PCK@0\.1 \(img [0-9.]* bbox [0-9.]*\).*/\1/p' p.out)
b=$(sed -n 's/^PCK@0\.1 \(img [0-9.]* bbox [0-9.]*\).*/\1/p' l.out)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "pruned and layer:$map differ: '$a' vs '$b'"
"$DHF" heatmap runs/r/best.safetensors -o mix.png >/dev/null 2>&1 || fail "dhf heatmap"
# the CSV's argmax cell (row = layer, column j = storage step j under the plot's label)
cell=$(awk -F, 'NR > 1 { for (j = 2; j <= NF; j++) if (best == "" || $j > best) { best = $j; l = $1; c = j - 1 } }
               END { print l "," c }' mix.csv)
layer=${map%@*}
[ "${cell%,*}" = "$layer" ] || fail "heatmap argmax layer ${cell%,*}, pruned layer $layer"
labels=$(sed -n 's/^save_timestep: *\[\(.*\)\].*/\1/p' train.yaml | tr -d ' ')
[ -n "$labels" ] || fail "no save_timestep in train.yaml"
[ "$(echo "$labels" | cut -d, -f"${cell#*,}")" = "${map#*@}" ] ||
    fail "heatmap argmax column ${cell#*,} (labels $labels) is not pruned's step ${map#*@}"
"$DHF" eval train.yaml --split val --pairs-per-category 2 --provider bottleneck \
    --checkpoint runs/r/best.safetensors -o eval_bneck --quiet >bn.out 2>bn.err ||
    fail "dhf eval --provider bottleneck: $(cat bn.err)"
grep -q "bottleneck:$map" bn.out || fail "bottleneck chose another map: $(cat bn.out)"
echo "train_resume: all checks passed ($total steps; abort hook, kill -9, cache guard, eval provider, export/import, pruned providers)"
