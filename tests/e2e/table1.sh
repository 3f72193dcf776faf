#!/usr/bin/env bash
# table1.sh — `dhf table1` end to end on a tiny pipeline (dhf synth, two tiny
# random-weight models): the plan (--dry-run), every row made, a second run that
# finds every stage done, a run killed during training (test hook) and re-run giving
# the same table as an uninterrupted one, SD-Layer-Pruned equal to `dhf eval
# --provider layer:l*@s*` run by hand with (l*, s*) the argmax of `dhf heatmap`'s
# CSV, a changed training key making training and evaluations stale but not the
# features, the bad-input answers, and kill -9 at random moments (KILL_LOOPS kills: 3
# in make test, 20 under make test-faults): every stage record is complete or absent,
# and the run finished after the kills gives the uninterrupted run's numbers.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
export DHF_PROGRESS=0

if ! "$DHF" --help | awk '{print $1}' | grep -qx table1; then
    echo "dhf table1 is not available in this build: skipped"
    exit 77
fi
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }
work=$(mktemp -d /tmp/dhf_e2e_table1.XXXXXX) || fail "mktemp"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cd "$work" || fail "cd $work"

"$DHF" synth -o data --categories bird,car --images-per-category 6 --pairs-per-category 4 \
    --cub-classes 2 --cub-images-per-class 4 --threads 2 >synth.log 2>&1 ||
    fail "dhf synth: $(tail -3 synth.log)"
"$DHF" init-model --preset tiny-sd15 -o sd15 --threads 2 >m1.log 2>&1 || fail "init-model sd15: $(tail -3 m1.log)"
"$DHF" init-model --preset tiny-sd21 -o sd21 --threads 2 >m2.log 2>&1 || fail "init-model sd21: $(tail -3 m2.log)"
"$DHF" init-model --preset tiny-dino -o dino >m3.log 2>&1 || fail "init-model tiny-dino: $(tail -3 m3.log)"
"$DHF" init-model --preset tiny-dinov2 -o dinov2 >m4.log 2>&1 || fail "init-model tiny-dinov2: $(tail -3 m4.log)"
cat >t1.yaml <<'EOF'
model_id: sd15
data_root: data/SPair-71k
table1:
  model_sd21: sd21
  cub_root: data/CUB_200_2011
  cub_pairs_per_category: 3
  test_pairs: full
  bootstrap: 300
vit:
  dino_model: dino
  dino_load_size: 64
  dinov2_model: dinov2
  dinov2_load_size: 56
diffusion_resolution: 64
num_timesteps: 3
save_timestep: [2, 1, 0]
projection_dim: 128
output_resolution: 16
load_resolution: 64
max_steps_per_epoch: 8
max_epochs: 2
val_every_n_steps: 4
checkpoint_every_n_steps: 3
val_pairs_per_category: 2
output_dir: out
threads: 2
EOF

# 1. usage and bad input
"$DHF" table1 --help | grep -q "ours-pruned" || fail "--help lists no rows"
"$DHF" table1 >/dev/null 2>&1; [ $? -eq 2 ] || fail "no config: expected exit 2"
"$DHF" table1 t1.yaml --rows ours,nope >err.txt 2>&1; [ $? -eq 2 ] || fail "unknown row: expected exit 2"
grep -q "unknown row 'nope'" err.txt || fail "unknown row message: $(cat err.txt)"
printf 'table1:\n  bootstrap: many\n' >bad.yaml
"$DHF" table1 bad.yaml >err.txt 2>&1; [ $? -eq 1 ] || fail "bad key: expected exit 1"
grep -q "bad.yaml:2:.*table1.bootstrap" err.txt || fail "bad key message: $(cat err.txt)"

"$DHF" table1 t1.yaml --set table1.model_sd21=nowhere >err.txt 2>&1; [ $? -eq 1 ] || fail "missing model: expected exit 1"
grep -q "table1.model_sd21 'nowhere' does not exist" err.txt || fail "missing model message: $(cat err.txt)"
[ ! -e out/table1/stages ] || fail "a missing model still started work"

# 2. the plan: nothing done, nothing written but the plan printed
"$DHF" table1 t1.yaml --dry-run >plan.txt 2>&1 || fail "dry run: $(tail -3 plan.txt)"
grep -q "dry run: 0 of 33 stages done, 33 to run" plan.txt || fail "dry run plan: $(tail -3 plan.txt)"
"$DHF" table1 t1.yaml --dry-run --set vit.dino_model=dino_vits8 >plan2.txt 2>&1 || fail "dry run without DINO weights"
grep -q "\[n/a   \] DINO .*no weights (set vit.dino_weights)" plan2.txt || fail "DINO without weights not marked: $(grep DINO plan2.txt)"
[ ! -e out/table1 ] || fail "--dry-run wrote files"

