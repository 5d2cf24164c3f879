"""Keras layers as torch: one builder method per Keras layer class, each registering the layer's
weights (converted to torch's layouts) on the module and returning the function it computes.

Tensors keep Keras's channels-last layout; convolutions and pooling permute around torch's
channels-first ops, so a Flatten is channels-last, as Keras computes it. Conversions: Dense
``(in, out)`` -> ``(out, in)``; Conv ``(k..., in, out)`` -> ``(out, in, k...)``; DepthwiseConv2D
``(kh, kw, in, m)`` -> ``(in * m, 1, kh, kw)`` with ``groups=in``; LSTM gate columns i, f, c, o
-> torch's rows i, f, g, o (the same order); GRU z, r, h -> r, z, n, ``reset_after`` biases
``(2, 3u)`` -> ``bias_ih`` / ``bias_hh``; BatchNormalization gamma, beta, moving mean and variance.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ModscopeError, first_line
from .padding import average_pool, pad_by_concat, recurrent_module, same_pads

__all__ = ["KerasLayer", "LayerBuilder", "activation"]


@dataclass
class KerasLayer:
    """One layer of a Keras model config."""

    cls: str
    name: str
    config: dict
    calls: list[list[tuple[str, int, int]]]  # per call: the (layer, call, output) tensors it reads


# -- layers as torch ---------------------------------------------------------------------------------
def activation(name: Any, where: str, version: str | None = None) -> Callable:
    """The torch function of a Keras activation (its name or serialised form) in the Keras of
    ``version`` (hard_sigmoid changed with Keras 3)."""
    import torch

    F = torch.nn.functional
    if isinstance(name, dict):  # a serialised function: {"class_name": "function", "config": "relu"}
        name = name.get("config")
    if not isinstance(name, str | None):
        raise ModscopeError(f"{where}: Keras activation {str(name)[:60]} is not read")
    name = str(name or "linear").lower()
    if name == "hard_sigmoid" and _major(version) != 3:  # Keras 2: clip(0.2 x + 0.5, 0, 1); 3: torch's
        if _major(version) is None:
            raise ModscopeError(f"{where}: Keras's hard_sigmoid differs between Keras 2 and 3, and the file "
                                "does not say which Keras wrote it (keras_version)")
        return lambda x: (0.2 * x + 0.5).clamp(0.0, 1.0)
    table = {
        "linear": lambda x: x, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "softmax": lambda x: F.softmax(x, -1), "log_softmax": lambda x: F.log_softmax(x, -1),
        "elu": F.elu, "selu": F.selu, "gelu": F.gelu, "swish": F.silu, "silu": F.silu, "softplus": F.softplus,
        "softsign": F.softsign, "relu6": F.relu6, "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
        "hard_sigmoid": F.hardsigmoid, "hard_silu": F.hardswish, "hard_swish": F.hardswish,
        "exponential": torch.exp, "mish": F.mish,
    }
    if name not in table:
        raise ModscopeError(f"{where}: Keras activation {name!r} is not read")
    return table[name]


def _major(version: str | None) -> int | None:
    """The major version of Keras's ``version`` string (None when unknown)."""
    head = str(version or "").split(".")[0]
    return min(int(head), 3) if head.isdigit() else None


def _get(getter: Callable[[], Any] | None) -> Any:
    return None if getter is None else getter()


def _channels_first(x: Any) -> Any:
    return x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))


def _channels_last(x: Any) -> Any:
    return x.permute(0, *range(2, x.ndim), 1)


_GATES = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}  # gate blocks of a Keras recurrent layer's weights
# config values that change a layer's function and that its builder does not follow: class -> (key, its
# default, the values read, what another value does)
_RNN = [("activation", "tanh", ("tanh",), "torch's recurrent layers use tanh"),
        ("recurrent_activation", "sigmoid", ("sigmoid",), "torch's gates are sigmoids"),
        ("time_major", False, (False,), "inputs time first, not batch first")]
