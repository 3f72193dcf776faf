#!/usr/bin/env bash
# bad_inputs.sh — the bad-input catalogue: every case runs one dhf command on a broken
# or hostile input and asserts the exit status (1 error, 2 usage), that stderr is one
# line (usage errors add "Try 'dhf X --help'.") naming the file, field or key and what
# was expected, that no partial output is left behind, and that an existing output is
# untouched. Also inputs that must work (16-bit and interlaced PNGs, grayscale).
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
DHF=$(cd "$(dirname "$DHF")" && pwd)/$(basename "$DHF")
ROOT=$(pwd)
fail() { echo "FAIL: $*"; exit 1; }
export DHF_PROGRESS=0
command -v python3 >/dev/null || { echo "python3 not found: skipped"; exit 77; }
work=$(mktemp -d /tmp/dhf_e2e_bad.XXXXXX) || fail "mktemp"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work" || fail "cd"
N=0

# check NAME RC PATTERN CMD...: exit status RC, one stderr line matching PATTERN
check() {
    local name=$1 want=$2 pat=$3
    shift 3
    N=$((N + 1))
    "$@" >out.txt 2>err.txt
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "[$name] exit $rc, expected $want: $(cat err.txt)"
    local lines
    lines=$(grep -cv "^Try 'dhf" err.txt)
    [ "$lines" -eq 1 ] || fail "[$name] stderr has $lines lines: $(cat err.txt)"
    grep -Eq -- "$pat" err.txt || fail "[$name] stderr lacks /$pat/: $(cat err.txt)"
}
# a report command (dhf data check lists every problem, then a summary line)
check_report() {
    local name=$1 want=$2 pat=$3
    shift 3
    N=$((N + 1))
    "$@" >out.txt 2>err.txt
    local rc=$?
    [ "$rc" -eq "$want" ] || fail "[$name] exit $rc, expected $want: $(cat err.txt)"
    grep -Eq -- "$pat" err.txt || fail "[$name] stderr lacks /$pat/: $(cat err.txt)"
    grep -q "problem.* found" err.txt || fail "[$name] no summary line: $(cat err.txt)"
}
# same: the path must not exist afterwards
check_absent() { local p=$1; shift; check "$@"; [ ! -e "$p" ] || fail "[$2] left $p behind"; }
# same: the path's bytes must be unchanged afterwards
check_untouched() {
    local p=$1; shift
    local before
    before=$(find "$p" -type f -exec sha1sum {} + | sort | sha1sum)
    check "$@"
    [ "$(find "$p" -type f -exec sha1sum {} + | sort | sha1sum)" = "$before" ] || fail "[$2] changed $p"
}

"$DHF" synth -o data --categories dog,car --images-per-category 6 --pairs-per-category 3 \
    --cub-classes 2 --cub-images-per-class 4 >/dev/null 2>&1 || fail "synth"