# 3. killed during the first training stage (hook: exit 137 after step 5), then re-run
DHF_TEST_ABORT_AT_STEP=5 "$DHF" table1 t1.yaml --set table1.out_dir=killed >k1.log 2>&1
[ $? -eq 137 ] || fail "abort hook: expected exit 137: $(tail -3 k1.log)"
"$DHF" table1 t1.yaml --set table1.out_dir=killed --dry-run >k2.log 2>&1 || fail "dry run after kill"
grep -q "\[resume\] train Ours-One-Step" k2.log || fail "killed training not planned as resume: $(cat k2.log)"
"$DHF" table1 t1.yaml --set table1.out_dir=killed >k3.log 2>&1 || fail "re-run after kill: $(tail -5 k3.log)"
grep -q "trained steps 5..8 of 8" k3.log || fail "training did not resume from its checkpoint: $(grep trained k3.log)"

# 4. uninterrupted, every row; the same table
"$DHF" table1 t1.yaml >a.log 2>&1 || fail "dhf table1: $(tail -5 a.log)"
T=out/table1
for f in table1.md table1.json per_category/spair.md per_category/spair.csv per_category/cub.csv \
         heatmaps/ours.png heatmaps/ours.csv heatmaps/ours-sd21.svg heatmaps/ours-one-step.csv; do
    [ -s "$T/$f" ] || fail "missing $T/$f"
done
diff <(sed 's#killed#out/table1#g' killed/table1.md) "$T/table1.md" >/dev/null ||
    fail "a run killed during training and re-run gives another table: $(diff <(sed 's#killed#out/table1#g' killed/table1.md) "$T/table1.md" | head -5)"
python3 - "$T/table1.json" killed/table1.json <<'EOF' || fail "table1.json numbers differ after the kill"
import json, sys
def nums(path):
    d = json.load(open(path))
    out = {}
    for r in d["rows"]:
        for ds, e in r.get("results", {}).items():
            out[(r["id"], ds)] = (e["img"], e["bbox"], e["n_pairs"], e["n_keypoints"])
    out["rel"] = [(x.get("difference"), x.get("holds")) for x in d["relations"]]
    return out
a, b = nums(sys.argv[1]), nums(sys.argv[2])
sys.exit(0 if a == b else 1)
EOF

# 5. the content: every row but DINO/DINOv2 on both datasets, intervals around the
#    estimate, relations judged, the paper's figures present
python3 - "$T/table1.json" <<'EOF' || fail "table1.json content"
import json, sys
d = json.load(open(sys.argv[1]))
rows = {r["id"]: r for r in d["rows"]}
for rid in ["sd-layer-4", "sd-concat-all", "ours-one-step", "sd-layer-pruned", "ours-pruned", "ours", "ours-sd21", "dino", "dinov2"]:
    for ds in ["spair", "cub"]:
        e = rows[rid]["results"][ds]
        for k in ["img", "bbox"]:
            assert e[k]["lo"] <= e[k]["pck"] <= e[k]["hi"], (rid, ds, k, e[k])
        assert e["protocol"]["descriptor_source"]["provider"], rid
assert rows["dino"]["results"]["spair"]["protocol"]["descriptor_source"]["layer"] == 9
assert rows["dino"]["results"]["spair"]["protocol"]["descriptor_source"]["stride"] == 4
assert rows["dinov2"]["results"]["spair"]["protocol"]["descriptor_source"]["layer"] == 11
assert rows["ours"]["paper"] == {"spair_img": 72.56, "spair_bbox": 64.61, "cub_img": 82.29}
assert rows["dino"]["paper"]["spair_img"] == 51.68 and rows["dino"]["paper"]["spair_bbox"] == 41.04
assert len(d["relations"]) == 6
for x in d["relations"]:
    assert isinstance(x["holds"], bool), x
    iv = x["difference"]
    assert iv["lo"] <= iv["pck"] <= iv["hi"], x
# a relation's difference is the difference of the two rows' estimates
def img(r): return rows[r]["results"]["spair"]["img"]["pck"]
x = d["relations"][0]
assert abs(x["difference"]["pck"] - (img(x["a"]) - img(x["b"]))) < 1e-12, x
# the one-step rows read one-step features, the others 3 saved steps
assert rows["sd-layer-4"]["results"]["spair"]["protocol"]["descriptor_source"]["extraction"]["save_timestep"] == [0]
assert rows["ours"]["results"]["spair"]["protocol"]["descriptor_source"]["save_timestep"] == [2, 1, 0]
assert d["pruned_map"]["heatmap_csv_argmax"]["agrees"] is True
EOF
grep -q "| Ours (SD-1.5) | 12 × 3 | .* | 72.56 / 64.61 / 82.29 |" "$T/table1.md" || fail "table1.md Ours row"

# 6. a second run finds everything done
"$DHF" table1 t1.yaml >b.log 2>&1 || fail "second run: $(tail -3 b.log)"
grep -q "table1: 33 stages, 33 were done, 0 run now" b.log || fail "second run redid stages: $(tail -2 b.log)"
cmp -s <(sed 's#killed#out/table1#g' killed/table1.md) "$T/table1.md" || fail "second run changed the table"

