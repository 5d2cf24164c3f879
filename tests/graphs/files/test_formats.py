"""Files from other tools: .pt2 and TorchScript archives, ONNX models and Keras files.

Each fixture in tests/data/formats (made by make_fixtures.py there, with the real libraries) must
give the graph traced from the torch original it was made from (for Keras: a torch module written
out by hand with the converted weights), and no reader may run code from the file.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from modscope import load_graph
from modscope.cli import main
from modscope.errors import ModscopeError
from modscope.graphs.files.archives import archive_kind, read_pt2, read_torchscript
from tests.helpers.paths import FIXTURES

DATA = FIXTURES / "formats"

# fixture -> (expected graph, words of its reading, the optional package it needs)
CASES = {
    "rescnn.pt2": ("rescnn", "torch.export archive (.pt2)", None),
    "lstm.pt2": ("lstm", "torch.export archive (.pt2)", None),
    "zoo.pt2": ("zoo", "torch.export archive (.pt2)", None),
    "mlp_script.pt": ("mlp", "TorchScript archive", None),
    "rescnn_dynamo.onnx": ("rescnn", "ONNX model", "onnx"),
    "rescnn_legacy.onnx": ("rescnn", "ONNX model", "onnx"),
    "lstm_dynamo.onnx": ("lstm", "ONNX model", "onnx"),
    "lstm_legacy.onnx": ("lstm", "ONNX model", "onnx"),
    "zoo_dynamo.onnx": ("zoo", "ONNX model", "onnx"),
    "zoo_legacy.onnx": ("zoo", "ONNX model", "onnx"),
    "mlp_external.onnx": ("mlp", "ONNX model", "onnx"),
    "keras_mlp.h5": ("keras_mlp", "Keras HDF5 model", "h5py"),
    "keras_mlp.keras": ("keras_mlp", "Keras .keras model", "h5py"),
    "keras_mlp_weights.h5": ("keras_mlp", "weights-only Keras file", "h5py"),
    "keras_cnn.h5": ("keras_cnn", "Keras HDF5 model", "h5py"),
    "keras_lstm.h5": ("keras_lstm", "Keras HDF5 model", "h5py"),
    "keras_gru.h5": ("keras_gru", "Keras HDF5 model", "h5py"),
}


def _param(*values):
    """A parametrize case marked with the extra its last value names (skipped without it)."""
    needs = values[-1]
    return pytest.param(*values, marks=getattr(pytest.mark, needs) if needs else (), id=values[0])


def _expected(name: str) -> dict:
    with np.load(DATA / f"{name}.expected.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _assert_graph(graph, name: str) -> None:
    e = _expected(name)
    assert graph.sizes == tuple(e["sizes"].tolist())
    assert graph.links == tuple(map(tuple, e["links"].tolist()))
    assert graph.names == tuple(e["names"].tolist())
    for i, w in enumerate(graph.weights):
        np.testing.assert_allclose(w, e[f"w{i}"], rtol=1e-6, atol=0)


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("fixture, needs", [_param(f, needs) for f, (_, _, needs) in CASES.items()])
def test_fixture_gives_the_graph_of_its_torch_original(fixture, needs):
    expected, reading, _ = CASES[fixture]
    graph = load_graph(DATA / fixture)
    _assert_graph(graph, expected)
    assert reading in graph.reading


# -- .pt2 -------------------------------------------------------------------------------------------
def _edit_pt2(src: Path, dst: Path, edit) -> Path:
    """A copy of a .pt2 archive with ``edit(name, bytes) -> bytes`` applied to every entry."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, edit(info.filename, zin.read(info.filename)))
    return dst


def _edit_json(suffix: str, change):
    def edit(name: str, data: bytes) -> bytes:
        if not name.endswith(suffix):
            return data
        obj = json.loads(data)
        change(obj)
        return json.dumps(obj).encode()

    return edit


def test_pt2_sniffed_by_content_and_guards_code_dropped(tmp_path):
    assert archive_kind(DATA / "lstm.pt2") == "pt2"
    assert archive_kind(DATA / "mlp_script.pt") == "torchscript"
    copy = shutil.copy(DATA / "lstm.pt2", tmp_path / "lstm.pt")  # a .pt that is a .pt2 archive
    _assert_graph(load_graph(copy), "lstm")
    evil = "__import__('pathlib').Path('marker').touch()"
    path = _edit_pt2(
        DATA / "lstm.pt2",
        tmp_path / "guards.pt2",
        _edit_json("models/model.json", lambda o: o.update(guards_code=[evil])),
    )
    assert not read_pt2(path)._guards_code


