"""Make the tiny format fixtures of tests/graphs/files/test_formats.py, and the graph each must give.

Runs in a virtual environment with torch (2.13), onnx and onnxscript, keras 3 (torch backend) and
h5py, with modscope importable (``PYTHONPATH=<repo>``)::

    PYTHONPATH=. /path/to/venv/bin/python tests/data/formats/make_fixtures.py

Every fixture is made from a torch module (or, for Keras, a Keras model); the expected graph
(``<name>.expected.npz``: group sizes, links, block weights and names) is traced from the torch
original with modscope's tracer, or for Keras from a torch module written out by hand with the
Keras weights converted to torch's layouts, so the readers are checked against an independent
reading of the same network.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
# a torchvision wheel built for another torch breaks `import keras`; its ops are not needed here
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from modscope.graphs.tracing import trace_graph  # noqa: E402

HERE = Path(__file__).resolve().parent
warnings.filterwarnings("ignore")


def save_expected(name: str, graph) -> None:
    """The graph's groups, links, blocks and names, in an .npz without pickles."""
    arrays = {
        "sizes": np.asarray(graph.sizes, dtype=np.int64),
        "links": np.asarray(graph.links, dtype=np.int64).reshape(-1, 2),
        "names": np.asarray(graph.names, dtype=str),
        "group_names": np.asarray(graph.group_names, dtype=str),
    }
    for i, w in enumerate(graph.weights):
        arrays[f"w{i}"] = np.asarray(w, dtype=np.float64)
    np.savez_compressed(HERE / f"{name}.expected.npz", **arrays)


def randomise_bn(bn: nn.Module, gen: torch.Generator) -> None:
    """Running statistics and affine parameters away from their defaults (1, 0), so a reader that
    folded the wrong one, or an exporter that deduplicated equal tensors, shows."""
    with torch.no_grad():
        bn.weight.copy_(torch.rand(bn.weight.shape, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen) * 0.1)
        bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=gen) * 0.1)
        bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=gen) + 0.5)


# -- torch originals -----------------------------------------------------------------------------------
class ResCNN(nn.Module):
    """conv-bn-relu stem, one residual block, max pool, a channel-last flatten into a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 3 * 3, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, x):  # (1, 2, 6, 6)
        y = torch.relu(self.bn(self.stem(x)))
        y = y + torch.relu(self.bn1(self.conv(y)))
        y = F.max_pool2d(y, 2)
        y = y.permute(0, 2, 3, 1).flatten(1)  # channels last, as Keras flattens
        return self.out(torch.relu(self.head(y)))


class LSTMNet(nn.Module):
    """An LSTM read at its last step by a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):  # (1, 5, 3)
        o, _ = self.lstm(x)
        return self.fc(o[:, -1])


