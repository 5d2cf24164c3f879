"""ONNX ops outside modscope's own table read by onnx2torch's converters, and what the libraries
alone get wrong or refuse (issue 30; measured in experiments/converters/compare.json)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from modscope import load_graph
from modscope.errors import ModscopeError
from modscope.graphs.tracing import trace_graph
from tests.helpers.paths import FIXTURES, ROOT

pytestmark = pytest.mark.onnx
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from modscope.graphs.files import onnx_library  # noqa: E402

DATA = FIXTURES / "formats"
needs_onnx2torch = pytest.mark.skipif(
    onnx_library.onnx2torch_version() is None, reason="pip install 'modscope[onnx]'"
)


def _save(tmp_path: Path, nodes: list, inits: list, shape=(1, 3, 8, 8), name="m.onnx") -> Path:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


class _PadCelu(nn.Module):
    """The torch original of the ONNX graph below: reflect pad, conv, CELU, mean, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.head = nn.Linear(4, 2, bias=False)

    def forward(self, x):
        x = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        return self.head(torch.relu(nn.functional.celu(self.conv(x), 0.7)).mean((2, 3)))


def _pad_celu(tmp_path: Path) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    m = _PadCelu()
    inits = [
        numpy_helper.from_array(m.conv.weight.detach().numpy(), "w1"),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(m.head.weight.detach().numpy().T.copy(), "w2"),
    ]
    nodes = [  # Pad and Celu are not in modscope's table (onnx_ops.OPS); onnx2torch has both
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect", name="pad"),
        helper.make_node("Conv", ["p", "w1"], ["c"], name="conv"),
        helper.make_node("Celu", ["c"], ["n"], alpha=0.7, name="celu"),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("MatMul", ["f", "w2"], ["y"], name="head"),
    ]
    return _save(tmp_path, nodes, inits), m


@needs_onnx2torch
def test_ops_outside_the_table_are_read_by_onnx2torch(tmp_path):
    from modscope.graphs.files.onnx_ops import OPS

    assert "Pad" not in OPS and "Celu" not in OPS
    path, original = _pad_celu(tmp_path)
    graph = load_graph(path)
    ref = trace_graph(original, (torch.zeros(1, 3, 8, 8),))
    assert graph.sizes == ref.sizes == (3, 4, 2) and graph.links == ref.links
    for a, b in zip(graph.weights, ref.weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    assert sys.modules.get("torchvision") is None or hasattr(sys.modules["torchvision"], "__file__")


@needs_onnx2torch
def test_a_library_op_is_sized_against_the_memory_budget_before_it_runs(tmp_path):
    pads = numpy_helper.from_array(np.array([0, 0, 10**6, 10**6, 0, 0, 10**6, 10**6], np.int64), "pads")
    nodes = [helper.make_node("Pad", ["x", "pads"], ["y"], mode="constant", name="blow")]
    with pytest.raises(ModscopeError, match=r"blow \(Pad\)") as info:
        load_graph(_save(tmp_path, nodes, [pads]))
    _one_line(info)


@needs_onnx2torch
def test_a_library_op_the_tracer_cannot_follow_is_refused_naming_the_node(tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3, 1, 1)).astype(np.float32), "w"),
             numpy_helper.from_array(np.ones(4, np.float32), "s"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("InstanceNormalization", ["c", "s", "b"], ["y"], name="inorm")]
    with pytest.raises(ModscopeError, match="ONNX InstanceNormalization node inorm") as info:
        load_graph(_save(tmp_path, nodes, inits))
    _one_line(info)


@needs_onnx2torch
def test_an_op_neither_reads_is_refused_in_one_line(tmp_path):
    nodes = [helper.make_node("Hardmax", ["x"], ["y"], name="hm")]
    with pytest.raises(ModscopeError, match=r"ONNX op Hardmax \(node hm\).* nor by onnx2torch") as info:
        load_graph(_save(tmp_path, nodes, [], shape=(1, 4)))
    _one_line(info)


def test_without_onnx2torch_the_refusal_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_library, "_onnx2torch", lambda: None)
    path = tmp_path / "m.onnx"
    nodes = [helper.make_node("Hardmax", ["x"], ["y"], name="hm")]
    path = _save(tmp_path, nodes, [], shape=(1, 4))
    with pytest.raises(ModscopeError, match=r"pip install 'modscope\[onnx\]'") as info:
        load_graph(path)
    _one_line(info)


# -- what the library alone gets wrong or refuses -----------------------------------------------------
@needs_onnx2torch
@pytest.mark.parametrize(
    "fixture, op",
    [("lstm_legacy.onnx", "LSTM"), ("zoo_legacy.onnx", "GRU"), ("rescnn_dynamo.onnx", "Reshape")],
)
def test_onnx2torch_alone_refuses_what_modscope_reads(fixture, op):
    o2t = onnx_library._onnx2torch()
    with pytest.raises(NotImplementedError, match=f"operation_type='{op}'"):
        o2t.convert(onnx.load(str(DATA / fixture)))
    assert load_graph(DATA / fixture).n_nodes > 0  # modscope's table reads it


@pytest.mark.slow
def test_keras3_unrolls_a_recurrent_layer_into_one_link_per_time_step():
    """Keras 3's torch backend runs an LSTM step by step: traced, its recurrent kernel is one
    link per time step, where modscope's reader (and Keras's own semantics) has one."""
    code = (
        "import keras, torch\n"
        "from modscope.graphs.tracing import trace_graph\n"
        f"m = keras.saving.load_model({str(DATA / 'keras_lstm.h5')!r}, compile=False, safe_mode=True)\n"
        "g = trace_graph(m, (torch.zeros(1, *m.inputs[0].shape[1:]),))\n"
        "print(len(g.links), g.links.count((1, 1)))\n"
    )
    root = ROOT
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(root)}
    probe = subprocess.run([sys.executable, "-c", "import keras"], env=env, capture_output=True)
    if probe.returncode:
        pytest.skip("keras 3 is not installed")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-500:]
    links, recurrent = map(int, out.stdout.split()[-2:])
    ours = load_graph(DATA / "keras_lstm.h5")
    assert ours.links.count((1, 1)) == 1 and recurrent == 4 > 1 and links > len(ours.links)


@needs_onnx2torch
def test_a_torchvision_that_does_not_load_is_stood_in_for(tmp_path):
    """torchvision's PyPI wheels do not load on torch's CPU build (RuntimeError at import): onnx2torch
    still imports, and the stand-in is gone from sys.modules afterwards."""
    broken = tmp_path / "site" / "torchvision"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    code = (
        "import sys\n"
        "from modscope.graphs.files.onnx_library import onnx2torch_version\n"
        "print(onnx2torch_version() is not None, 'torchvision' in sys.modules)\n"
    )
    root = ROOT
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(root)])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split() == ["True", "False"]