@pytest.mark.parametrize(
    "where, change, message",
    [
        (
            "model_weights_config.json",
            lambda o: next(iter(o["config"].values())).update(use_pickle=True),
            "use_pickle",
        ),
        (
            "model_constants_config.json",
            lambda o: o["config"].update(
                obj={"path_name": "custom_obj_0", "is_param": False, "use_pickle": True}
            ),
            "pickled Python or TorchScript object",
        ),
        (
            "models/model.json",
            lambda o: o["graph_module"]["graph"]["nodes"][0].update(target="torch.load"),
            "not an ATen op",
        ),
        (
            "models/model.json",
            lambda o: o["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0].update(
                {"as_expr": {"expr_str": "__import__('os').getcwd()"}}
            ),
            "refused symbolic expression",
        ),
        (
            "model_weights_config.json",
            lambda o: next(iter(o["config"].values()))["tensor_meta"]["strides"][0].update(as_int=10**6),
            "past the end of its storage",
        ),
    ],
    ids=["pickled-weight", "pickled-constant", "foreign-op", "code-in-a-size", "out-of-bounds-strides"],
)
def test_pt2_refuses_what_would_run_code(tmp_path, where, change, message):
    path = _edit_pt2(DATA / "lstm.pt2", tmp_path / "bad.pt2", _edit_json(where, change))
    with pytest.raises(ModscopeError, match=message) as info:
        load_graph(path)
    _one_line(info)


def test_pt2_malformed_numbers_are_one_line(tmp_path):
    """A dtype code that is a JSON list, and an integer of more digits than Python converts, were
    internal errors (TypeError, ValueError) instead of refusals."""

    def huge(name: str, data: bytes) -> bytes:
        big = b'{"x": ' + b"1" * 5000 + b", "
        return data.replace(b"{", big, 1) if name.endswith("models/model.json") else data

    def list_dtype(o: dict) -> None:
        next(iter(o["config"].values()))["tensor_meta"]["dtype"] = [7]

    dtype = _edit_json("model_weights_config.json", list_dtype)
    for edit, message in [(huge, "is not valid JSON"), (dtype, "unsupported tensor dtype")]:
        with pytest.raises(ModscopeError, match=message) as info:
            load_graph(_edit_pt2(DATA / "lstm.pt2", tmp_path / "bad.pt2", edit))
        _one_line(info)


