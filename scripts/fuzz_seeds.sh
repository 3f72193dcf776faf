#!/usr/bin/env bash
# fuzz_seeds.sh OUT [DHF] — the seed corpora of the fuzz harnesses, one folder per
# harness under OUT, made from the repository (configs) and from what dhf itself writes
# on the synthetic benchmark and tiny models (nothing copied from ../shared/fixtures).
set -euo pipefail
OUT=$1
DHF=${2:-build/bin/dhf}
DHF=$(cd "$(dirname "$DHF")" && pwd)/$(basename "$DHF")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export DHF_PROGRESS=0
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
W=$(mktemp -d /tmp/dhf_seeds.XXXXXX)
trap 'rm -rf "$W"' EXIT
for h in safetensors config pickle spair cub predictions image tokenizer prompt cache; do
    mkdir -p "$OUT/$h"
done

# configuration files of the repository
cp "$ROOT"/configs/*.yaml "$OUT/config/"

# a synthetic benchmark (SPair pair files, CUB tables, images) and an evaluation
cd "$W"
"$DHF" synth -o data --categories dog,car --images-per-category 6 --pairs-per-category 3 \
    --cub-classes 2 --cub-images-per-class 4 >/dev/null 2>&1
ls data/SPair-71k/PairAnnotation/test/*.json | head -4 | while read -r f; do cp "$f" "$OUT/spair/"; done
python3 - data "$OUT/spair/pairlist.json" <<'EOF'
import glob, json, sys
root, out = sys.argv[1:3]
items = []
for f in sorted(glob.glob(root + "/SPair-71k/PairAnnotation/test/*.json"))[:2]:
    a = json.load(open(f))
    items.append({"source_path": a["category"] + "/" + a["src_imname"], "target_path": a["category"] + "/" + a["trg_imname"],
                  "source_points": a["src_kps"], "target_points": a["trg_kps"], "category": a["category"],
                  "source_bounding_box": a["src_bndbox"], "target_bounding_box": a["trg_bndbox"]})
json.dump(items, open(out, "w"))
EOF
C=data/CUB_200_2011
{ cat $C/images.txt; printf '\0'; cat $C/image_class_labels.txt; printf '\0'; cat $C/train_test_split.txt;
  printf '\0'; cat $C/bounding_boxes.txt; printf '\0'; cat $C/parts/parts.txt; printf '\0';
  cat $C/parts/part_locs.txt; } >"$OUT/cub/cub_tables"
ls data/SPair-71k/JPEGImages/dog/*.jpg | head -2 | while read -r f; do cp "$f" "$OUT/image/"; done
"$DHF" eval --data data/SPair-71k --split test -o ev --quiet >/dev/null 2>&1
head -c 6000 ev/predictions.jsonl >"$OUT/predictions/predictions.jsonl"
"$DHF" heatmap --help >/dev/null   # (a cheap check that the binary runs)
python3 - "$OUT/image" <<'EOF'
# small PNGs of every colour type and bit depth libpng handles, one interlaced
import struct, sys, zlib
def png(path, w, h, color, depth, rows, interlace=0, palette=None):
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    raw = b"".join(b"\0" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    if palette: data += chunk(b"PLTE", palette)
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)
d = sys.argv[1]
png(d + "/rgb8.png", 3, 2, 2, 8, [bytes([10, 20, 30] * 3)] * 2)
png(d + "/gray8.png", 4, 2, 0, 8, [bytes([0, 64, 128, 255])] * 2)
png(d + "/rgba8.png", 2, 2, 6, 8, [bytes([1, 2, 3, 128] * 2)] * 2)
png(d + "/rgb16.png", 2, 2, 2, 16, [bytes(range(12))] * 2)
png(d + "/pal.png", 4, 1, 3, 8, [bytes([0, 1, 0, 1])], palette=bytes([255, 0, 0, 0, 0, 255]))
png(d + "/gray1.png", 8, 1, 0, 1, [bytes([0b10101010])])
EOF

# tensors: a torch.save pickle, safetensors written by dhf
python3 "$ROOT/tests/train/data/make_torch_save.py" --help >/dev/null 2>&1 || true
python3 - "$OUT" <<'EOF'
import json, struct, sys
out = sys.argv[1]
def st(path, tensors, meta=None):
    hdr, data = {}, b""
    for name, (dt, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta: hdr["__metadata__"] = meta
    h = json.dumps(hdr).encode(); h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
st(out + "/safetensors/f32.safetensors", {"a": ("F32", [2, 3], struct.pack("<6f", *range(6))), "b": ("F16", [2], b"\x00\x3c\x00\xc0")}, {"format": "pt"})
st(out + "/safetensors/mixed.safetensors", {"x": ("BF16", [1], b"\x80\x3f"), "i": ("I64", [2], struct.pack("<2q", 1, -2)), "u": ("U8", [3], b"abc"), "s": ("F64", [], struct.pack("<d", 0.5))})
st(out + "/safetensors/empty.safetensors", {"e": ("F32", [0, 4], b"")})
EOF
if python3 "$ROOT/tests/train/data/make_torch_save.py" "$W/net.pt" >/dev/null 2>&1; then
    python3 - "$W/net.pt" "$OUT/pickle/data.pkl" <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
name = [n for n in z.namelist() if n.endswith("data.pkl")][0]
open(sys.argv[2], "wb").write(z.read(name))
EOF
fi
python3 - "$OUT/pickle" <<'EOF'
import pickle, collections, sys
d = sys.argv[1]
open(d + "/dict.pkl", "wb").write(pickle.dumps({"a": 1, "b": [1.5, "x", None, True], "c": (1, 2)}, protocol=2))
open(d + "/odict.pkl", "wb").write(pickle.dumps(collections.OrderedDict([("w", 3), ("v", {"k": -7})]), protocol=2))
EOF

# tokenizer folders and prompts
"$DHF" init-model --preset tiny-sd15 -o tiny --no-verify >/dev/null 2>&1
{ cat tiny/tokenizer/vocab.json; printf '\0'; printf '#version: 0.2\nc a\nca t</w>\n'; printf '\0'; printf 'A cat, sitting!'; } \
    >"$OUT/tokenizer/byte_vocab"
printf '{"a": 0, "b</w>": 1, "<|startoftext|>": 2, "<|endoftext|>": 3}\0#version: 0.2\na b</w>\n\0ab ba' \
    >"$OUT/tokenizer/small"
printf 'Cat sitting in a living room' >"$OUT/prompt/paper"
printf 'Caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x90\xb6\xf0\x9f\x90\xb6 it'"'"'s 3.5\xe2\x82\xac \xce\xa3\xce\x91\xce\xa3' >"$OUT/prompt/unicode"
printf 'a<|endoftext|>b<|startoftext|>! \t\r\n\xe2\x80\x8b\xc2\xa0x' >"$OUT/prompt/specials"

# a feature cache: a tiny extraction (2 images)
cat >x.yaml <<'EOF'
model_id: tiny
data_root: data/SPair-71k
cache_path: seed.h5
diffusion_resolution: 64
num_timesteps: 2
save_timestep: [1, 0]
pairs_per_category: 1
split: test
EOF
"$DHF" extract x.yaml --set pairs_per_category=1 >/dev/null 2>&1 || true
[ -f seed.h5 ] && cp seed.h5 "$OUT/cache/seed.h5"
# and a small one (1 image, 1 step, 32^2): every code path of the reader, a third of the
# bytes, so the fuzzer runs its inputs faster
ls data/SPair-71k/JPEGImages/*/*.jpg 2>/dev/null | head -1 >one.txt
"$DHF" extract x.yaml --set image_list=one.txt --set cache_path=seed-small.h5 \
    --set save_timestep=[0] --set num_timesteps=1 --set diffusion_resolution=32 >/dev/null 2>&1 || true
[ -f seed-small.h5 ] && cp seed-small.h5 "$OUT/cache/seed-small.h5"
for h in safetensors config pickle spair cub predictions image tokenizer prompt cache; do
    printf '%-12s %3d seed(s)\n' "$h" "$(ls "$OUT/$h" | wc -l)"
done