class Zoo(nn.Module):
    """More ONNX ops: a grouped Conv1d, PReLU, a BatchNorm not fused into the conv, split and concat,
    a bidirectional GRU, LayerNorm, a Linear on a sequence (MatMul + Add), GELU, a slice, a mean,
    and a branch from the input joined by an add."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1, groups=2)
        self.prelu = nn.PReLU(6)
        self.bn = nn.BatchNorm1d(6)
        self.gru = nn.GRU(6, 5, batch_first=True, bidirectional=True)
        self.ln = nn.LayerNorm(10)
        self.proj = nn.Linear(10, 8)
        self.head = nn.Linear(8, 3)
        self.skip = nn.Linear(4, 3)

    def forward(self, x):  # (1, 4, 7)
        y = self.bn(self.prelu(self.conv(x)))
        a, b = y.chunk(2, dim=1)
        o, _ = self.gru(torch.cat([b, a], 1).transpose(1, 2))
        o = F.gelu(self.proj(self.ln(o)))[:, 1:]
        return torch.softmax(self.head(o.mean(1)) + self.skip(x.mean(2)), -1)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.fc2 = nn.Linear(5, 4)
        self.fc3 = nn.Linear(4, 3)

    def forward(self, x):  # (1, 6)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def torch_fixtures() -> None:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    cnn = ResCNN().eval()
    randomise_bn(cnn.bn, gen)
    randomise_bn(cnn.bn1, gen)
    lstm, mlp, zoo = LSTMNet().eval(), MLP().eval(), Zoo().eval()
    randomise_bn(zoo.bn, gen)
    with torch.no_grad():
        zoo.ln.weight.uniform_(0.5, 1.5, generator=gen)
        zoo.prelu.weight.uniform_(0.1, 0.3, generator=gen)
    examples = {"rescnn": (cnn, torch.randn(1, 2, 6, 6)), "lstm": (lstm, torch.randn(1, 5, 3))}
    examples["zoo"] = (zoo, torch.randn(1, 4, 7))
    examples["mlp"] = (mlp, torch.randn(1, 6))
    for name, (module, x) in examples.items():
        save_expected(name, trace_graph(module, x))
        if name != "mlp":
            torch.export.save(torch.export.export(module, (x,)), HERE / f"{name}.pt2")
            torch.onnx.export(module, (x,), HERE / f"{name}_dynamo.onnx", dynamo=True, external_data=False)
            torch.onnx.export(module, (x,), HERE / f"{name}_legacy.onnx", dynamo=False, opset_version=17)
    torch.jit.script(mlp).save(HERE / "mlp_script.pt")
    torch.jit.trace(cnn, examples["rescnn"][1]).save(HERE / "rescnn_traced.pt")
    torch.jit.script(lstm).save(HERE / "lstm_script.pt")
    # one model with its initializers in a side file (the dynamo exporter's default)
    import onnx

    torch.onnx.export(
        mlp, (examples["mlp"][1],), HERE / "mlp_external.onnx", dynamo=True, external_data=False
    )
    model = onnx.load(HERE / "mlp_external.onnx")
    onnx.save_model(
        model,
        HERE / "mlp_external.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="mlp_external.onnx.data",
        size_threshold=0,
    )


# -- Keras models, and torch modules written out by hand with their weights ---------------------------
def keras_fixtures() -> None:
    import h5py
    import keras
    from keras import layers as L
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(0)

    def weights(model, name):
        return [np.asarray(keras.ops.convert_to_numpy(w)) for w in model.get_layer(name).weights]

    def param(t: np.ndarray) -> nn.Parameter:
        return nn.Parameter(torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)))

    def linear(kernel_bias) -> nn.Linear:
        k, b = kernel_bias
        lin = nn.Linear(*k.shape)
        lin.weight, lin.bias = param(k.T), param(b)
        return lin

    def save_weights_only(model, path) -> None:  # Keras 2's save_weights layout: layer groups at the root
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)

    # a Sequential MLP, as the Filan et al. reference models
    mlp = keras.Sequential(
        [
            keras.Input((6,)),
            L.Dense(5, activation="relu", name="d1"),
            L.Dense(4, activation="relu", name="d2"),
            L.Dense(3, name="d3"),
        ]
    )
    mlp.save(HERE / "keras_mlp.h5")
    mlp.save(HERE / "keras_mlp.keras")
    save_weights_only(mlp, HERE / "keras_mlp_weights.h5")

    class TorchMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.d1, self.d2, self.d3 = (linear(weights(mlp, n)) for n in ("d1", "d2", "d3"))

        def forward(self, x):
            return self.d3(torch.relu(self.d2(torch.relu(self.d1(x)))))

    save_expected("keras_mlp", trace_graph(TorchMLP().eval(), torch.zeros(1, 6)))

    # a functional residual CNN: conv, BatchNorm, residual add, pooling, channels-last Flatten
    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Activation("relu", name="relu")(x)
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv_b")(x)
    y = L.Add(name="add")([x, y])
    y = L.MaxPooling2D(2, name="pool")(y)
    y = L.Flatten(name="flatten")(y)
    y = L.Dropout(0.5, name="drop")(y)
    out = L.Dense(3, activation="softmax", name="head")(y)
    cnn = keras.Model(inp, out)
    bn = cnn.get_layer("bn")
    rng = np.random.default_rng(0)
    bn.set_weights(
        [rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, 4), rng.normal(0, 0.1, 4), rng.uniform(0.5, 1.5, 4)]
    )
    cnn.save(HERE / "keras_cnn.h5")
    save_weights_only(cnn, HERE / "keras_cnn_weights.h5")

    class TorchCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()

            def conv(name):
                k, b = weights(cnn, name)
                c = nn.Conv2d(k.shape[2], k.shape[3], k.shape[:2], padding=1)
                c.weight, c.bias = param(k.transpose(3, 2, 0, 1)), param(b)
                return c

            self.conv, self.conv_b = conv("conv"), conv("conv_b")
            g, b, m, v = weights(cnn, "bn")
            self.bn = nn.BatchNorm2d(4, eps=1e-3)
            self.bn.weight, self.bn.bias = param(g), param(b)
            self.bn.running_mean.copy_(torch.from_numpy(m.astype(np.float32)))
            self.bn.running_var.copy_(torch.from_numpy(v.astype(np.float32)))
            self.head = linear(weights(cnn, "head"))

        def forward(self, x):  # NCHW in; Keras's Flatten is channels last
            x = torch.relu(self.bn(self.conv(x)))
            y = x + torch.relu(self.conv_b(x))
            y = F.max_pool2d(y, 2).permute(0, 2, 3, 1).flatten(1)
            return torch.softmax(self.head(y), -1)

    save_expected("keras_cnn", trace_graph(TorchCNN().eval(), torch.zeros(1, 2, 6, 6)))

    # an LSTM (Keras gates i, f, c, o = torch's i, f, g, o) and a GRU (z, r, h -> torch r, z, n)
    for kind in ("lstm", "gru"):
        cell = L.LSTM(4, name="rnn") if kind == "lstm" else L.GRU(4, name="rnn")
        model = keras.Sequential([keras.Input((5, 3)), cell, L.Dense(2, name="out")])
        model.save(HERE / f"keras_{kind}.h5")
        k, r, b = weights(model, "rnn")
        module = nn.LSTM(3, 4, batch_first=True) if kind == "lstm" else nn.GRU(3, 4, batch_first=True)
        order = [0, 1, 2, 3] if kind == "lstm" else [1, 0, 2]

        def rows(w, order=order):
            blocks = np.split(w.T if w.ndim == 2 else w, len(order), axis=0)
            return np.concatenate([blocks[i] for i in order], axis=0)

        module.weight_ih_l0, module.weight_hh_l0 = param(rows(k)), param(rows(r))
        if kind == "lstm":
            module.bias_ih_l0, module.bias_hh_l0 = param(rows(b)), param(np.zeros(16))
        else:  # reset_after: input and recurrent biases
            module.bias_ih_l0, module.bias_hh_l0 = param(rows(b[0])), param(rows(b[1]))

        class TorchRNN(nn.Module):
            def __init__(self, rnn, out) -> None:
                super().__init__()
                self.rnn, self.out = rnn, out

            def forward(self, x):
                return self.out(self.rnn(x)[0][:, -1])

        save_expected(
            f"keras_{kind}",
            trace_graph(TorchRNN(module, linear(weights(model, "out"))).eval(), torch.zeros(1, 5, 3)),
        )

    # many layer kinds at once: no hand-written twin, but Keras's own output on a fixed input, which
    # the torch module rebuilt from the file must reproduce
    inp = keras.Input((9, 9, 3))
    a = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2, name="dw")(inp)
    b = L.SeparableConv2D(4, 3, padding="same", strides=2, name="sep")(inp)
    c = L.Concatenate(name="cat")([a, b])
    c = L.ZeroPadding2D(((1, 0), (0, 1)), name="zp")(c)
    c = L.AveragePooling2D(2, padding="same", name="ap")(c)
    c = L.BatchNormalization(name="bn")(c)
    c = L.Permute((2, 1, 3), name="perm")(c)
    c = L.Reshape((9, 10), name="resh")(c)
    d = L.LayerNormalization(name="ln")(c)
    d = L.Conv1D(5, 3, padding="causal", name="c1")(d)
    d = L.Conv1D(5, 3, padding="same", strides=2, activation="elu", name="c1b")(d)
    e = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(d)
    e = L.GlobalAveragePooling1D(name="gap")(e)
    f = L.Bidirectional(L.GRU(2), name="bigru")(d)
    out = L.Dense(4, activation="gelu", name="out")(L.Concatenate(name="cat2")([e, f]))
    zoo = keras.Model(inp, out)
    zoo.get_layer("bn").set_weights(
        [rng.uniform(0.5, 1.5, 10), rng.normal(0, 0.1, 10), rng.normal(0, 0.1, 10), rng.uniform(0.5, 1.5, 10)]
    )
    zoo.save(HERE / "keras_zoo.h5")
    x = rng.normal(size=(1, 9, 9, 3)).astype(np.float32)
    y = np.asarray(keras.ops.convert_to_numpy(zoo(x, training=False)))
    np.savez_compressed(HERE / "keras_zoo.io.npz", x=x, y=y)


if __name__ == "__main__":
    torch_fixtures()
    keras_fixtures()
    for p in sorted(HERE.iterdir()):
        print(f"{p.name:32s} {p.stat().st_size:8,d}")