"$DHF" init-model --preset tiny-sd15 -o tiny >/dev/null 2>&1 || fail "init-model"
S=data/SPair-71k
PA=$(ls $S/PairAnnotation/test/*.json | head -1)

# ---- command line -------------------------------------------------------------------
check "unknown command" 2 "unknown command 'frobnicate'" "$DHF" frobnicate
check "unknown option" 2 "unknown option '--bogus'" "$DHF" eval --bogus
check "option without value" 2 "--provider needs a value" "$DHF" eval --provider
check "negative threads" 2 "threads" "$DHF" eval --threads -1
check "unknown provider" 2 "unknown provider 'nope' \(known: " "$DHF" eval --data $S --provider nope
check "table1 no config" 2 "a CONFIG.yaml is required" "$DHF" table1
check "generate -n 0" 2 "-n: expected 1..64, got '0'" "$DHF" generate x.yaml -n 0
check "match one image" 2 "two images are required" "$DHF" match a.png --checkpoint c -o m.png
check "draw without pair" 2 "--pair ID and -o PAIR.png are required" "$DHF" draw p.jsonl
check "heatmap not png" 2 "must end in .png" "$DHF" heatmap c.safetensors -o h.jpg

# ---- configuration ---------------------------------------------------------------------
printf 'lr: abc\n' >t.yaml
check "wrong type" 1 "t.yaml:1:5: key 'lr': expected a number, got string 'abc'" "$DHF" config check t.yaml
printf 'lr: -1\n' >t.yaml
check "out of range" 1 "t.yaml:1:5: key 'lr'" "$DHF" config check t.yaml
printf 'learning_rate: 0.1\n' >t.yaml
check "unknown key" 1 "t.yaml:1:1: unknown key 'learning_rate'" "$DHF" config check t.yaml
printf 'save_timestep: [1,\n' >t.yaml
check "broken YAML" 1 "t.yaml:.*YAML syntax error" "$DHF" config check t.yaml
printf 'num_timesteps: 10\nsave_timestep: [12]\n' >t.yaml
check "label past the steps" 1 "save_timestep.*12.*outside 0..9" "$DHF" config check t.yaml
check "missing config" 1 "nowhere.yaml" "$DHF" config check nowhere.yaml
printf 'eval:\n  matcher: magic\n' >t.yaml
check "bad choice" 1 "key 'eval.matcher'.*argmax" "$DHF" config check t.yaml

# ---- safetensors and checkpoints ---------------------------------------------------------
python3 - <<'EOF'
import json, struct
def st(path, hdr, data, fix_len=None):
    h = json.dumps(hdr).encode() if isinstance(hdr, dict) else hdr
    open(path, "wb").write(struct.pack("<Q", fix_len if fix_len is not None else len(h)) + h + data)
st("trunc.safetensors", {"mixing_weights": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8)
st("lie.safetensors", {"mixing_weights": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8)
st("dup.safetensors", b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4)
st("hdrlen.safetensors", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, fix_len=1 << 40)
st("nomix.safetensors", {"other": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4)
EOF
check_absent h.png "truncated safetensors" 1 "trunc.safetensors" "$DHF" heatmap trunc.safetensors -o h.png
check_absent h.png "lying data_offsets" 1 "lie.safetensors" "$DHF" heatmap lie.safetensors -o h.png
check_absent h.png "duplicate tensor names" 1 "dup.safetensors.*(duplicate|twice)" "$DHF" heatmap dup.safetensors -o h.png
check_absent h.png "absurd header length" 1 "hdrlen.safetensors" "$DHF" heatmap hdrlen.safetensors -o h.png
check_absent h.png "checkpoint without its tensor" 1 "nomix.safetensors.*(mixing_weights|dhf_schema)" "$DHF" heatmap nomix.safetensors -o h.png
printf 'not a zip' >x.pt
check_absent x.safetensors "import of a non-zip" 1 "x.pt" "$DHF" import x.pt -o x.safetensors
if python3 "$ROOT/tests/train/data/make_torch_save.py" bad.pt 12 3 384 --bad global >/dev/null 2>&1; then
    check_absent bad.safetensors "import of a forbidden global" 1 "bad.pt.*(global|not allowed)" "$DHF" import bad.pt -o bad.safetensors
    N=$N
fi

# ---- images --------------------------------------------------------------------------------
python3 - <<'EOF'
import struct, zlib
def png(path, w, h, color, depth, rows, interlace=0):
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\0" + r for r in rows)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png("zero.png", 0, 1, 2, 8, [b""])
png("bomb.png", 60000, 60000, 0, 8, [b"\0" * 60000])   # declares 3.6 G pixels, holds one row
png("rgb16.png", 2, 1, 2, 16, [bytes([0x12, 0x34, 0xAB, 0xCD, 0xFF, 0x00] * 2)])
png("gray.png", 2, 1, 0, 8, [bytes([7, 200])])
# an interlaced 8x8 RGB image (Adam7): 7 sub-images
import itertools
pix = [[(x * 30, y * 30, 100) for x in range(8)] for y in range(8)]
passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
raw = b""
for x0, y0, dx, dy in passes:
    for y in range(y0, 8, dy):
        row = b"".join(bytes(pix[y][x]) for x in range(x0, 8, dx))
        if row: raw += b"\0" + row
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open("inter.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 1)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png("plain.png", 8, 8, 2, 8, [b"".join(bytes(pix[y][x]) for x in range(8)) for y in range(8)])
EOF
J=$(ls $S/JPEGImages/dog/*.jpg | head -1)
head -c 300 "$J" >trunc.jpg
printf 'hello' >text.jpg
check "truncated JPEG" 1 "trunc.jpg" "$DHF" match trunc.jpg "$J" --provider image -o m.png
check "not an image" 1 "text.jpg" "$DHF" match text.jpg "$J" --provider image -o m.png
check "0x0 image" 1 "zero.png.*(invalid image size|IHDR)" "$DHF" match zero.png "$J" --provider image -o m.png
check "decompression bomb" 1 "bomb.png.*exceeds the limit" "$DHF" match bomb.png "$J" --provider image -o m.png
DHF_IMAGE_MAX_PIXELS=10 check "pixel limit from the environment" 1 "plain.png.*exceeds the limit.*10 pixels" \
    "$DHF" match plain.png "$J" --provider image -o m.png
[ ! -e m.png ] || fail "a failed match left m.png"
# these must work: 16-bit (high byte, as Pillow), interlaced (same pixels as plain), gray
for im in rgb16.png gray.png inter.png; do
    "$DHF" match $im "$J" --provider image -o ok.png >/dev/null 2>&1 || fail "$im does not load"
done
"$DHF" init-model --help >/dev/null

# ---- datasets --------------------------------------------------------------------------------
cp -r $S spair2
python3 - spair2 <<'EOF'
import glob, json, sys
f = sorted(glob.glob(sys.argv[1] + "/PairAnnotation/test/*.json"))[0]
a = json.load(open(f)); a["trg_kps"][0] = [100000, 5]; json.dump(a, open(f, "w"))
EOF
check_report "keypoint outside the image" 1 "trg_kps.*keypoint 0 \\(100000, 5\\) lies outside" "$DHF" data check spair2
printf '[]' >empty.json
check "empty pair list" 1 "empty.json.*(no pairs|empty)" "$DHF" eval --data $S --pairs empty.json -o e1
[ ! -e e1 ] || fail "empty pair list left e1"
python3 - $S empty.json <<'EOF'
import glob, json, sys
f = sorted(glob.glob(sys.argv[1] + "/PairAnnotation/test/*.json"))[0]
a = json.load(open(f))
json.dump([{"source_path": "zebra/" + a["src_imname"], "target_path": "zebra/" + a["trg_imname"], "source_points": a["src_kps"],
            "target_points": a["trg_kps"], "category": "zebra", "source_bounding_box": a["src_bndbox"],
            "target_bounding_box": a["trg_bndbox"]}], open("zebra.json", "w"))
EOF
check "category missing from the data" 1 "zebra" "$DHF" eval --data $S --pairs zebra.json -o e2
cp -r $S spair3
python3 - spair3 <<'EOF'
import glob, json, sys
f = sorted(glob.glob(sys.argv[1] + "/PairAnnotation/test/*.json"))[0]
a = json.load(open(f)); del a["src_kps"]; json.dump(a, open(f, "w"))
EOF
check_report "annotation without a field" 1 "src_kps" "$DHF" data check spair3
cp -r data/CUB_200_2011 cub2
printf 'zz 1\n' >>cub2/image_class_labels.txt
check_report "CUB table line" 1 "image_class_labels.txt:[0-9]+" "$DHF" data check cub2

# ---- predictions (dhf pck) -------------------------------------------------------------------
"$DHF" eval --data $S --split test -o ev --quiet >/dev/null 2>&1 || fail "eval"
head -2 ev/predictions.jsonl >p.jsonl
printf '{"pair_id": 3}\n' >>p.jsonl
check "predictions line" 1 "p.jsonl:3" "$DHF" pck --predictions p.jsonl
: >empty.jsonl
check "empty predictions" 1 "empty.jsonl" "$DHF" pck --predictions empty.jsonl
check "draw unknown pair" 1 "no keypoints of pair 'nope'" "$DHF" draw ev/predictions.jsonl --pair nope -o d.png

# ---- outputs: unwritable, and existing outputs untouched -------------------------------------
mkdir ro && chmod 555 ro
if [ ! -w ro ]; then   # (root writes anywhere)
    check "unwritable eval folder" 1 "ro/" "$DHF" eval --data $S --split test -o ro/e --quiet
fi
printf 'x' >afile
check "output below a file" 1 "afile" "$DHF" eval --data $S --split test -o afile/e --quiet
check_untouched ev "eval into an existing folder with a bad provider" 2 "unknown provider" \
    "$DHF" eval --data $S --split test --provider nope -o ev
cat >x.yaml <<'EOF'
model_id: tiny
data_root: data/SPair-71k
cache_path: c.h5
diffusion_resolution: 64
num_timesteps: 2
save_timestep: [1, 0]
split: test
pairs_per_category: 1
EOF
"$DHF" extract x.yaml >/dev/null 2>&1 || fail "extract"
check_untouched c.h5 "extract into a cache of other settings" 1 "c.h5" "$DHF" extract x.yaml --set save_timestep=[0]
check_untouched c.h5 "extract with a model folder that is not one" 1 "nomodel" "$DHF" extract x.yaml --set model_id=nomodel
check "cache verify of a non-cache" 1 "x.yaml" "$DHF" cache verify x.yaml
# a checkpoint whose shapes disagree with the configuration
cat >>x.yaml <<'EOF'
projection_dim: 128
output_resolution: 8
load_resolution: 64
max_steps_per_epoch: 2
max_epochs: 1
val_every_n_steps: 2
val_pairs_per_category: 1
output_dir: runs
EOF
for s in trn val; do "$DHF" extract x.yaml --set split=$s >/dev/null 2>&1 || fail "extract $s"; done
"$DHF" train x.yaml --set run_name=a --quiet >/dev/null 2>&1 || fail "train"
check_absent runs/b "a checkpoint of other shapes" 1 "last.safetensors.*(shape|projection_dim)" \
    "$DHF" train x.yaml --set run_name=b --set projection_dim=256 --init runs/a/last.safetensors --quiet
# NaN/Inf inside a cache map (written through HDF5, so the checksums hold): every
# reader refuses the map by image, step and layer; verify counts them
POKE=${DHF_BUILD_DIR:-build}/cache_poke
[ "${POKE#/}" = "$POKE" ] && POKE=$ROOT/$POKE
[ -x "$POKE" ] || fail "$POKE is not built"
cp c.h5 nan.h5 && "$POKE" nan.h5 -1 0 4 nan || fail "cache_poke"
# (train reads maps as it steps: the run folder it made stays, resumable, no checkpoint
# past the last good step)
check "NaN in a cache map (train)" 1 \
    "nan.h5: image '[^']+' step 0 \(save_timestep 1\) layer 4: 1 values are not finite.*nan" \
    "$DHF" train x.yaml --set cache_path=nan.h5 --set run_name=n --quiet
cp c.h5 inf.h5 && "$POKE" inf.h5 -1 1 2 inf || fail "cache_poke"
check_absent ev_inf "Inf in a cache map (eval)" 1 \
    "inf.h5: image '[^']+' step 1 \(save_timestep 0\) layer 2: 1 values are not finite.*inf" \
    "$DHF" eval x.yaml --checkpoint runs/a/last.safetensors --set cache_path=inf.h5 -o ev_inf --quiet
"$DHF" cache verify nan.h5 >out.txt 2>err.txt && fail "cache verify passed a NaN map"
grep -q "non-finite values" err.txt || fail "cache verify: $(cat err.txt)"

# ---- models, tokenizers, ViTs ---------------------------------------------------------------
check "unknown preset" 1 "unknown preset 'tiny-sd99'" "$DHF" init-model --preset tiny-sd99 -o m99
[ ! -e m99 ] || fail "unknown preset left m99"
mkdir vit && printf '{"family": "dino", "patch_size": 8, "img_size": 224, "embed_dim": 48, "depth": 2}' >vit/config.json
check "ViT config without num_heads" 1 "vit/config.json: field 'num_heads'" "$DHF" eval --data $S --provider dino:vit
cp -r tiny tiny2 && printf '{"a": ' >tiny2/tokenizer/vocab.json
check "broken vocab.json" 1 "tiny2/tokenizer/vocab.json" "$DHF" generate x.yaml --set model_id=tiny2 --prompt a -o g
[ ! -e g/features.h5 ] || fail "a failed generate left a cache"

echo "bad_inputs: $N cases OK"
