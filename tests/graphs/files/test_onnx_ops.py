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


# -- attributes that change an op's function: read as ONNX defines them, or refused ------------------
def _one_op(tmp_path: Path, op: str, shape: tuple, inputs=(), inits=(), opset: int = 17, **attrs) -> Path:
    """x of ``shape`` -> ``op`` (x, then ``inputs``) -> y."""
    node = helper.make_node(op, ["x", *inputs], ["y"], name="op", **attrs)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([node], "g", [x], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              list(inits))
    path = tmp_path / "op.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def _forward(path: Path, x: np.ndarray) -> np.ndarray:
    """The reader's torch module for the model at ``path``, run on ``x``."""
    import torch

    from modscope.graphs.files.onnx_model import onnx_module, read_onnx

    module, _ = onnx_module(read_onnx(path), x.shape)
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


X = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("axis", [-1, -3, 2])
def test_flatten_counts_a_negative_axis_from_the_end(tmp_path, axis):
    """Flatten to (prod(shape[:axis]), prod(shape[axis:])), a negative axis counted from the back
    (-1 flattened every axis into the rows)."""
    y = _forward(_one_op(tmp_path, "Flatten", X.shape, axis=axis), X)
    cut = axis % X.ndim
    np.testing.assert_array_equal(y, X.reshape(int(np.prod(X.shape[:cut])), -1))


@pytest.mark.parametrize(("axes", "keep"), [([1, 2], 1), ([1, 3], 0), ([2], 0)])
def test_reduce_prod_multiplies_over_its_axes_only(tmp_path, axes, keep):
    """ReduceProd over several axes (not all of them) was the product of every element."""
    y = _forward(_one_op(tmp_path, "ReduceProd", X.shape, axes=axes, keepdims=keep), X)
    np.testing.assert_allclose(y, np.prod(X, axis=tuple(axes), keepdims=bool(keep)), rtol=1e-5)


@pytest.mark.parametrize(("attrs", "pads"), [
    ({"auto_pad": "SAME_UPPER"}, ((0, 0), (0, 1))),  # 4 x 5 by 2 / 2: ceil(5 / 2) outputs, odd padding
    ({"auto_pad": "SAME_LOWER"}, ((0, 0), (1, 0))),
    ({"pads": [0, 1, 1, 1]}, ((0, 1), (1, 1))),
    ({"pads": [1, 0, 0, 1], "count_include_pad": 1}, ((1, 0), (0, 1))),
    ({"pads": [1, 0, 0, 1]}, ((1, 0), (0, 1))),
])
def test_average_pool_counts_the_padding_only_when_asked(tmp_path, attrs, pads):
    """count_include_pad=0 (the default): each window's mean over the input's own elements, also
    where the padding is uneven (it was concatenated zeros, which were counted)."""
    x = np.random.default_rng(1).normal(size=(1, 2, 4, 5)).astype(np.float32)
    path = _one_op(tmp_path, "AveragePool", x.shape, kernel_shape=[2, 2], strides=[2, 2], **attrs)
    from tests.helpers.pooling import average_pool

    expected = average_pool(x, 2, 2, pads, bool(attrs.get("count_include_pad", 0)))
    np.testing.assert_allclose(_forward(path, x), expected, rtol=1e-5, atol=1e-6)


def test_prelu_slope_broadcasts_from_the_last_axis(tmp_path):
    """A slope of shape (C,) on (N, C, H, W) is one per column W (ONNX broadcasts from the back), not
    one per channel: refused; (C, 1, 1) is one per channel, read."""
    x = np.random.default_rng(2).normal(size=(1, 4, 3, 4)).astype(np.float32)
    slope = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    with pytest.raises(ModscopeError, match="neither one number nor one per channel") as info:
        _forward(_one_op(tmp_path, "PRelu", x.shape, ["s"], [_array("s", slope, np.float32)]), x)
    assert "\n" not in str(info.value)
    per_channel = slope.reshape(4, 1, 1)
    y = _forward(_one_op(tmp_path, "PRelu", x.shape, ["s"], [_array("s", per_channel, np.float32)]), x)
    np.testing.assert_allclose(y, np.where(x < 0, x * per_channel, x), rtol=1e-6)