def test_pt2_with_a_symbolic_batch_size(tmp_path):
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    program = torch.export.export(net, (torch.randn(2, 3),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, tmp_path / "dynamic.pt2")
    graph = load_graph(tmp_path / "dynamic.pt2")
    assert graph.layer_widths == (3, 4, 2)
    np.testing.assert_array_equal(graph.weights[0], net[0].weight.detach().double().numpy())


def test_pt2_refuses_a_value_name_that_is_not_an_identifier(tmp_path):
    evil = json.dumps("select = __import__('os').getcwd() or select_")

    def edit(name: str, data: bytes) -> bytes:
        return data.replace(b'"select"', evil.encode()) if name.endswith("models/model.json") else data

    with pytest.raises(ModscopeError, match="not identifiers") as info:
        load_graph(_edit_pt2(DATA / "lstm.pt2", tmp_path / "names.pt2", edit))
    _one_line(info)


# -- TorchScript ------------------------------------------------------------------------------------
@torch.library.custom_op("modscope_test::leave_mark", mutates_args=())
def _leave_mark(x: torch.Tensor) -> torch.Tensor:
    Path(_MARK["path"]).write_text("the archive's code ran")
    return x.clone()


_MARK = {"path": ""}


class _Trap(nn.Module):
    """A module whose TorchScript ``__setstate__`` leaves a mark when it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.ones(1)

    def forward(self, x):
        return x * self.w

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        self.w = torch.ops.modscope_test.leave_mark(state[0])
        self.training = state[1]


class _Baited(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.trap, self.fc2 = nn.Linear(4, 3), _Trap(), nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(self.trap(torch.relu(self.fc1(x))))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_weights_are_read_without_running_its_code(tmp_path):
    _MARK["path"] = str(tmp_path / "mark")
    net = _Baited()
    path = tmp_path / "baited.pth"  # TorchScript under a state-dict suffix: sniffed by content
    torch.jit.script(net).save(path)
    tensors = read_torchscript(path)
    assert list(tensors) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    np.testing.assert_array_equal(tensors["fc1.weight"], net.fc1.weight.detach().numpy())
    graph = load_graph(path)
    assert graph.layer_widths == (4, 3, 2) and "TorchScript archive" in graph.reading
    assert not Path(_MARK["path"]).exists()
    with pytest.warns(DeprecationWarning):
        torch.jit.load(path)  # torch's own loader does run it: the bait is real
    assert Path(_MARK["path"]).exists()


def test_torchscript_without_code_refuses_what_needs_it():
    with pytest.raises(ModscopeError, match="recurrent weights") as info:
        load_graph(DATA / "lstm_script.pt")
    assert ".pt2" in _one_line(info)


def test_whole_pickled_module_names_trust_pickle(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(nn.Sequential(nn.Linear(3, 2)), path)
    with pytest.raises(ModscopeError, match="--trust-pickle") as info:
        load_graph(path)
    assert "runs the file's code" in _one_line(info)


# -- ONNX -------------------------------------------------------------------------------------------
@pytest.mark.onnx
@pytest.mark.parametrize("location", ["../mlp_external.onnx.data", "/etc/passwd", "link.data"])
def test_onnx_external_data_outside_the_folder_is_refused(tmp_path, location):
    import onnx
    model = onnx.load(str(DATA / "mlp_external.onnx"), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
    sub = tmp_path / "model"
    sub.mkdir()
    shutil.copy(DATA / "mlp_external.onnx.data", tmp_path / "mlp_external.onnx.data")
    (sub / "link.data").symlink_to(tmp_path / "mlp_external.onnx.data")
    (sub / "m.onnx").write_bytes(model.SerializeToString())
    with pytest.raises(ModscopeError, match="external data") as info:
        load_graph(sub / "m.onnx")
    _one_line(info)


@pytest.mark.onnx
def test_onnx_unknown_op_is_named(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Hardmax", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "h.onnx")
    with pytest.raises(ModscopeError, match="ONNX op Hardmax") as info:
        load_graph(tmp_path / "h.onnx")
    _one_line(info)


@pytest.mark.parametrize("package, extra", [("onnx", "onnx"), ("h5py", "keras")])
def test_missing_optional_package_says_what_to_install(monkeypatch, package, extra):
    monkeypatch.setitem(__import__("sys").modules, package, None)
    source = DATA / ("mlp_external.onnx" if package == "onnx" else "keras_mlp.h5")
    with pytest.raises(ModscopeError, match=rf"pip install modscope\[{extra}\]") as info:
        load_graph(source)
    _one_line(info)


# -- Keras ------------------------------------------------------------------------------------------
@pytest.mark.h5py
def test_keras_module_reproduces_keras_output():
    from modscope.graphs.files.keras_h5 import keras_module, read_keras

    module, _, _ = keras_module(read_keras(DATA / "keras_zoo.h5"))
    with np.load(DATA / "keras_zoo.io.npz") as io:
        x, y = io["x"], io["y"]
    with torch.no_grad():
        out = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, y, atol=1e-5)


def _keras_relu(x: np.ndarray, max_value=None, negative_slope=0.0, threshold=0.0) -> np.ndarray:
    """Keras's ReLU by its definition: ``max_value`` from there up, ``x`` from ``threshold``,
    ``negative_slope * (x - threshold)`` below."""
    y = np.where(x >= threshold, x, negative_slope * (x - threshold))
    return y if max_value is None else np.where(x >= max_value, max_value, y)


@pytest.mark.h5py
@pytest.mark.parametrize("options", [{}, {"max_value": 0.3}, {"negative_slope": 0.1},
                                     {"max_value": 0.4, "negative_slope": 0.2, "threshold": 0.05}])
def test_keras_relu_layer_follows_its_config(tmp_path, options):
    """A ReLU layer's max_value (ReLU6), negative_slope and threshold act in the forward (they were
    dropped: a capped ReLU ran as a plain one)."""

    def edit(config: dict) -> None:
        layers = config["config"]["layers"]
        layers[1]["config"]["activation"] = "linear"  # d1, then its activation as a layer
        layers.insert(2, {"class_name": "ReLU", "config": {"name": "act", **options}})

    path = _keras_edited(tmp_path, "keras_mlp.h5", edit)
    _assert_mlp_forward(path, lambda h: _keras_relu(h, **options))
    assert tuple(load_graph(path).sizes) == (6, 5, 4, 3)  # the activation adds no units


def _keras_edited(tmp_path: Path, fixture: str, edit, version: str | None = "3.15.1") -> Path:
    """A copy of the Keras ``fixture`` whose model config ``edit`` changed in place, written by Keras
    ``version`` (None: the file does not say)."""
    import h5py

    path = tmp_path / fixture
    shutil.copy(DATA / fixture, path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
        if version is None:
            del f.attrs["keras_version"]
        else:
            f.attrs["keras_version"] = version
    return path


def _assert_mlp_forward(path: Path, act) -> None:
    """The module read from an edited keras_mlp.h5 computes d3(relu(d2(act(d1 x)))), with d1 linear."""
    from modscope.graphs.files.keras_h5 import keras_module, read_keras

    module, _, _ = keras_module(read_keras(path))
    w = {k: v.double().numpy() for k, v in module.state_dict().items()}
    x = np.random.default_rng(0).normal(size=(64, 6)) * 3
    h = act(x @ w["d1.weight"].T + w["d1.bias"])
    h = np.maximum(h @ w["d2.weight"].T + w["d2.bias"], 0.0)
    expected = h @ w["d3.weight"].T + w["d3.bias"]
    with torch.no_grad():
        out = module(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def _layer(config: dict, name: str) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == name)


@pytest.mark.h5py
@pytest.mark.parametrize(("given", "act"), [
    ({"class_name": "ELU", "config": {"name": "elu", "alpha": 0.5}},
     lambda h: np.where(h > 0, h, 0.5 * np.expm1(h))),
    ({"class_name": "ReLU", "config": {"name": "relu", "max_value": 0.3}}, lambda h: np.clip(h, 0.0, 0.3)),
    ({"module": "keras.activations", "class_name": "function", "config": "tanh"}, np.tanh),
])
def test_keras_activation_given_as_a_layer_or_a_function_is_read(tmp_path, given, act):
    """activation=ELU(alpha=0.5) was read as elu by the layer's name (alpha 1); a serialised function
    ({"class_name": "function", "config": "tanh"}) was refused as malformed."""
    _assert_mlp_forward(_keras_edited(tmp_path, "keras_mlp.h5", _set("d1", activation=given)), act)


@pytest.mark.h5py
@pytest.mark.parametrize(("version", "act"), [
    ("2.15.0", lambda h: np.clip(0.2 * h + 0.5, 0.0, 1.0)),  # Keras 2's
    ("3.15.1", lambda h: np.clip(h / 6 + 0.5, 0.0, 1.0)),  # Keras 3's
])
def test_keras_hard_sigmoid_is_the_one_of_the_keras_that_wrote_the_file(tmp_path, version, act):
    def edit(config: dict) -> None:
        _layer(config, "d1")["config"]["activation"] = "hard_sigmoid"

    _assert_mlp_forward(_keras_edited(tmp_path, "keras_mlp.h5", edit, version), act)
    with pytest.raises(ModscopeError, match="does not say which Keras") as info:
        load_graph(_keras_edited(tmp_path, "keras_mlp.h5", edit, None))
    _one_line(info)


@pytest.mark.h5py
@pytest.mark.parametrize(("pool", "pads"), [(2, ((0, 1), (0, 1))), (3, ((1, 1), (1, 1)))])
def test_keras_average_pooling_same_does_not_count_the_padding(tmp_path, pool, pads):
    """TensorFlow's "same" average: each window's mean over the input's own elements (the uneven
    padding, concatenated zeros, was counted)."""
    from modscope.graphs.files.keras_h5 import keras_module, read_keras
    from tests.helpers.pooling import average_pool

    def edit(config: dict) -> None:
        config["config"]["layers"] = [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 5, 5, 2]}},
            {"class_name": "AveragePooling2D",
             "config": {"name": "ap", "pool_size": [pool, pool], "strides": [2, 2], "padding": "same"}},
        ]

    module, _, _ = keras_module(read_keras(_keras_edited(tmp_path, "keras_mlp.h5", edit)))
    x = np.random.default_rng(4).normal(size=(1, 5, 5, 2)).astype(np.float32)
    with torch.no_grad():
        out = module(torch.from_numpy(x)).numpy()
    expected = average_pool(x.transpose(0, 3, 1, 2), pool, 2, pads, False).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def _set(name: str, **values):
    return lambda config: _layer(config, name)["config"].update(values)


def _insert(after: str, layer: dict):
    def edit(config: dict) -> None:
        layers = config["config"]["layers"]
        layers.insert(layers.index(_layer(config, after)) + 1, layer)

    return edit


def _bidirectional(part: str, **values):
    return lambda config: _layer(config, "bi")["config"][part]["config"].update(values)


def _initial_state(config: dict) -> None:  # bi(x, initial_state=[c1b's output])
    ref = {"class_name": "__keras_tensor__", "config": {"keras_history": ["c1b", 0, 0]}}
    _layer(config, "bi")["inbound_nodes"][0]["kwargs"]["initial_state"] = [ref]


@pytest.mark.h5py
def test_keras_dense_with_weights_beyond_its_kernel_and_bias_is_refused(tmp_path):
    """LoRA factors (or quantization scales) stored beside a Dense kernel were dropped: the kernel
    alone is another function."""
    import h5py

    path = _keras_edited(tmp_path, "keras_mlp.h5", _set("d1", lora_rank=2))
    with h5py.File(path, "r+") as f:
        group = f["model_weights/d1"]
        group["sequential/d1/lora_kernel_a"] = np.ones((6, 2), np.float32)
        group.attrs["weight_names"] = [*group.attrs["weight_names"], "sequential/d1/lora_kernel_a"]
    with pytest.raises(ModscopeError, match="holds 3 weights, not 2") as info:
        load_graph(path)
    _one_line(info)


@pytest.mark.h5py
@pytest.mark.parametrize(("fixture", "edit", "says"), [
    ("keras_lstm.h5", _set("rnn", recurrent_activation="hard_sigmoid"), "recurrent_activation=hard_sigmoid"),
    ("keras_lstm.h5", _set("rnn", activation="relu"), "activation=relu"),
    ("keras_lstm.h5", _set("rnn", time_major=True), "time_major"),
    ("keras_gru.h5", _set("rnn", reset_after=False), "reset_after=False"),
    ("keras_lstm.h5", _insert("input_layer_2", {"class_name": "Embedding", "config": {
        "name": "emb", "input_dim": 4, "output_dim": 3, "mask_zero": True}}), "mask_zero"),
    ("keras_mlp.h5", _insert("d1", {"class_name": "LayerNormalization", "config": {
        "name": "ln", "rms_scaling": True, "center": False, "scale": False}}), "rms_scaling"),
    ("keras_mlp.h5", _insert("d3", {"class_name": "Softmax", "config": {"name": "sm", "axis": [-2, -1]}}),
     "several axes"),
    ("keras_mlp.h5", _set("d1", dtype={"class_name": "QuantizedDTypePolicy",
                                       "config": {"name": "int8_from_float32"}}), "quantized"),
    ("keras_mlp.h5", _set("d1", activation={"class_name": "PReLU", "config": {"name": "p"}}), "PReLU"),
    ("keras_zoo.h5", lambda c: _layer(c, "bi")["config"].update(merge_mode=None), "merge_mode=None"),
    ("keras_zoo.h5", _bidirectional("layer", go_backwards=True), "runs backwards"),
    ("keras_zoo.h5", _bidirectional("backward_layer", activation="relu"), "activation=relu"),
    ("keras_zoo.h5", _initial_state, "more than one tensor"),
    ("keras_zoo.h5", lambda c: _layer(c, "bn")["inbound_nodes"][0]["kwargs"].update(training=True),
     "training=True"),
])
def test_keras_config_that_changes_the_function_is_refused(tmp_path, fixture, edit, says):
    """Each of these was read as something else (a GRU reset before its recurrent kernel as torch's,
    an initial state or a mask dropped, several softmax axes as the first, int8 weights as floats, a
    batch normalisation called with training=True by its moving statistics)."""
    with pytest.raises(ModscopeError, match=says) as info:
        load_graph(_keras_edited(tmp_path, fixture, edit))
    _one_line(info)


@pytest.mark.h5py
def test_keras_dense_stack_is_the_chain_of_its_transposed_kernels():
    import h5py
    kernels = {}
    with h5py.File(DATA / "keras_mlp.h5") as f:
        for n in ("d1", "d2", "d3"):
            group = f[f"model_weights/{n}"]
            name = next(w for w in group.attrs["weight_names"] if str(w).rstrip("'").endswith("kernel"))
            kernels[f"{n}.weight"] = np.asarray(group[name]).T  # torch's (out, in)
    for source in ("keras_mlp.h5", "keras_mlp_weights.h5"):
        graph, chain = load_graph(DATA / source), load_graph(kernels)
        assert graph.is_chain and graph.sizes == chain.sizes and graph.links == chain.links
        for a, b in zip(graph.weights, chain.weights, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.h5py
def test_keras_old_sequential_config_without_an_input_shape(tmp_path):
    """An old Sequential config (the list of its layers) whose first layer declares no input shape
    reads its input size off the first Dense kernel (it was an AttributeError)."""
    import h5py

    path = tmp_path / "old.h5"
    shutil.copy(DATA / "keras_mlp.h5", path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layers = [x for x in config["config"]["layers"] if x["class_name"] == "Dense"]
        for layer in layers:
            layer["config"].pop("batch_input_shape", None)
            layer["config"].pop("batch_shape", None)
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers})
    graph, expected = load_graph(path), load_graph(DATA / "keras_mlp.h5")
    assert graph.sizes == expected.sizes == (6, 5, 4, 3)
    for a, b in zip(graph.weights, expected.weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.h5py
def test_keras_weights_only_cnn_is_refused_with_the_way_out():
    with pytest.raises(ModscopeError, match="save the full model") as info:
        load_graph(DATA / "keras_cnn_weights.h5")
    _one_line(info)


def test_keras_style_npz_is_read_in_x_out(tmp_path):
    rng = np.random.default_rng(0)
    shapes = [(6, 5), (5, 4), (4, 3)]  # (in, out): only that layout chains
    np.savez(tmp_path / "k.npz", **{f"dense_{i}/kernel": rng.normal(size=s) for i, s in enumerate(shapes)})
    graph = load_graph(tmp_path / "k.npz")
    assert graph.layer_widths == (6, 5, 4, 3) and "in x out" in graph.reading


# -- broken files and the command line --------------------------------------------------------------
@pytest.mark.parametrize(
    "fixture, needs",
    [
        _param("rescnn.pt2", None),
        _param("mlp_script.pt", None),
        _param("rescnn_legacy.onnx", "onnx"),
        _param("keras_mlp.h5", "h5py"),
        _param("keras_mlp.keras", "h5py"),
    ],
)
def test_truncated_files_give_one_line(tmp_path, fixture, needs):
    data = (DATA / fixture).read_bytes()
    path = tmp_path / fixture
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModscopeError, match="truncated or corrupt") as info:
        load_graph(path)
    _one_line(info)


@pytest.mark.parametrize(
    "fixture, needs",
    [_param("lstm.pt2", None), _param("mlp_script.pt", None), _param("rescnn_legacy.onnx", "onnx"),
     _param("keras_mlp.h5", "h5py")],
)
def test_cli_scores_each_format(fixture, needs, capsys):
    args = ["score", str(DATA / fixture), "--clusters", "2", "--shuffles", "3", "--no-progress"]
    assert main(args) == 0
    assert "n-cut" in capsys.readouterr().out.lower()


def test_cli_bad_file_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.pt2"
    path.write_bytes((DATA / "lstm.pt2").read_bytes()[:1000])
    assert main(["score", str(path), "--clusters", "2", "--shuffles", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modscope: error:") and err.count("\n") == 1


def test_a_shared_buffer_missing_under_its_second_name_is_ignored_as_a_buffer():
    """A buffer tensor registered under two names: a file lacking the second name is a buffer key
    ignored, not a missing parameter (torch lists a shared buffer once unless asked for every name)."""
    from modscope.graphs.files.user_model import load_weights_into

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)
            table = torch.arange(4.0)
            self.a.register_buffer("table", table)
            self.b.register_buffer("table", table)

    state = {k: v for k, v in Shared().state_dict().items() if k != "b.table"}
    assert load_weights_into(Shared(), state) == ["buffer keys ignored: b.table"]