# 6b. kill -9 at random moments, each re-run going on from what the last one left
nums() {
    python3 - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["rows"]:
    for ds, e in sorted(r.get("results", {}).items()):
        print(r["id"], ds, e["img"], e["bbox"], e["n_pairs"], e["n_keypoints"])
for x in d["relations"]:
    print(x.get("difference"), x.get("holds"))
EOF
}
K=${KILL_LOOPS:-3}
killed=0 finished=0 tries=0
while [ "$killed" -lt "$K" ] && [ "$tries" -lt $((3 * K)) ]; do
    tries=$((tries + 1))
    delay=$(python3 -c "import random; print(round(random.uniform(0.3, 6.0), 2))")
    timeout -s KILL "$delay" "$DHF" table1 t1.yaml --set table1.out_dir=rk >/dev/null 2>&1
    rc=$?
    if [ "$rc" -eq 137 ]; then
        killed=$((killed + 1))
    elif [ "$rc" -eq 0 ]; then
        # finished inside the delay: its table must be the uninterrupted one; start over
        # so that the next runs have work to be killed in
        cmp -s <(nums rk/table1.json) <(nums "$T/table1.json") ||
            fail "table1 finished after $killed kills differs: $(diff <(nums rk/table1.json) <(nums "$T/table1.json") | head -5)"
        finished=$((finished + 1))
        rm -rf rk
        continue
    else
        fail "table1 under kill: exit $rc"
    fi
    # a stage record is written last, after its output: never half a record
    for r in rk/stages/*.json; do
        [ -e "$r" ] || continue
        python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$r" || fail "a killed table1 left a partial record $r"
    done
    [ ! -e rk/table1.json ] || python3 -c "import json; json.load(open('rk/table1.json'))" || fail "partial rk/table1.json"
done
[ "$killed" -ge 1 ] || fail "no table1 run was killed in $tries tries"
"$DHF" table1 t1.yaml --set table1.out_dir=rk >rk.log 2>&1 || fail "table1 after $killed kills: $(tail -5 rk.log)"
cmp -s <(nums rk/table1.json) <(nums "$T/table1.json") ||
    fail "table1 killed $killed times at random and finished differs: $(diff <(nums rk/table1.json) <(nums "$T/table1.json") | head -5)"
echo "table1 kill -9: $killed processes killed at random moments ($tries runs, $finished finished inside their delay), every finished table equals the uninterrupted one"

# 7. SD-Layer-Pruned == dhf eval --provider layer:l*@s* by hand; (l*, s*) == the
#    argmax of dhf heatmap's CSV of the Ours checkpoint
read -r L S < <(python3 -c "import json,sys; p=json.load(open('$T/table1.json'))['pruned_map']; print(p['layer'], p['save_timestep'])")
[ -n "$L" ] && [ -n "$S" ] || fail "no pruned map in table1.json"
E="$T/eval/sd-layer-pruned-spair"
"$DHF" eval "$E/config.resolved.yaml" --provider "layer:$L@$S" -o byhand --quiet >eh.log 2>&1 ||
    fail "dhf eval by hand: $(tail -3 eh.log)"
python3 - "$E/results.json" byhand/results.json <<'EOF' || fail "SD-Layer-Pruned differs from layer:$L@$S"
import json, sys
a, b = (json.load(open(p))["metrics"] for p in sys.argv[1:3])
sys.exit(0 if a == b else 1)
EOF
"$DHF" heatmap "$T/runs/ours/best.safetensors" -o hm.png >/dev/null 2>&1 || fail "dhf heatmap"
python3 - hm.csv "$E/results.json" "$L" "$S" <<'EOF' || fail "(l*, s*) is not the heatmap CSV's argmax"
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1])))[1:]
best = max(((float(v), int(r[0]), j) for r in rows for j, v in enumerate(r[1:])), key=lambda t: t[0])
steps = json.load(open(sys.argv[2]))["protocol"]["descriptor_source"]["extraction"]["save_timestep"]
# column j of the CSV is cache step j
sys.exit(0 if (best[1], steps[best[2]]) == (int(sys.argv[3]), int(sys.argv[4])) else 1)
EOF

# 8. a training key changed: training and evaluations are stale, the features are not
"$DHF" table1 t1.yaml --set lr=0.002 --dry-run >c.log 2>&1 || fail "dry run with lr changed"
grep -q "\[done  \] extract sd15 multi-step features of SPair trn" c.log || fail "features stale after an lr change: $(cat c.log)"
grep -q "\[redo  \] train Ours (SD-1.5)" c.log || fail "training not stale after an lr change: $(cat c.log)"
grep -q "\[done  \] evaluate SD-Layer-4 on SPair" c.log || fail "an untrained row went stale: $(cat c.log)"
grep -q "\[to do \] evaluate Ours (SD-1.5) on SPair" c.log || fail "Ours eval not stale: $(cat c.log)"
# --rows runs only what those rows need
"$DHF" table1 t1.yaml --rows sd-layer-4 --dry-run >r.log 2>&1 || fail "--rows dry run"
grep -q "dry run: 4 of 4 stages done" r.log || fail "--rows sd-layer-4 plan: $(tail -3 r.log)"
echo "table1: OK"