_UNREAD: dict[str, list[tuple[str, Any, tuple, str]]] = {
    "LSTM": _RNN, "SimpleRNN": [_RNN[0], _RNN[2]],  # no gates
    "GRU": [*_RNN, ("reset_after", False, (True,), "the reset gate applied before the recurrent kernel, "
                    "torch's GRU applies it after")],
    "Bidirectional": [("merge_mode", "concat", ("concat", "sum", "mul", "ave"), "two outputs, unmerged")],
    "Embedding": [("mask_zero", False, (False,), "a mask by which later layers skip steps")],
    "LayerNormalization": [("rms_scaling", False, (False,), "RMS scaling")],
}
_MERGES = frozenset({"Add", "Subtract", "Multiply", "Maximum", "Average", "Concatenate"})
_ACTIVATION_LAYERS = frozenset({"ReLU", "LeakyReLU", "ELU", "Softmax", "Activation"})  # no weights


def _tuple(v: Any, n: int) -> list[int]:
    return [int(a) for a in v] if isinstance(v, list | tuple) else [int(v)] * n


class LayerBuilder:
    """Turns one Keras layer into a function of torch tensors, registering its weights."""

    def __init__(
        self, module: Any, layer: KerasLayer, weights: list[np.ndarray], names: list[str], where: str,
        version: str | None = None,
    ):
        import torch

        self.torch, self.module, self.layer, self.where, self.version = torch, module, layer, where, version
        self.cfg = layer.config
        self.weights, self.names = weights, names
        self.prefix = re.sub(r"\W", "_", layer.name) or "layer"

    def refuse(self, why: str) -> ModscopeError:
        return ModscopeError(f"{self.where}: Keras {self.layer.cls} layer {self.layer.name}: {why}")

    def malformed(self, exc: Exception) -> ModscopeError:
        """The refusal of a config the builder does not follow (it raised ``exc``)."""
        return ModscopeError(
            f"{self.where}: Keras layer {self.layer.cls} ({self.layer.name}): malformed config "
            f"({type(exc).__name__}: {first_line(exc)})"
        )

    def check(self, cls: str | None = None, cfg: dict | None = None) -> None:
        """Refuse in one line a config (this layer's, or ``cls``'s ``cfg`` inside it) whose function
        the builder would not follow: a value of `_UNREAD`, quantized weights, more than one input
        tensor per call for a layer that reads one (initial states, a mask)."""
        cls, cfg = (self.layer.cls, self.cfg) if cfg is None else (cls, cfg)
        for key, default, read, what in _UNREAD.get(cls, ()):
            value = cfg.get(key, default)
            value = value.get("config") if isinstance(value, dict) else value  # a serialised function
            if value not in read:
                raise self.refuse(f"{cls} {key}={str(value)[:60]} ({what}) is not read")
        policy = cfg.get("dtype") if isinstance(cfg.get("dtype"), dict) else {}
        quantized = "_from_" in str(policy.get("config", {}).get("name"))  # "int8_from_float32"
        if quantized or cfg.get("quantization_config") is not None:
            raise self.refuse("quantized weights are not read")
        if cls not in _MERGES and any(len(refs) != 1 for refs in self.layer.calls):
            raise self.refuse("it reads more than one tensor (initial states, a mask): only one is read")

    def act(self, value: Any) -> Callable:
        """The torch function of a Keras activation: a name, a serialised function, or a weightless
        layer given as the activation (``activation=ReLU(6.0)``), read as that layer."""
        if not (isinstance(value, dict) and isinstance(value.get("config"), dict)):
            return activation(value, self.where, self.version)
        cls = value.get("class_name")
        if cls not in _ACTIVATION_LAYERS:
            raise self.refuse(f"its activation, a {cls} layer, is not read")
        inner = KerasLayer(cls, self.layer.name, value["config"], [])
        fn = getattr(LayerBuilder(self.module, inner, [], [], self.where, self.version), cls)()
        return lambda x: fn([x])[0]

    def only(self, n: int) -> None:
        """Refuse a layer holding more than its ``n`` weights (LoRA factors, quantization scales)."""
        if len(self.weights) > n:
            raise self.refuse(f"it holds {len(self.weights)} weights, not {n} (LoRA factors, quantization "
                              "scales?): the others are not read")

    def role(self, role: str, index: int) -> np.ndarray:
        return self.pick(self.names, self.weights, role, index)

    def pick(self, names: list[str], weights: list[np.ndarray], role: str, index: int) -> np.ndarray:
        """The weight called ``role`` (by its name; the ``index``-th if no name says)."""
        tagged = [i for i, n in enumerate(names) if re.sub(r":\d+$", "", n).split("/")[-1] == role]
        i = tagged[0] if tagged else index
        if i >= len(weights):
            raise self.refuse(f"its {role} is missing from the file")
        return np.asarray(weights[i], dtype=np.float32)

    def param(self, name: str, array: np.ndarray) -> Callable[[], Any]:
        """Register ``array`` as ``<layer>.<name>`` (dots make submodules); returns its getter (the
        forward must read parameters off the module: torch.export swaps them for its own)."""
        torch, holder = self.torch, self.module
        parts = [self.prefix, *name.split(".")]
        for p in parts[:-1]:
            if p not in holder._modules:
                holder.add_module(p, torch.nn.Module())
            holder = holder._modules[p]
        value = torch.from_numpy(np.ascontiguousarray(array))
        holder.register_parameter(parts[-1], torch.nn.Parameter(value, requires_grad=False))
        return lambda: holder._parameters[parts[-1]]

    def data_format_last(self) -> bool:
        return (self.cfg.get("data_format") or "channels_last") == "channels_last"

    # each returns f(inputs: list[Tensor]) -> list[Tensor]
    def Dense(self) -> Callable:
        self.only(1 + bool(self.cfg.get("use_bias", True)))
        w = self.param("weight", self.role("kernel", 0).T)
        b = self.param("bias", self.role("bias", 1)) if self.cfg.get("use_bias", True) else None
        act = self.act(self.cfg.get("activation"))
        return lambda xs: [act(self.torch.nn.functional.linear(xs[0], w(), _get(b)))]

    def _conv(self, n: int, depthwise: bool = False, separable: bool = False) -> Callable:
        fn = getattr(self.torch.nn.functional, f"conv{n}d")
        kernel_size = _tuple(self.cfg.get("kernel_size"), n)
        strides = _tuple(self.cfg.get("strides", 1), n)
        dilation = _tuple(self.cfg.get("dilation_rate", 1), n)
        padding = self.cfg.get("padding", "valid")
        last = self.data_format_last()
        to_torch = (2, 1, 0) if n == 1 else (3, 2, 0, 1)  # (k..., in, out) -> (out, in, k...)
        if depthwise or separable:
            dk = self.role("depthwise_kernel" if any("depthwise" in s for s in self.names) else "kernel", 0)
            # channel c, multiplier m -> c * m + m
            k = dk.reshape(*dk.shape[:-2], dk.shape[-2] * dk.shape[-1])
            name = "depthwise.weight" if separable else "weight"
            dw = self.param(name, np.expand_dims(k.transpose(n, *range(n)), 1))
            groups = dk.shape[-2]
        else:
            dw = self.param("weight", self.role("kernel", 0).transpose(to_torch))
            groups = int(self.cfg.get("groups", 1))
        pw = None
        if separable:
            pw = self.param("pointwise.weight", self.role("pointwise_kernel", 1).transpose(to_torch))
        bias = None
        if self.cfg.get("use_bias", True):
            bias = self.param("bias", self.role("bias", 2 if separable else 1))
        act = self.act(self.cfg.get("activation"))

        def run(xs: list) -> list:
            x = _channels_first(xs[0]) if last else xs[0]
            windows = zip(x.shape[2:], kernel_size, strides, dilation, strict=True)
            pads = [same_pads(*w) for w in windows] if padding == "same" else [(0, 0)] * n
            if padding == "causal":
                pads = [((kernel_size[0] - 1) * dilation[0], 0)]
            x, even = pad_by_concat(x, pads, 0.0)
            y = fn(x, dw(), None if separable else _get(bias), strides, even, dilation, groups)
            if separable:  # the pointwise convolution after the depthwise one adds the bias
                y = fn(y, pw(), _get(bias))
            y = act(y)
            return [_channels_last(y) if last else y]

        return run

    Conv1D = functools.partialmethod(_conv, 1)
    Conv2D = functools.partialmethod(_conv, 2)
    DepthwiseConv2D = functools.partialmethod(_conv, 2, depthwise=True)
    SeparableConv2D = functools.partialmethod(_conv, 2, separable=True)

    def _norm(self) -> tuple[Any, Any, int, float]:
        """A normalisation's gamma and beta getters (None where the config turns one off), the
        index of the weight after them, and its epsilon."""
        i, gamma, beta = 0, None, None
        if self.cfg.get("scale", True):
            gamma, i = self.param("weight", self.role("gamma", i)), i + 1
        if self.cfg.get("center", True):
            beta, i = self.param("bias", self.role("beta", i)), i + 1
        return gamma, beta, i, float(self.cfg.get("epsilon", 1e-3))

    def _axis(self) -> int:
        """The one axis of the layer's ``axis`` (an int or a list of one); several are refused."""
        axis = self.cfg.get("axis", -1)
        if isinstance(axis, list) and len(axis) != 1:
            raise self.refuse(f"it acts over several axes {axis}: one is read")
        return int(axis[0] if isinstance(axis, list) else axis)

    def BatchNormalization(self) -> Callable:
        axis = self._axis()
        gamma, beta, i, eps = self._norm()
        mean = self.param("running_mean", self.role("moving_mean", i))
        var = self.param("running_var", self.role("moving_variance", i + 1))

        def run(xs: list) -> list:
            x = xs[0]
            a = axis % x.ndim
            if a != 1:
                x = x.movedim(a, 1)
            y = self.torch.nn.functional.batch_norm(
                x, mean(), var(), _get(gamma), _get(beta), False, 0.0, eps
            )
            return [y.movedim(1, a) if a != 1 else y]

        return run

    def LayerNormalization(self) -> Callable:
        axes = [self._axis()]
        gamma, beta, _, eps = self._norm()

        def run(xs: list) -> list:
            x = xs[0]
            if axes[0] % x.ndim != x.ndim - 1:
                raise self.refuse("normalisation over an axis other than the last")
            return [self.torch.nn.functional.layer_norm(x, [x.shape[-1]], _get(gamma), _get(beta), eps)]

        return run

    def Activation(self) -> Callable:
        act = self.act(self.cfg.get("activation"))
        return lambda xs: [act(xs[0])]

    def ReLU(self) -> Callable:
        """Keras's ReLU: ``negative_slope * (x - threshold)`` below ``threshold``, then ``x``, capped at
        ``max_value`` (MobileNet's ReLU6: ``max_value=6``)."""
        cap = None if self.cfg.get("max_value") is None else float(self.cfg["max_value"])
        slope = float(self.cfg.get("negative_slope") or 0.0)
        threshold = float(self.cfg.get("threshold") or 0.0)

        def run(xs: list) -> list:
            x = xs[0]
            if threshold == 0.0:
                y = self.torch.nn.functional.leaky_relu(x, slope) if slope else self.torch.relu(x)
            else:
                y = self.torch.where(x >= threshold, x, slope * (x - threshold))
            return [y if cap is None else y.clamp(max=cap)]

        return run

    def LeakyReLU(self) -> Callable:
        slope = float(self.cfg.get("negative_slope", self.cfg.get("alpha", 0.3)))
        return lambda xs: [self.torch.nn.functional.leaky_relu(xs[0], slope)]

    def ELU(self) -> Callable:
        return lambda xs: [self.torch.nn.functional.elu(xs[0], float(self.cfg.get("alpha", 1.0)))]

    def Softmax(self) -> Callable:
        axis = self._axis()
        return lambda xs: [self.torch.softmax(xs[0], axis)]

    def identity(self) -> Callable:
        return lambda xs: [xs[0]]

    Dropout = SpatialDropout1D = SpatialDropout2D = GaussianNoise = GaussianDropout = AlphaDropout = identity
    ActivityRegularization = InputLayer = identity

    def Flatten(self) -> Callable:
        last = self.data_format_last()

        def run(xs: list) -> list:
            x = xs[0]
            if not last and x.ndim > 2:  # Keras puts channels last before flattening
                x = _channels_last(x)
            return [x.reshape(x.shape[0], -1)]

        return run

    def Reshape(self) -> Callable:
        shape = [int(s) for s in self.cfg["target_shape"]]
        return lambda xs: [xs[0].reshape(xs[0].shape[0], *shape)]

    def Permute(self) -> Callable:
        dims = [int(d) for d in self.cfg["dims"]]
        return lambda xs: [xs[0].permute(0, *dims)]

    def _pool(self, n: int, kind: str) -> Callable:
        size = _tuple(self.cfg.get("pool_size", 2), n)
        strides = _tuple(self.cfg.get("strides") or size, n)
        padding = self.cfg.get("padding", "valid")
        last = self.data_format_last()
        fn = getattr(self.torch.nn.functional, f"{kind}_pool{n}d")

        def run(xs: list) -> list:
            x = _channels_first(xs[0]) if last else xs[0]
            pads = [
                same_pads(s, k, st) if padding == "same" else (0, 0)
                for s, k, st in zip(x.shape[2:], size, strides, strict=True)
            ]
            if kind == "avg":  # TensorFlow's mean over the window's own elements, padding not counted
                y = average_pool(x, pads, fn, size, strides, False, False)
            else:
                x, even = pad_by_concat(x, pads, -float("inf"))
                y = fn(x, size, strides, even)
            return [_channels_last(y) if last else y]

        return run

    MaxPooling1D = MaxPool1D = functools.partialmethod(_pool, 1, "max")
    MaxPooling2D = MaxPool2D = functools.partialmethod(_pool, 2, "max")
    AveragePooling1D = AvgPool1D = functools.partialmethod(_pool, 1, "avg")
    AveragePooling2D = AvgPool2D = functools.partialmethod(_pool, 2, "avg")

    def _global(self, kind: str) -> Callable:
        last = self.data_format_last()
        keep = bool(self.cfg.get("keepdims", False))

        def run(xs: list) -> list:
            x = xs[0]
            dims = list(range(1, x.ndim - 1)) if last else list(range(2, x.ndim))
            return [x.mean(dims, keepdim=keep) if kind == "avg" else x.amax(dims, keepdim=keep)]

        return run

    GlobalAveragePooling1D = functools.partialmethod(_global, "avg")
    GlobalAveragePooling2D = GlobalAvgPool1D = GlobalAvgPool2D = GlobalAveragePooling1D
    GlobalMaxPooling1D = functools.partialmethod(_global, "max")
    GlobalMaxPooling2D = GlobalMaxPool1D = GlobalMaxPool2D = GlobalMaxPooling1D

    def _zero_pad(self, n: int) -> Callable:
        raw = self.cfg.get("padding", 1)
        if isinstance(raw, int):
            pads = [(raw, raw)] * n
        else:
            pads = [(int(p), int(p)) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in raw]
            if n == 1 and len(raw) == 2 and all(isinstance(p, int) for p in raw):
                pads = [(int(raw[0]), int(raw[1]))]
        first_axis = 1 if self.data_format_last() else 2
        return lambda xs: [pad_by_concat(xs[0], pads, 0.0, first_axis=first_axis)[0]]

    ZeroPadding1D = functools.partialmethod(_zero_pad, 1)
    ZeroPadding2D = functools.partialmethod(_zero_pad, 2)

    def _merge(self, fn: Callable) -> Callable:
        return lambda xs: [functools.reduce(fn, xs[1:], xs[0])]  # fn folded over the inputs, first to last

    Add = functools.partialmethod(_merge, operator.add)
    Subtract = functools.partialmethod(_merge, operator.sub)
    Multiply = functools.partialmethod(_merge, operator.mul)
    Maximum = functools.partialmethod(_merge, lambda a, b: a.maximum(b))  # torch.maximum

    def Average(self) -> Callable:
        return lambda xs: [functools.reduce(operator.add, xs[1:], xs[0]) / len(xs)]

    def Concatenate(self) -> Callable:
        axis = int(self.cfg.get("axis", -1))
        return lambda xs: [self.torch.cat(list(xs), axis)]

    def Embedding(self) -> Callable:
        self.only(1)
        w = self.param("weight", self.role("embeddings", 0))
        return lambda xs: [self.torch.nn.functional.embedding(xs[0].long(), w())]

    def _recurrent(self, kind: str, cfg: dict, names: list[str], weights: list[np.ndarray]) -> Any:
        """Weights of a Keras LSTM / GRU / SimpleRNN in torch's layout, gates in Keras's order:
        (w_ih, w_hh, b_ih, b_hh, units)."""
        kernel = self.pick(names, weights, "kernel", 0)
        recurrent = self.pick(names, weights, "recurrent_kernel", 1)
        units = recurrent.shape[0]
        zeros = np.zeros(_GATES[kind] * units, dtype=np.float32)
        bias = self.pick(names, weights, "bias", 2) if cfg.get("use_bias", True) else zeros
        # GRU reset_after: input and recurrent biases
        b_ih, b_hh = (bias[0], bias[1]) if bias.ndim == 2 else (bias, zeros)
        # (n, gates * u) columns -> torch's (gates * u, n) rows
        kernel, recurrent = (w.T if w.ndim == 2 else w for w in (kernel, recurrent))
        return kernel, recurrent, b_ih, b_hh, units

    def _rnn(self, kind: str) -> Callable:
        return self._rnn_run(kind, [self._recurrent(kind, self.cfg, self.names, self.weights)], self.cfg)

    def _rnn_run(self, kind: str, parts: list, cfg: dict, merge: str | None = None) -> Callable:
        """The function of the recurrent layer of ``parts`` (`_recurrent`'s, one per direction; a
        layer of one runs backwards with ``go_backwards``), its torch module registered."""
        order = [1, 0, 2] if kind == "GRU" else list(range(_GATES[kind]))  # GRU z, r, h -> torch's r, z, n
        cls = "RNN" if kind == "SimpleRNN" else kind
        module = recurrent_module(cls, parts[0][4], [p[:4] for p in parts], batch_first=True, order=order)
        self.module.add_module(self.prefix, module)
        seqs = bool(cfg.get("return_sequences", False))
        states = bool(cfg.get("return_state", False))

        def run(xs: list) -> list:
            x = xs[0].flip(1) if cfg.get("go_backwards") else xs[0]
            y, h = module(x)
            finals = list(h) if kind == "LSTM" else [h]
            out = y if seqs else (y[:, -1] if merge is None else self._last_both(y))
            if merge is not None and merge != "concat":
                half = out.shape[-1] // 2
                a, b = out[..., :half], out[..., half:]
                out = {"sum": a + b, "mul": a * b, "ave": (a + b) / 2}[merge]
            return [out, *[f[-1] for f in finals]] if states else [out]

        return run

    def _last_both(self, y: Any) -> Any:
        """A bidirectional layer's last output: forward's last step, backward's first (as Keras)."""
        half = y.shape[-1] // 2
        return self.torch.cat([y[:, -1, :half], y[:, 0, half:]], -1)

    LSTM = functools.partialmethod(_rnn, "LSTM")
    GRU = functools.partialmethod(_rnn, "GRU")
    SimpleRNN = functools.partialmethod(_rnn, "SimpleRNN")

    def Bidirectional(self) -> Callable:
        inner = self.cfg.get("layer", {})
        kind = inner.get("class_name")
        if kind not in ("LSTM", "GRU", "SimpleRNN"):
            raise self.refuse(f"a Bidirectional {kind} is not read")
        icfg = inner.get("config", {})
        if icfg.get("return_state") or icfg.get("go_backwards"):
            raise self.refuse("its states, or a forward layer that runs backwards, are not read")
        for sub in (inner, self.cfg.get("backward_layer") or {}):  # the backward layer's own activations
            self.check(sub.get("class_name", kind), sub.get("config", {}))
        n = len(self.weights) // 2
        fwd = [i for i, s in enumerate(self.names) if "forward" in s] or list(range(n))
        bwd = [i for i, s in enumerate(self.names) if "backward" in s] or list(range(n, 2 * n))
        parts = [
            self._recurrent(kind, icfg, [self.names[i] for i in idx], [self.weights[i] for i in idx])
            for idx in (fwd, bwd)
        ]
        return self._rnn_run(kind, parts, icfg, self.cfg.get("merge_mode", "concat") or "concat")
