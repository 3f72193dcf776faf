#!/usr/bin/env bash
# faults.sh — what happens when things go wrong under dhf:
#   bit rot      a flipped byte in a cache map: dhf cache verify names image, step and
#                layer; in a checkpoint: every reader names the damaged tensor;
#   concurrency  a second dhf extract on a cache, a second dhf train on a run folder:
#                refused at once (locks);
#   kill -9      at random moments of dhf extract, dhf train and dhf eval: outputs are
#                complete or absent, and the re-runs end bit-identical to an
#                uninterrupted run (KILL_LOOPS times each: 3 in make test, 20 under
#                make test-faults);
#   disk full    extract and train into a small tmpfs (as root): a "No space left"
#                error naming the file, the cache still opens and the run resumes once
#                space is freed, no half-written checkpoint.
# dhf-test: label=e2e
set -u -o pipefail
DHF=${DHF_BIN:-build/bin/dhf}
DHF=$(cd "$(dirname "$DHF")" && pwd)/$(basename "$DHF")
LOOPS=${KILL_LOOPS:-3}
fail() { echo "FAIL: $*"; exit 1; }
export DHF_PROGRESS=0
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }
work=$(mktemp -d /tmp/dhf_e2e_faults.XXXXXX) || fail "mktemp"
cleanup() { mountpoint -q "$work/full" 2>/dev/null && umount "$work/full"; rm -rf "$work"; }
trap cleanup EXIT
cd "$work" || fail "cd"

"$DHF" synth -o data --categories dog,car --images-per-category 6 --pairs-per-category 4 \
    --spair-only >/dev/null 2>&1 || fail "synth"
"$DHF" init-model --preset tiny-sd15 -o tiny >/dev/null 2>&1 || fail "init-model"
cat >x.yaml <<'EOF'
model_id: tiny
data_root: data/SPair-71k
cache_path: c.h5
cache_dtype: float32
diffusion_resolution: 64
num_timesteps: 10
save_timestep: [9, 5, 0]
projection_dim: 128
output_resolution: 8
load_resolution: 64
max_steps_per_epoch: 12
max_epochs: 1
val_every_n_steps: 6
checkpoint_every_n_steps: 2
val_pairs_per_category: 2
output_dir: runs
run_name: r
threads: 2
EOF
keys() { "$DHF" cache info "$1" --keys | awk '$2 == "done" {print $1}'; }
# every image of a cache exported; one checksum line per image
digest() { for k in $(keys "$1"); do "$DHF" cache export "$1" "$k" -o e.st >/dev/null 2>&1 || return 1; \
           python3 -c "import sys,json,struct,hashlib; d=open('e.st','rb').read(); n=struct.unpack('<Q',d[:8])[0]; print(sys.argv[1], hashlib.sha1(d[8+n:]).hexdigest())" "$k"; done; }

# ---- reference: uninterrupted ------------------------------------------------------------
for s in trn val; do
    "$DHF" extract x.yaml --set split=$s >/dev/null 2>&1 || fail "extract $s"
done
digest c.h5 | sort >ref_cache.txt || fail "digest"
"$DHF" train x.yaml --quiet >/dev/null 2>&1 || fail "train"
cp runs/r/last.safetensors ref_last.safetensors
"$DHF" eval x.yaml --split test --provider layer:4 --set cache_path=c.h5 -o ref_eval --quiet >/dev/null 2>&1 || true

