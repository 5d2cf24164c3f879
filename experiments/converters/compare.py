"""Measure before adopting: does onnx2torch / Keras 3 read ONNX and Keras files as well as modscope?

For every ONNX and Keras file the tests hold (tests/data/formats) and a few more made here (an
ONNX graph with unnamed nodes and numbered initializers, a legacy-exporter Resize / Upsample
network, a MatMul + Add MLP as the hostile-input tests build it, and a reflect Pad + Celu network
(two ops outside modscope's table, which its reader takes from onnx2torch); the dynamo exporter needs
onnxscript, which this environment lacks: the fixtures hold its output), and the published models
the onnx wheel (Apache-2.0) ships for its backend tests, with their weights stored again (see
`published`), the unit graph is read
two ways:

- ``modscope``: ``load_graph(path)``, today's readers (`graphs/files/onnx_model` + `onnx_ops`,
  `keras_h5` + `keras_layers`);
- ``library``: the library's own module traced by modscope's tracer: ``onnx2torch.convert`` (a
  ``torch.fx.GraphModule``) for ONNX, ``keras.saving.load_model(safe_mode=True)`` with the torch
  backend (Keras layers are ``torch.nn.Module`` there) for Keras; the example input has the
  file's declared shape, symbolic sizes 1, batch 1; a channels-last Keras input is traced with
  ``input_axis=-1``.

Per file: whether each side reads it (else its one-line refusal), the node count, the group
sizes and links, the group names and the largest absolute difference between the two sides'
edge weights where the graphs have the same groups and links. ``verdict``: ``identical``
(groups, links and names equal, weights within 1e-6 relative), ``same graph, other names``,
``different graph``, ``library refuses``, ``modscope refuses``. It also times ``import igraph``
against loading igraph's C core alone (issue 30 item 4; `modscope.clustering.community`).

Run from the repository root with the project's environment::

    PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/converters/compare.py \\
        --out experiments/converters/compare.json

The environment has ``onnx2torch==1.5.15`` (installed ``--no-deps``) and ``keras==3.15.1``.
onnx2torch imports torchvision at import time for two detection ops (NonMaxSuppression,
RoiAlign); torchvision's PyPI wheels are built against CUDA torch and do not load on torch 2.13's
CPU build, so this script lets an empty stand-in answer that one import (the two ops are not used
by any file here).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import types
import warnings
from pathlib import Path
from typing import Any

os.environ["KERAS_BACKEND"] = "torch"  # this script's own process only

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from modscope.errors import ModscopeError  # noqa: E402
from modscope.graphs.load import load_graph  # noqa: E402
from modscope.graphs.tracing import trace_graph  # noqa: E402
from modscope.runtime.receipts import write_receipt  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ROOT / "tests" / "data" / "formats"
warnings.filterwarnings("ignore")


def onnx2torch_module() -> Any:
    """``onnx2torch``, imported with an empty stand-in for torchvision (see the docstring)."""
    stand_in = types.ModuleType("torchvision")
    stand_in.ops = types.ModuleType("torchvision.ops")
    stand_in.ops.nms = stand_in.ops.roi_align = None
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.ops")}
    sys.modules.update({"torchvision": stand_in, "torchvision.ops": stand_in.ops})
    try:
        import onnx2torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return onnx2torch


# -- files made here -----------------------------------------------------------------------------------
def make_extra(folder: Path) -> list[Path]:
    """A few ONNX files the fixtures lack, from the tests' own recipes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    out = []
    # unnamed nodes, numbered initializers (tests/graphs/tracing/test_real_networks2.py::_renamed_onnx)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "391")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 2)).astype(np.float32), "135")
    nodes = [
        helper.make_node("Conv", ["x", "391"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "135"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w1, w2],
    )
    out.append(folder / "numbers.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(out[-1]))
    # a MatMul + Add MLP (tests/graphs/files/test_fuzz_inputs.py::onnx_cases' seed)
    arrays = {"w0": rng.normal(size=(3, 5)), "b0": rng.normal(size=5), "w1": rng.normal(size=(5, 2)),
              "b1": rng.normal(size=2)}
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"]), helper.make_node("Add", ["h", "b0"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("MatMul", ["r", "w1"], ["o"]),
             helper.make_node("Add", ["o", "b1"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits,
    )
    out.append(folder / "matmul_add.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(out[-1]))

    class Upsampled(nn.Module):  # a YOLO-style neck: conv, nearest 2x upsample, concat, conv
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(7, 5, 1)

        def forward(self, x):
            y = torch.relu(self.a(x))
            up = nn.functional.interpolate(nn.functional.max_pool2d(y, 2), scale_factor=2.0)
            return self.b(torch.cat([up, x], 1))

    torch.manual_seed(0)
    # Pad (reflect) and Celu: ops outside modscope's own table, read through onnx2torch's converters
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w1"),
             numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
             numpy_helper.from_array(rng.normal(size=(4, 2)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect", name="pad"),
             helper.make_node("Conv", ["p", "w1"], ["c"], name="conv"),
             helper.make_node("Celu", ["c"], ["n"], alpha=0.7, name="celu"),
             helper.make_node("GlobalAveragePool", ["n"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "w2"], ["y"], name="head")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )
    out.append(folder / "pad_celu.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(out[-1]))
    out.append(folder / "resize_legacy.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Upsampled().eval(), (torch.randn(1, 3, 8, 8),), str(out[-1]), dynamo=False,
                          input_names=["x"])
    return out


def published(folder: Path) -> list[Path]:
    """The published models inside the onnx wheel (Apache-2.0): its backend tests' "light" models
    (AlexNet, DenseNet-121, Inception v1 / v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512).
    The onnx project replaced their weights by ``ConstantOfShape`` nodes to keep the wheel small;
    here each becomes a stored initializer again (seeded normal values of its shape; BatchNorm
    variances uniform in [0.5, 1.5]), as in the original model, so both readers get the
    architecture with stored weights."""
    import onnx
    from onnx import numpy_helper

    out = []
    rng = np.random.default_rng(0)
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    for src in sorted(light.glob("light_*.onnx")):
        model = onnx.load(str(src))
        inits = {t.name: t for t in model.graph.initializer}
        variances = {n.input[4] for n in model.graph.node if n.op_type == "BatchNormalization"}
        keep = []
        for node in model.graph.node:
            if node.op_type == "ConstantOfShape" and node.input and node.input[0] in inits:
                shape = numpy_helper.to_array(inits.pop(node.input[0])).astype(int).tolist()
                if node.output[0] in variances:  # a BatchNorm's running variance: positive
                    w = rng.uniform(0.5, 1.5, shape).astype(np.float32)
                else:
                    w = (rng.standard_normal(shape) * 0.1).astype(np.float32)
                inits[node.output[0]] = numpy_helper.from_array(w, node.output[0])
            else:
                keep.append(node)
        del model.graph.node[:]
        model.graph.node.extend(keep)
        del model.graph.initializer[:]
        model.graph.initializer.extend(inits.values())
        out.append(folder / src.name)
        onnx.save(model, str(out[-1]))
    return out


# -- the two readings ----------------------------------------------------------------------------------
def one_line(exc: BaseException) -> str:
    """The refusal's first line, paths relative to the repository, onnx2torch's long form short."""
    text = (f"{type(exc).__name__}: {exc}".strip().splitlines() or [type(exc).__name__])[0]
    text = text.replace(f"{ROOT}/", "")
    missing = re.search(r"operation_type='(\w+)', version=(\d+)", text)
    if missing:
        text = f"onnx2torch has no converter for {missing[1]} version {missing[2]}"
    return text[:300]


def library_graph(path: Path) -> Any:
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path))  # external data from the model's folder
        module = onnx2torch_module().convert(model)
        init = {t.name for t in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in init]
        example = tuple(
            torch.zeros([d.dim_value if d.dim_value > 0 else 1 for d in i.type.tensor_type.shape.dim])
            for i in inputs
        )
        return trace_graph(module, example)
    import keras

    model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
    shape = [1 if s is None else int(s) for s in model.inputs[0].shape]
    axis = -1 if len(shape) == 4 else None  # Keras images are channels last
    return trace_graph(model, (torch.zeros(shape),), input_axis=axis)


def describe(graph: Any) -> dict:
    return {
        "nodes": int(sum(graph.sizes)),
        "n_links": len(graph.links),
        "sizes": list(graph.sizes),
        "links": [list(link) for link in graph.links],
        "names": list(graph.names),
    }


def compare(path: Path) -> dict:
    row: dict[str, Any] = {"file": path.name, "fixture": path.parent == FORMATS}
    graphs = {}
    for side, read in (("modscope", load_graph), ("library", library_graph)):
        t = time.perf_counter()
        try:
            graphs[side] = read(path)
            row[side] = describe(graphs[side])
        except (ModscopeError, Exception) as exc:  # noqa: B014 - both said the same way
            row[side] = {"refused": one_line(exc)}
            if os.environ.get("COMPARE_DEBUG"):
                traceback.print_exc()
        row[side]["seconds"] = round(time.perf_counter() - t, 3)
    if "modscope" not in graphs:
        row["verdict"] = "modscope refuses" if "library" not in graphs else "library reads, modscope refuses"
        return row
    if "library" not in graphs:
        row["verdict"] = "library refuses"
        return row
    a, b = graphs["modscope"], graphs["library"]
    if a.sizes != b.sizes or a.links != b.links:
        row["verdict"] = "different graph"
        return row
    pairs = zip(a.weights, b.weights, strict=True)
    diff = max((float(np.max(np.abs(x - y))) if x.size else 0.0) for x, y in pairs)
    scale = max((float(np.max(np.abs(x))) if x.size else 0.0) for x in a.weights)
    row["max_abs_weight_diff"] = diff
    same_weights = diff <= 1e-6 * max(scale, 1e-30)
    if not same_weights:
        row["verdict"] = "different graph"
    elif a.names != b.names:
        row["verdict"] = "same graph, other names"
    else:
        row["verdict"] = "identical"
    return row


# -- igraph's import -----------------------------------------------------------------------------------
# both after modscope's community module is imported: the seconds igraph itself adds
IMPORT_FULL = (
    "import time; from modscope.clustering.community import _igraph; t = time.perf_counter(); "
    "import igraph; print(time.perf_counter() - t)"
)
IMPORT_CORE = (
    "import time; from modscope.clustering.community import _igraph; t = time.perf_counter(); "
    "_igraph(); print(time.perf_counter() - t)"
)
MODULES = "import sys; {0}; print(int('matplotlib' in sys.modules))"


def igraph_import(repeats: int) -> dict:
    def seconds(code: str) -> float:
        runs = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
            runs.append(float(out.stdout.split()[-1]))
        return min(runs)

    def pulls_matplotlib(code: str) -> bool:
        out = subprocess.run([sys.executable, "-c", MODULES.format(code)], capture_output=True,
                             text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        return out.stdout.split()[-1] == "1"

    core = "from modscope.clustering.community import _igraph; _igraph()"
    return {
        "repeats": repeats,
        "import_igraph_s_min": seconds(IMPORT_FULL),
        "modscope_core_only_s_min": seconds(IMPORT_CORE),
        "import_igraph_pulls_matplotlib": pulls_matplotlib("import igraph"),
        "modscope_core_only_pulls_matplotlib": pulls_matplotlib(core),
    }


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "onnx", "onnx2torch", "keras", "h5py", "igraph", "matplotlib"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="experiments/converters/compare.json")
    p.add_argument("--import-repeats", type=int, default=5)
    args = p.parse_args(argv)
    files = sorted(FORMATS.glob("*.onnx")) + sorted(
        f for f in FORMATS.iterdir() if f.suffix in (".h5", ".keras")
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in files + make_extra(Path(tmp)) + published(Path(tmp)):
            rows.append(compare(path))
            print(f"{rows[-1]['file']:28s} {rows[-1]['verdict']}", flush=True)
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        kind = "keras" if not row["file"].endswith(".onnx") else "onnx (published)" if row["file"].startswith(
            "light_") else "onnx"
        bucket = counts.setdefault(kind, {"files": 0, "modscope_reads": 0, "library_reads": 0,
                                          "identical": 0, "same_graph": 0})
        bucket["files"] += 1
        bucket["modscope_reads"] += "refused" not in row["modscope"]
        bucket["library_reads"] += "refused" not in row["library"]
        bucket["identical"] += row["verdict"] == "identical"
        bucket["same_graph"] += row["verdict"] in ("identical", "same graph, other names")
    from modscope.graphs.files.onnx_ops import OPS

    registry = onnx2torch_module().node_converters.registry._CONVERTER_REGISTRY
    library_ops = sorted({d.operation_type for d in registry if d.domain == ""})
    results = {
        "summary": counts,
        "files": rows,
        "ops": {"modscope_only": sorted(set(OPS) - set(library_ops)),
                "library_only": sorted(set(library_ops) - set(OPS))},
        "igraph_import": igraph_import(args.import_repeats),
    }
    write_receipt(
        args.out,
        results,
        settings={"fixtures": str(FORMATS.relative_to(ROOT)), "extra_files": 4, "versions": versions(),
                  "tolerance": "weights within 1e-6 of the largest |w|"},
        note="2-core machine shared with other jobs: seconds are indicative only",
    )
    print(counts)


if __name__ == "__main__":
    main()
