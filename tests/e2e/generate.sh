#!/usr/bin/env bash
# generate.sh — `dhf generate` end to end. On the gen fixture's tiny SD-1.5 (its UNet,
# VAE, CLIP text encoder and tokenizer assembled into one folder), the stored initial
# latent and prompt with CFG 7.5 must reproduce the reference's conditional-pass
# features of every saved label (within the fixture's tolerance, read back from the
# cache with dhf cache export) in the flip rule's slot order, and its 8-bit images
# (the u8 rule). On a dhf init-model folder: seeded noise is the same on a re-run,
# a re-run skips the done prompt, a prompts file works, bad input is refused.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
DHF=$(cd "$(dirname "$DHF")" && pwd)/$(basename "$DHF")
fail() { echo "FAIL: $*"; exit 1; }
export DHF_PROGRESS=0
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }
F=$(cd "${DHF_FIXTURES:-../shared/fixtures}" 2>/dev/null && pwd) || F=""
work=$(mktemp -d /tmp/dhf_e2e_gen.XXXXXX) || fail "mktemp"
trap 'rm -rf "$work"' EXIT
cd "$work" || fail "cd"

# ---- 1. the fixture's generation, reproduced by dhf generate ----------------------
REF="$F/gen/refs/tiny-sd15/gen_cfg7p5.safetensors"
if [ -n "$F" ] && [ -f "$REF" ]; then
    mkdir m
    for c in unet vae scheduler model_index.json; do ln -s "$F/sd/models/tiny-sd15/$c" m/$c; done
    ln -s "$F/clip/sd15_tiny/text_encoder" m/text_encoder
    ln -s "$F/gen/tokenizer/sd15" m/tokenizer
    python3 - "$REF" xT.safetensors <<'EOF' || fail "could not copy in/xT"
import json, struct, sys
src, dst = sys.argv[1:3]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); base = 8 + n
    e = h["in/xT"]; f.seek(base + e["data_offsets"][0]); data = f.read(e["data_offsets"][1] - e["data_offsets"][0])
hdr = json.dumps({"latent": {"dtype": "F32", "shape": e["shape"], "data_offsets": [0, len(data)]}}).encode()
hdr += b" " * (-len(hdr) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hdr)) + hdr + data)
EOF
    cat >gen.yaml <<'EOF'
model_id: m
num_timesteps: 50
save_timestep: [49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0]
flip_timesteps: true
guidance_scale: 7.5
negative_prompt: ""
diffusion_resolution: 128
cache_dtype: float32
output_dir: out
EOF
    "$DHF" generate gen.yaml --prompt "Cat sitting in a living room" -n 2 --init-latent xT.safetensors \
        -o g1 >g1.log 2>&1 || fail "dhf generate (fixture): $(tail -3 g1.log)"
    K="0000-cat-sitting-in-a-living-room"
    for b in 0 1; do
        "$DHF" cache export g1/features.h5 "$K/$b.png" -o "e$b.safetensors" >/dev/null 2>&1 ||
            fail "dhf cache export $K/$b.png"
    done
    python3 - "$REF" e0.safetensors e1.safetensors g1/images/$K <<'EOF' || fail "dhf generate does not reproduce the fixture"
import json, struct, sys, zlib
def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; h = json.loads(f.read(n)); data = f.read()
    return h, data
def tensor(h, data, name):
    e = h[name]; a, b = e["data_offsets"]; raw = data[a:b]
    fmt = {"F32": "f", "I64": "q", "U8": "B"}[e["dtype"]]
    return e["shape"], struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw)
rh, rd = load(sys.argv[1])
tol = json.load(open(sys.argv[1].rsplit("/refs/", 1)[0] + "/tolerances.json"))
save = tensor(rh, rd, "meta/save_timestep_config")[1]           # the slot order (flip rule)
worst = 0.0
for b in (0, 1):
    eh, ed = load(sys.argv[2 + b])
    labels = json.loads(eh["__metadata__"]["save_timestep"])
    assert labels == list(save), (labels, save)
    for k, label in enumerate(labels):
        for l in range(1, 13):
            shape, ref = tensor(rh, rd, "feat/t%02d/layer%02d" % (label, l))
            per = len(ref) // shape[0]
            ref = ref[b * per:(b + 1) * per]
            _, got = tensor(eh, ed, "t%d/layer%02d" % (k, l))
            peak = max(abs(x) for x in ref)
            err = max(abs(x - y) for x, y in zip(got, ref))
            ratio = err / (1e-6 + 2e-5 * peak)
            worst = max(worst, ratio)
            assert ratio <= 1, ("feature", b, label, l, err, peak)
