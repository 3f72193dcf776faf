#!/usr/bin/env bash
# import_export.sh — `dhf import` and `dhf export` from the command line: a file in the
# layout of the paper's torch.save checkpoints (made with Python's own pickle by
# tests/train/data/make_torch_save.py) imported, drawn by `dhf heatmap`, exported,
# read the way torch.load reads it, imported again with the same tensors; a refused
# file exits 1 with one line naming the file; a usage error exits 2.
# dhf-test: label=e2e
set -u
DHF=${DHF_BIN:-build/bin/dhf}
fail() { echo "FAIL: $*"; exit 1; }
if ! python3 -c 'import pickle, zipfile' 2>/dev/null; then
    echo "no python3 to write the torch.save-layout file: skipped"
    exit 77
fi
work=$(mktemp -d /tmp/dhf_e2e_pt.XXXXXX) || fail "mktemp"
trap 'rm -rf "$work"' EXIT

python3 tests/train/data/make_torch_save.py "$work/net.pt" 3 2 128 64,32,48 ||
    fail "make_torch_save.py"
"$DHF" import "$work/net.pt" >"$work/import.log" 2>&1 || fail "dhf import: $(cat "$work/import.log")"
grep -q "L = 3 layers (C = 64,32,48), S = 2 timesteps, P = 128; step 4000; AdamW moments at step 4001" \
    "$work/import.log" || fail "import summary: $(cat "$work/import.log")"
[ -f "$work/net.safetensors" ] && [ -f "$work/net.yaml" ] || fail "import wrote no checkpoint/config"
"$DHF" config check "$work/net.yaml" >/dev/null 2>&1 || fail "the imported config does not check"
"$DHF" heatmap "$work/net.safetensors" -o "$work/mix.png" >/dev/null 2>&1 || fail "dhf heatmap of the import"
"$DHF" export "$work/net.safetensors" -o "$work/back.pt" >"$work/export.log" 2>&1 ||
    fail "dhf export: $(cat "$work/export.log")"
python3 tests/train/data/read_torch_save.py "$work/back.pt" >"$work/read.log" 2>&1 ||
    fail "the export does not read as torch.load reads: $(cat "$work/read.log")"
grep -q "OK keys=37 first=bottleneck_layers.0.0.shortcut.weight last=mixing_weights step=4000 groups=1,36" \
    "$work/read.log" || fail "export layout: $(cat "$work/read.log")"
"$DHF" import "$work/back.pt" -o "$work/again.safetensors" >/dev/null 2>&1 || fail "re-import"
"$DHF" export "$work/again.safetensors" -o "$work/again.pt" >/dev/null 2>&1 || fail "re-export"
python3 tests/train/data/read_torch_save.py "$work/again.pt" >"$work/read2.log" 2>&1 || fail "re-read"
cmp -s "$work/read.log" "$work/read2.log" || fail "export -> import -> export changed: $(diff "$work/read.log" "$work/read2.log")"

# refused and usage errors
python3 tests/train/data/make_torch_save.py "$work/evil.pt" 2 3 128 32,64 --bad global || fail "make evil"
"$DHF" import "$work/evil.pt" -o "$work/evil.safetensors" 2>"$work/err.log" >/dev/null
rc=$?
[ $rc -eq 1 ] || fail "refused file: exit $rc, expected 1"
[ "$(wc -l <"$work/err.log")" -eq 1 ] || fail "refused file: not one line: $(cat "$work/err.log")"
grep -q "evil.pt: data.pkl: at byte .*refused global 'types.SimpleNamespace'" "$work/err.log" ||
    fail "refused file message: $(cat "$work/err.log")"
[ ! -e "$work/evil.safetensors" ] || fail "a refused import left an output"
"$DHF" import >/dev/null 2>&1
[ $? -eq 2 ] || fail "missing argument: expected exit 2"
"$DHF" export "$work/net.safetensors" >/dev/null 2>&1
[ $? -eq 2 ] || fail "export without -o: expected exit 2"
echo "import_export: all checks passed"
