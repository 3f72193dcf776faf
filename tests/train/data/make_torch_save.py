#!/usr/bin/env python3
"""make_torch_save.py — writes a file in exactly the layout PyTorch's torch.save gives
the paper's checkpoints, using only Python's own pickle and zipfile (no torch here):

  torch.save({"step", "config", "aggregation_network": net.state_dict(),
              "optimizer_state_dict": AdamW.state_dict()}, path)

as torch 1.13 writes it: pickle protocol 2; the state_dict an OrderedDict carrying
_metadata (pickled through BUILD); tensors as torch._utils._rebuild_tensor_v2 over
persistent ids ('storage', torch.FloatStorage, key, 'cpu', numel) with an empty
OrderedDict of backward hooks; storages as archive/data/<key>; AdamW's 'step' a
float32 0-dim tensor; detectron2's parameter order (shortcut, conv1, conv2, conv3).

Usage: make_torch_save.py OUT.pt L S P C0,C1,... [--no-optim] [--bad WHAT]
Element k of the t-th tensor written is ((37 k + 11 t) % 201 - 100) / 128 (exact in
float32), so a reader can check every value; mixing_weights is a view at offset 2 of
a larger storage. --bad makes a broken file (global, shape, missing, extra)."""
import collections
import pickle
import struct
import sys
import types
import zipfile

torch_mod = types.ModuleType("torch")
utils_mod = types.ModuleType("torch._utils")
sys.modules["torch"] = torch_mod
sys.modules["torch._utils"] = utils_mod


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
torch_mod.FloatStorage = FloatStorage


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called")


_rebuild_tensor_v2.__module__ = "torch._utils"
utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2


class Storage:
    def __init__(self, key, values):
        self.key, self.values = key, values


class Tensor:
    def __init__(self, storage, offset, size):
        self.storage, self.offset, self.size = storage, offset, tuple(size)

    def __reduce_ex__(self, proto):
        stride, acc = [], 1
        for d in reversed(self.size):
            stride.insert(0, acc)
            acc *= d
        return (_rebuild_tensor_v2,
                (self.storage, self.offset, self.size, tuple(stride), False,
                 collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", len(obj.values))
        return None


storages = []


def tensor(shape, lead=0):
    t = len(storages)
    n = 1
    for d in shape:
        n *= d
    vals = [((37 * k + 11 * t) % 201 - 100) / 128.0 for k in range(n)]
    st = Storage(str(t), [0.5] * lead + vals)
    storages.append(st)
    return Tensor(st, lead, shape)


def scalar(value):
    st = Storage(str(len(storages)), [float(value)])
    storages.append(st)
    return Tensor(st, 0, ())


NAMES = [("shortcut.weight", "PC"), ("shortcut.norm.weight", "P"), ("shortcut.norm.bias", "P"),
         ("conv1.weight", "QC"), ("conv1.norm.weight", "Q"), ("conv1.norm.bias", "Q"),
         ("conv2.weight", "QQ3"), ("conv2.norm.weight", "Q"), ("conv2.norm.bias", "Q"),
         ("conv3.weight", "PQ"), ("conv3.norm.weight", "P"), ("conv3.norm.bias", "P")]


def shape_of(code, C, P):
    Q = P // 4
    return {"PC": (P, C, 1, 1), "P": (P,), "QC": (Q, C, 1, 1), "Q": (Q,),
            "QQ3": (Q, Q, 3, 3), "PQ": (P, Q, 1, 1)}[code]


def main():
    out, L, S, P = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    chans = [int(c) for c in sys.argv[5].split(",")]
    optim = "--no-optim" not in sys.argv
    bad = sys.argv[sys.argv.index("--bad") + 1] if "--bad" in sys.argv else None
    sd = collections.OrderedDict()
    for l in range(L):
        for name, code in NAMES:
            shape = shape_of(code, chans[l], P)
            if bad == "shape" and l == 1 and name == "conv2.weight":
                shape = (P // 4, P // 4, 1, 1)
            if bad == "missing" and l == 1 and name == "conv3.norm.bias":
                continue
            sd[f"bottleneck_layers.{l}.0.{name}"] = tensor(shape)
    sd["mixing_weights"] = tensor((L * S,), lead=2)
    if bad == "extra":
        sd["logit_scale"] = tensor((1,))
    sd._metadata = collections.OrderedDict(
        [("", {"version": 1})] + [(f"bottleneck_layers.{l}.0", {"version": 1}) for l in range(L)])
    config = {"model_id": "runwayml/stable-diffusion-v1-5", "diffusion_mode": "inversion",
              "save_timestep": [49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0][:S],
              "num_timesteps": 50, "projection_dim": P, "output_resolution": 64,
              "load_resolution": 224, "batch_size": 2, "lr": 0.001, "weight_decay": 0.0,
              "max_epochs": 1, "max_steps_per_epoch": 5000, "val_every_n_steps": 1000,
              "pck_threshold": 0.1, "prompt": "", "negative_prompt": "", "guidance_scale": -1,
              "device": "cuda", "wandb_project": "dhf", "results_folder": "results"}
    obj = {"step": 4000, "config": config, "aggregation_network": sd}
    if optim:
        n = 1 + 12 * L
        order = ["mixing_weights"] + [f"bottleneck_layers.{l}.0.{name}"
                                      for l in range(L) for name, _ in NAMES]
        state = {}
        for i, key in enumerate(order):
            shape = sd[key].size if key in sd else (1,)
            state[i] = {"step": scalar(4001), "exp_avg": tensor(shape),
                        "exp_avg_sq": tensor(shape)}
        group = {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0.0,
                 "amsgrad": False, "maximize": False, "foreach": None, "capturable": False}
        obj["optimizer_state_dict"] = {
            "state": state,
            "param_groups": [dict(group, params=[0]), dict(group, params=list(range(1, n)))]}
    if bad == "global":
        obj["config"]["evil"] = types.SimpleNamespace()
    buf = __import__("io").BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for st in storages:
            z.writestr(f"archive/data/{st.key}", struct.pack(f"<{len(st.values)}f", *st.values))
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    main()
