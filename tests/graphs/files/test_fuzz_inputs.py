"""Fuzzing the readers with crafted and careless inputs (issue 29).

Every case is generated here, from a small valid file per reader: structured mutations of its
metadata (JSON, npy and safetensors headers, pickles, protobuf fields, HDF5 attributes), the
hostile files of the issue (zip and gzip bombs, stride-0 tensors, huge declared shapes and
batches, ``range_constraints`` symbols that hang torch) and a few byte flips and truncations.
The cases run in batches in subprocesses (tests/helpers/fuzz_runner.py) with a 64 MiB modscope memory
budget, a 6 GiB address-space cap and a 10 s alarm per case; each must exit 0 or 2 (never an
internal error), without a traceback, under 1 GiB peak RSS and 10 s.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers.paths import FIXTURES, HELPERS

# torch.jit.save makes a seed; slow: several hundred cases in a subprocess (minutes)
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.slow]
FORMATS = FIXTURES / "formats"
RUNNER = HELPERS / "fuzz_runner.py"
PEAK_RSS = 2**30
CASE_SECONDS = 10
SCORE = ["--shuffles", "1", "--clusters", "2", "--no-progress"]
# values a mutation puts in place of a JSON value: wrong types, huge, negative, hostile names
ODD_VALUES: list = [
    None, -1, 0, 2**63, 10**18, -(10**9), 1.5, "", "x", "u999999999999999", "../../etc/passwd",
    [], {}, [1, 2, 3], {"a": 1}, True, [10**12, 10**12], "cfg",
]


# -- mutation helpers ----------------------------------------------------------------------------------
def _paths(obj, prefix=()):
    """Every key path into a JSON value (inner nodes and leaves)."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _set(obj, path, value, delete=False):
    obj = copy.deepcopy(obj)
    if not path:
        return value
    node = obj
    for k in path[:-1]:
        node = node[k]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return obj


def json_mutants(obj, rng: random.Random, n: int) -> list:
    """``n`` copies of ``obj``, each with one value replaced by an odd one or one key deleted."""
    paths = [p for p in _paths(obj) if p]
    out = []
    for _ in range(n):
        path = rng.choice(paths)
        if rng.random() < 0.15:
            out.append(_set(obj, path, None, delete=True))
        else:
            out.append(_set(obj, path, copy.deepcopy(rng.choice(ODD_VALUES))))
    return out


# Each seed's random byte flips and truncations, times this (MODSCOPE_FUZZ_SCALE): 4 gives every
# reader 170-360 cases; 1 is a quicker local run.
SCALE = max(1, int(os.environ.get("MODSCOPE_FUZZ_SCALE", "4")))


def byte_mutants(data: bytes, rng: random.Random, flips: int, cuts: int, lo: int = 0) -> list[bytes]:
    """Random byte flips (after offset ``lo``) and truncations, ``SCALE`` times as many."""
    flips, cuts = flips * SCALE, cuts * SCALE
    out = []
    for _ in range(flips):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(lo, len(b))
            b[i] ^= 1 << rng.randrange(8)
        out.append(bytes(b))
    for _ in range(cuts):
        out.append(data[: rng.randrange(1, len(data))])
    return out