# the PNGs: within the u8 rule of the reference's out/image_u8
shape, u8 = tensor(rh, rd, "out/image_u8")
per = len(u8) // shape[0]
def png_rgb(path):
    raw = open(path, "rb").read(); pos = 8; idat = b""; w = h = 0
    while pos < len(raw):
        n = struct.unpack(">I", raw[pos:pos + 4])[0]; t = raw[pos + 4:pos + 8]; d = raw[pos + 8:pos + 8 + n]
        if t == b"IHDR": w, h = struct.unpack(">II", d[:8]); assert d[8] == 8 and d[9] == 2
        if t == b"IDAT": idat += d
        pos += 12 + n
    dec = zlib.decompress(idat); out = bytearray(); prev = bytearray(w * 3); i = 0
    for y in range(h):
        f = dec[i]; row = bytearray(dec[i + 1:i + 1 + w * 3]); i += 1 + w * 3
        for x in range(w * 3):
            a = row[x - 3] if x >= 3 else 0; up = prev[x]; c = prev[x - 3] if x >= 3 else 0
            if f == 1: row[x] = (row[x] + a) & 255
            elif f == 2: row[x] = (row[x] + up) & 255
            elif f == 3: row[x] = (row[x] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c; pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                row[x] = (row[x] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        out += row; prev = row
    return out
for b in (0, 1):
    got = png_rgb("%s/%d.png" % (sys.argv[4], b)); ref = u8[b * per:(b + 1) * per]
    diffs = [abs(x - y) for x, y in zip(got, ref)]
    assert len(got) == len(ref) and max(diffs) <= 1 and sum(d > 0 for d in diffs) <= 0.001 * len(ref), (b, max(diffs))
print("fixture generation reproduced: worst err/tol %.3f" % worst)
EOF
else
    echo "(gen fixture absent: the reproduction check is skipped)"
fi

# ---- 2. a dhf init-model folder: seeds, resume, prompts file, refusals ----------------
"$DHF" init-model --preset tiny-sd15 -o tiny >/dev/null 2>&1 || fail "init-model"
cat >t.yaml <<'EOF'
model_id: tiny
num_timesteps: 10
save_timestep: [9, 5, 0]
flip_timesteps: true
guidance_scale: 7.5
diffusion_resolution: 64
output_dir: out
EOF
"$DHF" generate t.yaml --prompt "a red car" --seed 3 -o a >a.log 2>&1 || fail "generate: $(cat a.log)"
"$DHF" generate t.yaml --prompt "a red car" --seed 3 -o b >/dev/null 2>&1 || fail "generate again"
cmp -s a/images/0000-a-red-car/0.png b/images/0000-a-red-car/0.png || fail "the same seed gave another image"
cmp -s a/latents/0000-a-red-car.safetensors b/latents/0000-a-red-car.safetensors || fail "the same seed gave other noise"
"$DHF" generate t.yaml --prompt "a red car" --seed 3 -o a >a2.log 2>&1 || fail "re-run"
grep -q "generated 0 prompt(s) .*(1 already done)" a2.log || fail "re-run redid the prompt: $(cat a2.log)"
[ "$(wc -l <a/generations.jsonl)" -eq 2 ] || fail "generations.jsonl: expected 2 lines"
printf '["a cat", {"prompt": "a dog", "seed": 7, "n": 1}]' >p.json
"$DHF" generate t.yaml --prompts p.json -o c >c.log 2>&1 || fail "--prompts: $(cat c.log)"
[ -f c/images/0001-a-dog/0.png ] && [ ! -f c/images/0001-a-dog/1.png ] || fail "--prompts: n per prompt"
"$DHF" cache info c/features.h5 | grep -q "images:       3 done / 3 total" || fail "--prompts: 3 images expected"
"$DHF" generate t.yaml --prompt x --init-latent nowhere.safetensors -o d >d.log 2>&1 && fail "missing latent accepted"
grep -q "nowhere.safetensors" d.log || fail "missing latent message: $(cat d.log)"
"$DHF" generate t.yaml --prompt x -n 0 -o d >d.log 2>&1; [ $? -eq 2 ] || fail "-n 0: expected exit 2"
# ---- 3. dhf match on the generated pair, dhf draw on an evaluated one -----------------
K=a/images/0000-a-red-car
"$DHF" match t.yaml $K/0.png $K/1.png --provider layer:4 --cache a/features.h5 --grid 6 \
    -o m.png >m.log 2>&1 || fail "dhf match: $(cat m.log)"
grep -q "36 correspondences" m.log || fail "dhf match summary: $(cat m.log)"
python3 - m.json <<'EOF' || fail "m.json"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["points"]) == 36 and d["provider"].startswith("layer:4"), d["provider"]
for p in d["points"]:
    assert 0 <= p["dst_xy"][0] <= 63 and 0 <= p["dst_xy"][1] <= 63, p
EOF
[ "$(head -c 8 m.png | od -An -tx1 | tr -d ' ')" = "89504e470d0a1a0a" ] || fail "m.png is not a PNG"
"$DHF" match t.yaml $K/0.png $K/1.png --provider layer:4 --cache a/features.h5 -o m.jpg >/dev/null 2>&1
[ $? -eq 2 ] || fail "match -o m.jpg: expected exit 2"
"$DHF" match t.yaml $K/0.png nowhere.png --provider layer:4 --cache a/features.h5 -o m2.png >m2.log 2>&1
[ $? -eq 1 ] && grep -q "nowhere.png" m2.log || fail "match with a missing image: $(cat m2.log)"
"$DHF" synth -o data --categories dog --images-per-category 6 --pairs-per-category 3 --spair-only \
    >/dev/null 2>&1 || fail "synth"
"$DHF" eval --data data/SPair-71k --split test -o ev --quiet >/dev/null 2>&1 || fail "eval (image provider)"
PID=$(python3 -c "import json; print(json.loads(open('ev/predictions.jsonl').readline())['pair_id'])")
"$DHF" draw ev/predictions.jsonl --pair "$PID" -o d.png >d.log 2>&1 || fail "dhf draw: $(cat d.log)"
grep -q "wrote d.png: $PID, [0-9]* of [0-9]* keypoints within PCK@0.1 img" d.log || fail "draw summary: $(cat d.log)"
"$DHF" draw ev/predictions.jsonl --pair 0 -o d0.png >/dev/null 2>&1 || fail "dhf draw --pair 0"
cmp -s d.png d0.png || fail "--pair 0 and the first pair id drew different pictures"
"$DHF" draw ev/predictions.jsonl --pair nope -o d1.png >d1.log 2>&1
[ $? -eq 1 ] && grep -q "no keypoints of pair 'nope'" d1.log || fail "draw of an unknown pair: $(cat d1.log)"
# an inversion-trained network reads the generation cache (the flip rule's identity)
cat >>t.yaml <<'EOF'
data_root: data/SPair-71k
cache_path: inv.h5
projection_dim: 128
output_resolution: 8
load_resolution: 64
max_steps_per_epoch: 3
max_epochs: 1
val_every_n_steps: 3
val_pairs_per_category: 2
run_name: r
EOF
for split in trn val; do
    "$DHF" extract t.yaml --set split=$split --set guidance_scale=-1 >x_$split.log 2>&1 || fail "extract $split: $(tail -3 x_$split.log)"
done
"$DHF" train t.yaml --set guidance_scale=-1 --quiet >tr.log 2>&1 || fail "train: $(tail -3 tr.log)"
"$DHF" match t.yaml $K/0.png $K/1.png --checkpoint out/r/last.safetensors --cache a/features.h5 \
    -o mh.png >mh.log 2>&1 || fail "match with an inversion-trained network on generation features: $(cat mh.log)"
grep -q "\[hyperfeatures\]" mh.log || fail "match through the network: $(cat mh.log)"
echo "generate: OK"
