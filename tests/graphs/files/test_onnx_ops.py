"""modscope's own ONNX op table (``onnx_ops``) on crafted one-op graphs: what it reads, and the
inputs it must refuse rather than read wrongly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modscope import load_graph
from modscope.errors import ModscopeError

pytestmark = pytest.mark.onnx
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _conv_then(tmp_path: Path, op: str, inputs: list, inits: list, opset: int = 17, **attrs) -> Path:
    """x (1, 3, 8, 8) -> a 1x1 conv to 4 channels -> ``op`` (the conv's output first, then ``inputs``)."""
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node(op, ["c", *inputs], ["y"], name="up", **attrs)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [y], [w, *inits])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def _array(name: str, values, dtype) -> object:
    return numpy_helper.from_array(np.array(values, dtype), name)


@pytest.mark.parametrize(("inputs", "inits", "opset", "attrs"), [
    (["", "scales"], [_array("scales", [1, 1, 2, 2], np.float32)], 17, {}),
    (["", "", "sizes"], [_array("sizes", [1, 4, 16, 16], np.int64)], 17, {}),
    (["", "", "sizes"], [_array("sizes", [16, 16], np.int64)], 18, {"axes": [2, 3]}),  # opset 18's axes
    (["", "scales"], [_array("scales", [2, 2], np.float32)], 18, {"axes": [-2, -1]}),
])
def test_resize_by_scales_and_by_sizes_keeps_each_channel(tmp_path, inputs, inits, opset, attrs):
    g = load_graph(_conv_then(tmp_path, "Resize", inputs, inits, opset=opset, mode="nearest", **attrs))
    assert g.sizes == (3, 4) and g.links == ((0, 1),)


@pytest.mark.parametrize(("op", "inputs", "inits", "opset", "attrs", "says"), [
    ("Resize", ["", "scales"], [_array("scales", [2, 1, 2, 2], np.float32)], 17, {}, "batch or channel"),
    ("Resize", ["", "", "sizes"], [_array("sizes", [1, 8, 16, 16], np.int64)], 17, {}, "batch or channel"),
    ("Resize", ["", "scales"], [_array("scales", [1, 1, 2], np.float32)], 17, {}, "3 scales for 4 axes"),
    ("Resize", ["", "", "sizes"], [_array("sizes", [16, 16, 16], np.int64)], 17, {}, "3 sizes for 4 axes"),
    ("Upsample", [], [], 8, {"scales": [1.0, 2.0, 2.0, 2.0]}, "batch or channel"),
    ("Resize", ["", "", "sizes"], [_array("sizes", [1, 16, 16], np.int64)], 18, {"axes": [1, 2]},
     "3 sizes for 2 axes"),
])
def test_resize_that_would_change_the_batch_or_channels_is_refused(tmp_path, op, inputs, inits, opset, attrs,
                                                                  says):
    with pytest.raises(ModscopeError, match=says) as info:
        load_graph(_conv_then(tmp_path, op, inputs, inits, opset=opset, **attrs))
    assert "\n" not in str(info.value) and "node up" in str(info.value)
