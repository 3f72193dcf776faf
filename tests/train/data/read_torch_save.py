#!/usr/bin/env python3
"""read_torch_save.py — loads a torch.save file the way torch.load does (its zip
records, pickle with persistent storage ids, collections.OrderedDict and
torch._utils._rebuild_tensor_v2 resolved by name) using only the standard library,
and prints one line a test can check:

  OK keys=<n> first=<first key> last=<last key> step=<step> groups=<sizes> sum=<sum of mixing_weights>

Usage: read_torch_save.py FILE.pt"""
import collections
import pickle
import struct
import sys
import zipfile


class Storage:
    def __init__(self, data):
        self.data = data


def rebuild(storage, offset, size, stride, requires_grad, hooks, *rest):
    n = 1
    for d in size:
        n *= d
    assert all(s >= 0 for s in stride)
    flat = []
    idx = [0] * len(size)
    for _ in range(n):
        off = offset + sum(i * s for i, s in zip(idx, stride))
        flat.append(storage.data[off])
        for d in reversed(range(len(size))):
            idx[d] += 1
            if idx[d] < size[d]:
                break
            idx[d] = 0
    return ("tensor", tuple(size), flat)


class FloatStorage:
    pass


def main():
    z = zipfile.ZipFile(sys.argv[1])
    names = z.namelist()
    top = names[0].split("/")[0]

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return rebuild
            if (module, name) == ("torch", "FloatStorage"):
                return FloatStorage
            raise pickle.UnpicklingError(f"global {module}.{name} not expected")

        def persistent_load(self, pid):
            kind, typ, key, location, numel = pid
            assert kind == "storage" and typ is FloatStorage and location == "cpu"
            raw = z.read(f"{top}/data/{key}")
            assert len(raw) == 4 * numel
            return Storage(struct.unpack(f"<{numel}f", raw))

    obj = Unpickler(__import__("io").BytesIO(z.read(f"{top}/data.pkl"))).load()
    sd = obj["aggregation_network"]
    assert isinstance(sd, collections.OrderedDict)
    keys = list(sd.keys())
    groups = [len(g["params"]) for g in obj.get("optimizer_state_dict", {}).get("param_groups", [])]
    mw = sd["mixing_weights"][2]
    print(f"OK keys={len(keys)} first={keys[0]} last={keys[-1]} step={obj['step']} "
          f"groups={','.join(map(str, groups))} sum={sum(mw):.6f}")


if __name__ == "__main__":
    main()