def test_resize_linear_follows_its_coordinate_mode(tmp_path):
    """align_corners maps the corner pixels onto each other (torch's align_corners=True); it was read
    as half_pixel."""
    import torch

    scales = [_array("scales", [1, 1, 2, 2], np.float32)]
    for where, corners in (("align_corners", True), ("half_pixel", False)):
        path = _one_op(tmp_path, "Resize", X.shape, ["", "scales"], scales, mode="linear",
                       coordinate_transformation_mode=where)
        expected = torch.nn.functional.interpolate(torch.from_numpy(X), scale_factor=2, mode="bilinear",
                                                   align_corners=corners)
        np.testing.assert_allclose(_forward(path, X), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("op", "shape", "inputs", "inits", "opset", "attrs", "says"), [
    # ONNX's default (half_pixel, round_prefer_floor) down by 4 picks element 4i + 1; torch's 4i
    ("Resize", (1, 3, 8, 8), ["", "scales"], [_array("scales", [1, 1, 0.25, 0.25], np.float32)], 17, {},
     "nearest resizing"),
    ("Resize", X.shape, ["", "scales"], [_array("scales", [1, 1, 3, 3], np.float32)], 17,
     {"coordinate_transformation_mode": "asymmetric"}, "nearest resizing"),  # round(i / 3), not floor
    ("Resize", X.shape, ["", "scales"], [_array("scales", [1, 1, 2, 2], np.float32)], 18,
     {"mode": "linear", "antialias": 1}, "antialias"),
    ("Resize", X.shape, ["", "scales"], [_array("scales", [1, 1, 2, 2], np.float32)], 17,
     {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, "asymmetric coordinates"),
    ("Resize", X.shape, ["", "scales"], [_array("scales", [1, 1, 0.5, 1.5], np.float32)], 17,
     {"mode": "linear"}, "not whole numbers"),  # 5 * 1.5: ONNX maps by 1.5, torch by 7 / 5
    ("Upsample", X.shape, [], [], 8, {"mode": "linear", "scales": [1.0, 1.0, 2.0, 2.0]}, "asymmetric"),
    ("Dropout", X.shape, ["", "t"], [_array("t", True, np.bool_)], 13, {}, "training mode"),
    ("BatchNormalization", (1, 3, 2, 2), ["s", "b", "m", "v"],
     [_array(n, np.ones((3, 2, 2)), np.float32) for n in "sbmv"], 7, {"spatial": 0}, "spatial=0"),
])
def test_attributes_that_change_the_function_are_refused(tmp_path, op, shape, inputs, inits, opset, attrs,
                                                         says):
    with pytest.raises(ModscopeError, match=says) as info:
        _forward(_one_op(tmp_path, op, shape, inputs, inits, opset=opset, **attrs),
                 np.zeros(shape, np.float32))
    assert "\n" not in str(info.value) and "node op" in str(info.value)


def test_gru_with_the_reset_gate_before_the_recurrent_weights_is_refused(tmp_path):
    """ONNX's default GRU (linear_before_reset=0) resets the state before its recurrent product;
    torch's GRU (linear_before_reset=1) after it: the default was read as torch's."""
    rng = np.random.default_rng(3)
    w, r = rng.normal(size=(1, 6, 3)), rng.normal(size=(1, 6, 2))
    inits = [_array("w", w, np.float32), _array("r", r, np.float32)]
    x = rng.normal(size=(4, 1, 3)).astype(np.float32)
    path = _one_op(tmp_path, "GRU", x.shape, ["w", "r"], inits, hidden_size=2)
    with pytest.raises(ModscopeError, match="linear_before_reset=0") as info:
        _forward(path, x)
    assert "\n" not in str(info.value)
    # linear_before_reset=1 is torch's GRU: read (ONNX gates z, r, h; h = tanh(Wx + r * (R h)))
    path = _one_op(tmp_path, "GRU", x.shape, ["w", "r"], inits, hidden_size=2, linear_before_reset=1)
    h, sig = np.zeros(2), lambda v: 1 / (1 + np.exp(-v))
    for t in range(4):
        (wz, wr, wh), (rz, rr, rh) = np.split(w[0], 3), np.split(r[0], 3)
        z, g = sig(wz @ x[t, 0] + rz @ h), sig(wr @ x[t, 0] + rr @ h)
        h = (1 - z) * np.tanh(wh @ x[t, 0] + g * (rh @ h)) + z * h
    y = _forward(path, x)
    np.testing.assert_allclose(y[-1, 0, 0], h, rtol=1e-5, atol=1e-6)