# ---- bit rot ------------------------------------------------------------------------------
cp c.h5 rot.h5
K=$(keys rot.h5 | head -1)
"$DHF" cache export rot.h5 "$K" -o m.st >/dev/null 2>&1 || fail "export"
python3 - m.st rot.h5 <<'EOF' || fail "could not find a map's bytes in the cache file"
import json, struct, sys
d = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n])
e = h["t1/layer05"]; a, b = e["data_offsets"]; raw = d[8 + n + a:8 + n + b]
f = bytearray(open(sys.argv[2], "rb").read()); at = f.find(raw)
assert at > 0
f[at + len(raw) // 2] ^= 0x40
open(sys.argv[2], "wb").write(f)
EOF
"$DHF" cache verify rot.h5 >v.out 2>v.err
[ $? -eq 1 ] || fail "cache verify of a damaged map: expected exit 1: $(cat v.err)"
grep -q "image '$K' step 1 layer 5 (checksum mismatch" v.err || fail "damaged map not named: $(cat v.err)"
cp runs/r/last.safetensors rot.safetensors
python3 - rot.safetensors <<'EOF'
import struct, sys
f = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", f[:8])[0]
f[8 + n + 100] ^= 0x01
open(sys.argv[1], "wb").write(f)
EOF
"$DHF" heatmap rot.safetensors -o h.png >h.out 2>h.err
[ $? -eq 1 ] && grep -q "rot.safetensors: tensor '.*' is damaged (CRC-32" h.err || fail "damaged checkpoint: $(cat h.err)"
[ ! -e h.png ] || fail "a damaged checkpoint drew a heatmap"

# ---- concurrency ----------------------------------------------------------------------------
cp x.yaml slow.yaml
sed -i 's/^num_timesteps: 10/num_timesteps: 200/; s/^cache_path: c.h5/cache_path: slow.h5/' slow.yaml
"$DHF" extract slow.yaml --set split=trn >s1.log 2>&1 &
p1=$!
for i in $(seq 50); do [ -e slow.h5.lock ] && break; sleep 0.1; done
"$DHF" extract slow.yaml --set split=trn >s2.log 2>&1
[ $? -eq 1 ] && grep -q "another process is writing this cache" s2.log || fail "second extract: $(cat s2.log)"
kill -9 $p1 2>/dev/null; wait $p1 2>/dev/null
sed -i 's/^max_steps_per_epoch: 12/max_steps_per_epoch: 4000/; s/^max_epochs: 1/max_epochs: 3/; s/^run_name: r/run_name: busy/' slow.yaml
sed -i 's/^cache_path: slow.h5/cache_path: c.h5/; s/^num_timesteps: 200/num_timesteps: 10/' slow.yaml
"$DHF" train slow.yaml --quiet >t1.log 2>&1 &
p1=$!
for i in $(seq 100); do [ -e runs/.busy.train.lock ] && break; sleep 0.1; done
sleep 0.5
"$DHF" train slow.yaml --quiet >t2.log 2>&1
rc=$?
kill -9 $p1 2>/dev/null; wait $p1 2>/dev/null
[ $rc -eq 1 ] && grep -Eq "another dhf train is running on it|already holds a run" t2.log || fail "second train: $(cat t2.log)"

# ---- kill -9 at random moments ----------------------------------------------------------------
rnd() { python3 -c "import random; print(round(random.uniform($1, $2), 2))"; }
killed=0
for i in $(seq "$LOOPS"); do   # extract
    rm -f k.h5 k.h5.lock
    for j in 1 2 3; do
        for s in trn val; do
            timeout -s KILL "$(rnd 0.3 2.5)" "$DHF" extract x.yaml --set cache_path=k.h5 --set split=$s >/dev/null 2>&1
            [ $? -eq 137 ] && killed=$((killed + 1))
            if [ -e k.h5 ]; then "$DHF" cache info k.h5 >/dev/null 2>&1 || fail "a killed extract left an unreadable cache"; fi
        done
    done
    for s in trn val; do "$DHF" extract x.yaml --set cache_path=k.h5 --set split=$s >/dev/null 2>&1 || fail "extract resume"; done
    digest k.h5 | sort >k.txt || fail "digest"
    cmp -s k.txt ref_cache.txt || fail "extract killed at random and resumed differs from the uninterrupted cache: $(diff k.txt ref_cache.txt)"
done
for i in $(seq "$LOOPS"); do   # train
    rm -rf runs/k
    for j in $(seq 6); do
        if [ -e runs/k/last.safetensors ] || [ -e runs/k/config.resolved.yaml ]; then
            timeout -s KILL "$(rnd 0.5 3)" "$DHF" train --resume runs/k --quiet >/dev/null 2>&1
        else
            timeout -s KILL "$(rnd 0.5 3)" "$DHF" train x.yaml --set run_name=k --quiet >/dev/null 2>&1
        fi
        [ $? -eq 137 ] && killed=$((killed + 1))
        if [ -e runs/k/last.safetensors ]; then "$DHF" heatmap runs/k/last.safetensors -o hk.png >/dev/null 2>&1 || fail "a killed train left a bad checkpoint"; fi
    done
    if [ -e runs/k/last.safetensors ] || [ -e runs/k/config.resolved.yaml ]; then
        "$DHF" train --resume runs/k --quiet >/dev/null 2>&1 || fail "train resume"
    else
        "$DHF" train x.yaml --set run_name=k --quiet >/dev/null 2>&1 || fail "train"
    fi
    python3 - runs/k/last.safetensors ref_last.safetensors <<'EOF' || fail "train killed at random and resumed differs from the uninterrupted run"
import json, struct, sys
def tensors(p):
    d = open(p, "rb").read(); n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n])
    meta = h.pop("__metadata__", {})
    return {k: d[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items()}, meta
a, ma = tensors(sys.argv[1]); b, mb = tensors(sys.argv[2])
assert a == b, "tensors differ"
for k in ("step", "rng"):   # the run's position and data order, when recorded
    assert ma.get(k) == mb.get(k), (k, ma.get(k), mb.get(k))
EOF
done
"$DHF" extract x.yaml --set cache_path=sh.h5 --set split=trn --shard 0/2 >/dev/null 2>&1 || fail "shard 0"
"$DHF" extract x.yaml --set cache_path=sh.h5 --set split=trn --shard 1/2 >/dev/null 2>&1 || fail "shard 1"
for i in $(seq "$LOOPS"); do   # cache merge: the output is complete or absent
    rm -f mg.h5
    timeout -s KILL "$(rnd 0.02 0.4)" "$DHF" cache merge mg.h5 sh.shard0of2.h5 sh.shard1of2.h5 >/dev/null 2>&1
    [ $? -eq 137 ] && killed=$((killed + 1))
    if [ -e mg.h5 ]; then "$DHF" cache verify mg.h5 >/dev/null 2>&1 || fail "a killed merge left a bad mg.h5"; fi
done
for i in $(seq "$LOOPS"); do   # eval: results are complete or absent
    rm -rf ke
    timeout -s KILL "$(rnd 0.1 1.5)" "$DHF" eval x.yaml --split test --provider layer:4 -o ke --quiet >/dev/null 2>&1
    [ $? -eq 137 ] && killed=$((killed + 1))
    if [ -e ke/results.json ]; then python3 -c "import json; json.load(open('ke/results.json'))" || fail "partial results.json"; fi
    [ -z "$(ls ke 2>/dev/null | grep '\.tmp')" ] || fail "a killed eval left temporary files in ke/"
done
echo "kill -9: $killed processes killed, every output complete or absent, re-runs identical"

# ---- disk full ----------------------------------------------------------------------------------
mkdir full
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=400k tmpfs full 2>/dev/null; then
    "$DHF" extract x.yaml --set cache_path=full/c.h5 --set split=trn >f.log 2>&1
    [ $? -eq 1 ] || fail "extract into a full disk: expected exit 1: $(cat f.log)"
    grep -q "No space left on device" f.log && grep -q "full/c.h5" f.log || fail "disk-full message: $(cat f.log)"
    mount -o remount,size=64m full || fail "remount"
    "$DHF" extract x.yaml --set cache_path=full/c.h5 --set split=trn >/dev/null 2>&1 || fail "extract after freeing space"
    "$DHF" cache verify full/c.h5 >/dev/null 2>&1 || fail "cache after a full disk does not verify"
    mount -o remount,size=$(( $(du -sk full | cut -f1) + 40 ))k full || fail "remount small"
    "$DHF" train x.yaml --set output_dir=full/runs --quiet >tf.log 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        grep -q "No space left on device" tf.log || fail "train on a full disk: $(cat tf.log)"
        [ -z "$(find full/runs -name '*.tmp*' 2>/dev/null)" ] || fail "a half-written checkpoint stayed"
        for f in $(find full/runs -name '*.safetensors'); do
            "$DHF" heatmap "$f" -o full-h.png >/dev/null 2>&1 || fail "$f is not a whole checkpoint"
        done
    fi
    echo "disk full: handled"
else
    echo "disk full: skipped (needs root and tmpfs)"
fi
echo "faults: OK"