def rezip(src: bytes, edit: Callable[[str, bytes], bytes | None], extra: dict | None = None) -> bytes:
    """A zip with each entry replaced by ``edit(name, data)`` (None: dropped), plus ``extra``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data, compress_type=zipfile.ZIP_STORED)
        for name, data in (extra or {}).items():
            zout.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


class _Bomb(zipfile.ZipInfo):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.compress_type = zipfile.ZIP_DEFLATED


def bomb_entries(src: bytes, victim: Callable[[str], bool], size: int = 80 * 2**20) -> bytes:
    buf = io.BytesIO()
    chunk = bytes(2**20)
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            if victim(info.filename):
                with zout.open(_Bomb(info.filename), "w", force_zip64=True) as fh:
                    for _ in range(size // len(chunk)):
                        fh.write(chunk)
            else:
                zout.writestr(info.filename, zin.read(info.filename))
    return buf.getvalue()


class Cases:
    """Collects ``(id, file bytes or a writer, how it is run)`` into a folder."""

    def __init__(self, root: Path, reader: str) -> None:
        self.root = root / reader
        self.root.mkdir(parents=True, exist_ok=True)
        self.reader = reader
        self.items: list[dict] = []

    def add(self, name: str, data: bytes | None, suffix: str, *, argv=None, call=None, path=None) -> None:
        case_id = f"{self.reader}-{len(self.items):03d}-{name}"
        if path is None:
            path = self.root / f"{case_id}{suffix}"
            path.write_bytes(data)
        if call is not None:
            self.items.append({"id": case_id, "call": call, "path": str(path)})
        else:
            self.items.append({"id": case_id, "argv": [a.replace("{}", str(path)) for a in argv]})

    def score(self, name: str, data: bytes, suffix: str) -> None:
        self.add(name, data, suffix, argv=["score", "{}", *SCORE])


# -- the seeds ---------------------------------------------------------------------------------------
def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _state() -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in _mlp().state_dict().items()}


# -- per reader ------------------------------------------------------------------------------------------
def safetensors_cases(c: Cases, rng: random.Random) -> None:
    from safetensors.numpy import save

    seed = save(_state())
    (n,) = struct.unpack("<Q", seed[:8])
    header, body = json.loads(seed[8 : 8 + n]), seed[8 + n :]

    def pack(h, data=body) -> bytes:
        text = json.dumps(h).encode()
        return struct.pack("<Q", len(text)) + text + data

    c.score("seed", seed, ".safetensors")
    name = next(k for k in header if k != "__metadata__")
    for dtype in ["F8_E4M3", "F8_E5M2", "BF16", "F16", "F64", "I8", "U8", "BOOL", "I64", "C64", "X", 7]:
        h = copy.deepcopy(header)
        h[name]["dtype"] = dtype
        c.score(f"dtype-{dtype}", pack(h), ".safetensors")
    for shape in [[10**12, 3], [-1, 3], [], [0, 3], [2**40, 2**40], ["4", 3], [4, 3, 1]]:
        h = copy.deepcopy(header)
        h[name]["shape"] = shape
        c.score("shape", pack(h), ".safetensors")
    nan = _state()
    nan[next(iter(nan))][0, 0] = np.nan
    c.score("nan-weight", save(nan), ".safetensors")
    c.score("huge-header-length", struct.pack("<Q", 2**62) + seed[8:], ".safetensors")
    for i, h in enumerate(json_mutants(header, rng, 60)):
        c.score(f"json{i}", pack(h), ".safetensors")
    for i, b in enumerate(byte_mutants(seed, rng, 25, 10)):
        c.score(f"bytes{i}", b, ".safetensors")


def _npy(descr: str, shape, fortran: bool, data: bytes) -> bytes:
    head = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {tuple(shape)!r}, }}"
    head = head.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode() + data


def npz_cases(c: Cases, rng: random.Random) -> None:
    state = _state()
    buf = io.BytesIO()
    np.savez(buf, **state)
    seed = buf.getvalue()
    c.score("seed", seed, ".npz")
    first = next(iter(state))
    raw = state[first].tobytes()
    for descr in ["<f4", "<c8", "|O", "<U4", "|V8", ">f8", "|b1", "<f2", "xyz"]:
        for shape in [(4, 3), (10**12, 3), (-1, 3), (), (0, 3), (2**40, 2**40)]:
            member = _npy(descr, shape, rng.random() < 0.3, raw)
            data = rezip(seed, lambda n, d, member=member: member if n == f"{first}.npy" else d)
            c.score(f"npy-{descr}-{len(shape)}", data, ".npz")
    c.score("bomb", bomb_entries(seed, lambda n: n == f"{first}.npy"), ".npz")
    for i, b in enumerate(byte_mutants(seed, rng, 25, 10)):
        c.score(f"bytes{i}", b, ".npz")


def torch_save_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def pt_cases(c: Cases, rng: random.Random) -> None:
    sd = _mlp().state_dict()
    seed = torch_save_bytes(sd)
    c.score("seed", seed, ".pt")
    big = dict(sd)
    big["0.weight"] = torch.zeros(1).expand(10**8, 3)  # 1.2 GB declared, one float stored
    c.score("stride0", torch_save_bytes(big), ".pt")
    c.score("stride0-alone", torch_save_bytes({"w": torch.zeros(1).expand(10**9, 4)}), ".pt")
    c.score("bomb", bomb_entries(seed, lambda n: n.endswith("/data/0")), ".pt")
    c.score("bomb-extra", bomb_entries(rezip(seed, lambda n, d: d, {"archive/extra": b"0"}),
                                       lambda n: n.endswith("/extra")), ".pt")
    bf = {k: v.to(torch.bfloat16) for k, v in sd.items()}
    c.score("bfloat16", torch_save_bytes(bf), ".pt")
    nan = {k: v.clone() for k, v in sd.items()}
    nan["0.weight"][0, 0] = float("inf")
    c.score("inf-weight", torch_save_bytes(nan), ".pt")
    c.score("complex", torch_save_bytes({k: v.to(torch.complex64) for k, v in sd.items()}), ".pt")

    def pkl_edit(mutate):
        return lambda n, d: mutate(d) if n.endswith("data.pkl") else d

    with zipfile.ZipFile(io.BytesIO(seed)) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    for i, b in enumerate(byte_mutants(pkl, rng, 40, 8, lo=2)):
        c.score(f"pkl{i}", rezip(seed, pkl_edit(lambda d, b=b: b)), ".pt")
    for i, b in enumerate(byte_mutants(seed, rng, 10, 8)):
        c.score(f"bytes{i}", b, ".pt")


class _Expanded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = nn.Linear(3, 2)
        self.register_buffer("e", torch.zeros(1).expand(10**8, 4))  # 1.6 GB declared

    def forward(self, x):
        return self.l(x)


def torchscript_cases(c: Cases, rng: random.Random) -> None:
    def save(m) -> bytes:
        buf = io.BytesIO()
        torch.jit.save(torch.jit.trace(m, torch.zeros(1, 3)), buf)
        return buf.getvalue()

    seed = save(_mlp())
    c.score("seed", seed, ".pt")
    c.score("stride0", save(_Expanded()), ".pt")
    c.score("bomb", bomb_entries(seed, lambda n: n.endswith("/data/0")), ".pt")
    c.score("bomb-pkl", bomb_entries(seed, lambda n: n.endswith("/data.pkl")), ".pt")
    m = _mlp().to(torch.bfloat16)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.trace(m, torch.zeros(1, 3, dtype=torch.bfloat16)), buf)
    c.score("bfloat16", buf.getvalue(), ".pt")
    with zipfile.ZipFile(io.BytesIO(seed)) as z:
        pkl_name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        pkl = z.read(pkl_name)
    subs = [(b"FloatStorage", b"BFloat16Storage"), (b"FloatStorage", b"QInt8Storage"),
            (b"FloatStorage", b"ComplexFloatStorage"), (b"X\x01\x00\x00\x000", b"X\x05\x00\x00\x00../x0"),
            (b"X\x01\x00\x00\x000", b"X\x01\x00\x00\x00/"), (b"torch._utils", b"os.path.xx")]
    for a, b in subs:
        data = rezip(seed, lambda n, d, a=a, b=b: d.replace(a, b) if n == pkl_name else d)
        c.score("pkl-sub", data, ".pt")
    for i, b in enumerate(byte_mutants(pkl, rng, 60, 10, lo=2)):
        c.score(f"pkl{i}", rezip(seed, lambda n, d, b=b: b if n == pkl_name else d), ".pt")
    for i, b in enumerate(byte_mutants(seed, rng, 10, 6)):
        c.score(f"bytes{i}", b, ".pt")


def pt2_cases(c: Cases, rng: random.Random) -> None:
    buf = io.BytesIO()
    torch.export.save(torch.export.export(_mlp(), (torch.zeros(1, 3),)), buf)
    seed = buf.getvalue()
    c.score("seed", seed, ".pt2")
    with zipfile.ZipFile(io.BytesIO(seed)) as z:
        names = z.namelist()
        model_name = next(n for n in names if "/models/" in n and n.endswith(".json"))
        config_name = next(n for n in names if n.endswith("_weights_config.json"))
        program = json.loads(z.read(model_name))
        config = json.loads(z.read(config_name))

    def with_json(name: str, obj) -> bytes:
        return rezip(seed, lambda n, d: json.dumps(obj).encode() if n == name else d)

    hang = copy.deepcopy(program)
    hang["range_constraints"] = {"u999999999999999": {"min_val": 0, "max_val": 10}}
    c.score("range-hang", with_json(model_name, hang), ".pt2")
    wide = copy.deepcopy(program)
    for value in wide["graph_module"]["graph"]["tensor_values"].values():
        if [s.get("as_int") for s in value["sizes"]] == [1, 3]:
            value["sizes"] = [{"as_int": 1}, {"as_int": 200_000_000}]
    c.score("input-width-2e8", with_json(model_name, wide), ".pt2")
    five = json.loads(json.dumps(wide).replace("200000000", "5"))  # shapes that disagree with the weights
    c.score("input-width-5", with_json(model_name, five), ".pt2")
    fqn = next(iter(config["config"]))
    for sizes, strides in [([10**8, 3], [0, 0]), ([10**12, 10**12], [1, 1]), ([-4, 3], [3, 1])]:
        cfg = copy.deepcopy(config)
        cfg["config"][fqn]["tensor_meta"]["sizes"] = [{"as_int": s} for s in sizes]
        cfg["config"][fqn]["tensor_meta"]["strides"] = [{"as_int": s} for s in strides]
        c.score("tensor-meta", with_json(config_name, cfg), ".pt2")
    c.score("bomb", bomb_entries(seed, lambda n: n == model_name), ".pt2")
    for i, p in enumerate(json_mutants(program, rng, 90)):
        c.score(f"program{i}", with_json(model_name, p), ".pt2")
    for i, p in enumerate(json_mutants(config, rng, 20)):
        c.score(f"config{i}", with_json(config_name, p), ".pt2")
    for i, b in enumerate(byte_mutants(seed, rng, 8, 6)):
        c.score(f"bytes{i}", b, ".pt2")


def onnx_cases(c: Cases, rng: random.Random) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    st = _state()
    arrays = {"w0": st["0.weight"].T.copy(), "b0": st["0.bias"], "w1": st["2.weight"].T.copy(),
              "b1": st["2.bias"]}
    inits = [numpy_helper.from_array(a, name) for name, a in arrays.items()]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"]), helper.make_node("Add", ["h", "b0"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "w1"], ["o"]),
             helper.make_node("Add", ["o", "b1"], ["y"])]

    def model(nodes=nodes, inits=inits, in_shape=(1, 3), extra_inputs=()) -> bytes:
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape)), *extra_inputs],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
            inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        return m.SerializeToString()

    seed = model()
    c.score("seed", seed, ".onnx")
    for shape in [(300_000_000, 3), (1, 300_000_000), (0, 3), (1,), (3,), (1, 3, 1)]:
        c.score("input-shape", model(in_shape=shape), ".onnx")
    empty = [numpy_helper.from_array(np.zeros((0, 4), np.float32), "w0"), *inits[1:]]
    c.score("zero-size-initializer", model(inits=empty), ".onnx")
    for op, ins, attrs in [
        ("ConstantOfShape", ["big"], {}), ("Expand", ["x", "big"], {}), ("Tile", ["x", "big"], {}),
        ("Range", ["r0", "r1", "r2"], {}),
    ]:
        consts = [numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "big"),
                  numpy_helper.from_array(np.array(0.0, np.float32), "r0"),
                  numpy_helper.from_array(np.array(1e12, np.float32), "r1"),
                  numpy_helper.from_array(np.array(1.0, np.float32), "r2")]
        blow = helper.make_node(op, ins, ["blown"], **attrs)
        shape = helper.make_node("Shape", ["blown"], ["s"])
        tail = helper.make_node("ReduceSum", ["s"], ["n"], keepdims=0)
        cast = helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT)
        add = helper.make_node("Add", ["o", "nf"], ["y"])
        c.score(f"op-{op}", model(nodes=[*nodes[:-1], blow, shape, tail, cast, add], inits=inits + consts),
                ".onnx")
    proto = onnx.load_from_string(seed)
    dims = [(i, d) for i, t in enumerate(proto.graph.initializer) for d in range(len(t.dims))]
    for k in range(40):
        m = onnx.load_from_string(seed)
        i, d = rng.choice(dims)
        m.graph.initializer[i].dims[d] = rng.choice([0, 1, 7, 10**9, 2**40])
        if k % 3 == 0:
            m.graph.initializer[i].data_type = rng.choice([0, 2, 3, 7, 9, 10, 14, 16, 17, 99])
        c.score(f"init{k}", m.SerializeToString(), ".onnx")
    for k in range(30):
        m = onnx.load_from_string(seed)
        node = rng.choice(m.graph.node)
        choice = rng.random()
        if choice < 0.4:
            node.op_type = rng.choice(["Gemm", "Conv", "Reshape", "Flatten", "Softmax", "LSTM", "Foo", ""])
        elif choice < 0.7:
            node.input[rng.randrange(len(node.input))] = rng.choice(["", "missing", "y", "x"])
        else:
            node.attribute.append(helper.make_attribute(rng.choice(["axis", "transB", "perm"]),
                                                        rng.choice([1, -5, 10**9, [1, 0]])))
        c.score(f"node{k}", m.SerializeToString(), ".onnx")
    for i, b in enumerate(byte_mutants(seed, rng, 30, 10)):
        c.score(f"bytes{i}", b, ".onnx")


def keras_cases(c: Cases, rng: random.Random) -> None:
    h5py = pytest.importorskip("h5py")
    src = FORMATS / "keras_mlp.h5"
    with h5py.File(src) as f:
        config = json.loads(f.attrs["model_config"])

    def with_config(cfg, name: str) -> None:
        path = c.root / f"{c.reader}-{len(c.items):03d}-{name}.h5"
        shutil.copy(src, path)
        with h5py.File(path, "r+") as f:
            f.attrs["model_config"] = cfg if isinstance(cfg, str) else json.dumps(cfg)
        c.add(name, None, ".h5", argv=["score", "{}", *SCORE], path=path)

    c.score("seed", src.read_bytes(), ".h5")
    layers = config["config"]["layers"]
    for cls in ["cfg", "module", "param", "weights", "refuse", "role", "pick", "submodule", "torch",
                "layer", "where", "names", "prefix", "data_format_last", "_conv", "__init__", "identity"]:
        cfg = copy.deepcopy(config)
        cfg["config"]["layers"][-1]["class_name"] = cls
        with_config(cfg, f"class-{cls}")
    broken = []
    cfg = copy.deepcopy(config)
    del cfg["config"]["layers"][-1]["class_name"]
    broken.append(cfg)
    cfg = copy.deepcopy(config)
    cfg["config"]["layers"][-1]["config"] = "a string"
    broken.append(cfg)
    cfg = copy.deepcopy(config)
    cfg["config"]["layers"] = "not a list"
    broken.append(cfg)
    cfg = copy.deepcopy(config)
    cfg["config"] = "a string"
    broken.append(cfg)
    for shape in [[None, 10**12], [None, -3], [3 * 10**8, 4], [None, 0], ["4"], [], None, [None, 2.5]]:
        cfg = copy.deepcopy(config)
        for layer in cfg["config"]["layers"]:
            for key in ("batch_shape", "batch_input_shape"):
                if key in layer["config"]:
                    layer["config"][key] = shape
        broken.append(cfg)
    if any("inbound_nodes" in layer for layer in layers):
        for bad in [[["x"]], "nodes", [[[1, 2]]], [{"args": "x"}]]:
            cfg = copy.deepcopy(config)
            cfg["config"]["layers"][-1]["inbound_nodes"] = bad
            broken.append(cfg)
    for i, cfg in enumerate(broken):
        with_config(cfg, f"broken{i}")
    with_config("[1, 2", "bad-json")
    with_config("[]", "json-list")
    for i, cfg in enumerate(json_mutants(config, rng, 45)):
        with_config(cfg, f"json{i}")
    # a dataset of fill values declaring 4 GB in a few KB, and a weight with an odd shape
    with h5py.File(src) as f:
        weights = []
        f.visititems(lambda n, o: weights.append(n) if isinstance(o, h5py.Dataset) else None)
    odd_datasets = [
        ((10**5, 10**4), {"chunks": (100, 100), "fillvalue": 1.0}),
        ((0, 4), {}),
        ((10**9,), {"chunks": (1000,), "compression": "gzip"}),
    ]
    for k, (shape, kwargs) in enumerate(odd_datasets):
        path = c.root / f"{c.reader}-{len(c.items):03d}-dataset{k}.h5"
        shutil.copy(src, path)
        with h5py.File(path, "r+") as f:
            name = weights[0]
            del f[name]
            f.create_dataset(name, shape=shape, dtype="f4", **kwargs)
        c.add(f"dataset{k}", None, ".h5", argv=["score", "{}", *SCORE], path=path)
    keras = (FORMATS / "keras_mlp.keras").read_bytes()
    c.score("keras-seed", keras, ".keras")
    c.score("keras-bomb", bomb_entries(keras, lambda n: n == "model.weights.h5"), ".keras")
    c.score("keras-bomb-config", bomb_entries(keras, lambda n: n == "config.json"), ".keras")
    for i, b in enumerate(byte_mutants(src.read_bytes(), rng, 15, 8)):
        c.score(f"bytes{i}", b, ".h5")


def data_cases(c: Cases, rng: random.Random) -> None:
    x = np.random.default_rng(0).random((8, 3)).astype(np.float32)
    y = np.arange(8) % 2

    def npz(**arrays) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    c.add("seed", npz(x_test=x, y_test=y), ".npz", call="load_data")
    odd = {
        "strings": np.array(["a"] * 8), "zero-d": np.array(1.0), "nan": np.where(x > 0.5, np.nan, x),
        "inf": np.where(x > 0.5, np.inf, x), "complex": x.astype(np.complex64),
        "bytes": np.array([b"ab"] * 8), "bool": x > 0.5, "f16": x.astype(np.float16),
        "3d": x.reshape(8, 3, 1), "empty": np.zeros((0, 3)),
    }
    for name, arr in odd.items():
        c.add(f"x-{name}", npz(x_test=arr, y_test=y), ".npz", call="load_data")
        c.add(f"y-{name}", npz(x_test=x, y_test=arr), ".npz", call="load_data")
    c.add("pt-nan", torch_save_bytes({"x_test": torch.full((4, 3), float("nan")), "y_test": torch.zeros(4)}),
          ".pt", call="load_data")
    c.add("pt-complex", torch_save_bytes({"x_test": torch.zeros(4, 3, dtype=torch.complex64),
                                          "y_test": torch.zeros(4)}), ".pt", call="load_data")
    c.add("pt-stride0", torch_save_bytes({"x_test": torch.zeros(1).expand(10**8, 3), "y_test": torch.zeros(1)
                                          .expand(10**8)}), ".pt", call="load_data")
    seed = npz(x_test=x, y_test=y)
    first = "x_test"
    for descr in ["<f4", "<c8", "|O", "<U4", ">f8"]:
        for shape in [(8, 3), (10**12, 3), ()]:
            member = _npy(descr, shape, False, x.tobytes())
            data = rezip(seed, lambda n, d, member=member: member if n == f"{first}.npy" else d)
            c.add(f"npy-{descr}", data, ".npz", call="load_data")
    c.add("bomb", bomb_entries(seed, lambda n: n == "x_test.npy"), ".npz", call="load_data")
    for i, b in enumerate(byte_mutants(seed, rng, 20, 8)):
        c.add(f"bytes{i}", b, ".npz", call="load_data")
    # IDX files: dims whose product overflows int64, gzip bombs, wrong magic
    good = bytes([0, 0, 8, 2]) + struct.pack(">II", 4, 3) + bytes(12)
    c.add("idx-seed", good, ".idx", call="read_idx")
    for dims in [(2**32 - 1, 2**32 - 1, 2**32 - 1), (2**31, 2**31), (0, 3), (10**9,)]:
        head = bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
        c.add("idx-dims", head + bytes(12), ".idx", call="read_idx")
        c.add("idx-dims-gz", gzip.compress(head + bytes(12)), ".idx.gz", call="read_idx")
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = bytes([0, 0, 8, 1]) + struct.pack(">I", 80 * 2**20)
    bomb = comp.compress(head) + b"".join(comp.compress(bytes(2**20)) for _ in range(80)) + comp.flush()
    c.add("idx-gz-bomb", bomb, ".idx.gz", call="read_idx")
    for i, b in enumerate(byte_mutants(good, rng, 20, 6)):
        c.add(f"idx-bytes{i}", b, ".idx", call="read_idx")
    folder = c.root / "idx-folder-bomb"
    folder.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (folder / name).write_bytes(bomb)
    lab = bytes([0, 0, 8, 1]) + struct.pack(">I", 4) + bytes(4)
    for name in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(lab)
    c.add("idx-folder-bomb", None, "", call="load_image_data", path=folder)


READERS: dict[str, Callable[[Cases, random.Random], None]] = {
    "safetensors": safetensors_cases,
    "npz": npz_cases,
    "pt": pt_cases,
    "torchscript": torchscript_cases,
    "pt2": pt2_cases,
    "onnx": onnx_cases,
    "keras": keras_cases,
    "data": data_cases,
}


def run_batch(cases: list[dict], folder: Path) -> list[dict]:
    """Run ``cases`` in one subprocess (tests/helpers/fuzz_runner.py); its results, one per case."""
    spec, out = folder / "cases.json", folder / "results.json"
    spec.write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(spec), str(out)],
        capture_output=True,
        text=True,
        timeout=CASE_SECONDS * len(cases) + 120,
        cwd=folder,
    )
    results = json.loads(out.read_text()) if out.exists() else []
    if len(results) < len(cases):
        missing = cases[len(results)]["id"]
        raise AssertionError(f"the batch died at {missing} (rc {proc.returncode}): {proc.stderr[-2000:]}")
    return results


def _available(reader: str) -> bool:
    needs = {"safetensors": "safetensors", "onnx": "onnx", "keras": "h5py"}.get(reader)
    if needs is None:
        return True
    try:
        __import__(needs)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory) -> dict[str, list[dict]]:
    """Every reader's cases, run in one subprocess (torch.export's start-up cost paid once)."""
    root = tmp_path_factory.mktemp("fuzz")
    cases: list[dict] = []
    for reader, make in READERS.items():
        if _available(reader):
            c = Cases(root, reader)
            make(c, random.Random(f"issue-29-{reader}"))
            cases += c.items
    results = run_batch(cases, root)
    by_reader: dict[str, list[dict]] = {}
    for r in results:
        by_reader.setdefault(r["id"].split("-", 1)[0], []).append(r)
    return by_reader


# the readers of optional extras carry their markers: skipped without them, failed when strict
EXTRA_OF = {"onnx": pytest.mark.onnx, "keras": pytest.mark.h5py}
READER_PARAMS = [pytest.param(r, marks=EXTRA_OF[r]) if r in EXTRA_OF else r for r in READERS]


@pytest.mark.parametrize("reader", READER_PARAMS)
def test_every_crafted_input_exits_0_or_2_within_memory_and_time(reader, fuzz_results):
    if not _available(reader):
        pytest.skip(f"the {reader} reader's package is not installed")
    results = fuzz_results[reader]
    assert len(results) >= 60
    bad = []
    for r in results:
        problems = []
        if r["code"] not in (0, 2):
            problems.append(f"exit {r['code']}")
        if r["traceback"]:
            problems.append("a traceback")
        if any("out of memory" in line for line in r["stderr"]):
            problems.append("ran out of memory (a size was not checked first)")
        if r["seconds"] > CASE_SECONDS:
            problems.append(f"{r['seconds']} s")
        if r["peak_rss"] > PEAK_RSS:
            problems.append(f"peak RSS {r['peak_rss'] / 2**30:.2f} GiB")
        if problems:
            bad.append(f"{r['id']}: {', '.join(problems)}: {' | '.join(r['stderr'])[:300]}")
    assert not bad, f"{len(bad)} of {len(results)} cases failed:\n" + "\n".join(bad)
    assert results[0]["code"] == 0, results[0]  # the seed is a valid file, and it reads
