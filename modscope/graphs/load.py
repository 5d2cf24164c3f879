"""Any source a user points at -> its unit graph ([spec §1][spec-1], [§1b][spec-1b]), or a one-line refusal.

How a source is read, in order (the graph's ``reading`` says which way was taken):

- a `WeightGraph`: itself;
- a modscope checkpoint (a path, a payload dict or a `Checkpoint`): its MLP, inputs and outputs in
  the task's order;
- an ``nn.Module``: traced with ``torch.export`` on ``example_input`` (`modscope.graphs.tracing`);
  without one, only modscope's own MLP and an ``nn.Sequential`` of Linear layers and weightless
  layers (or a plain conv stack) are read, because their order is their dataflow; any other module
  has its order in its forward, and is refused;
- a state dict (in memory, ``.pt``/``.pth``/``.bin``/``.ckpt``, ``.safetensors``, ``.npz``): a known
  family recognised by its key names (`modscope.graphs.families`: torchvision CNNs, BERT, GPT-2,
  LLaMA, T5, ViT, ...; a ``config.json`` beside the file supplies what no shape holds), traced from
  modscope's reference module as tracing the real model would; else a plain stack of Linear layers
  (stored, then natural key order; the ``in x out`` layout of Keras and JAX detected when only it
  chains) or a plain conv stack. Key names that say the network is not
  a plain stack (attention, recurrent, residual shortcuts) are refused, never chained;
- ``.pt2`` (``torch.export`` archives) and TorchScript archives are read without running their code.

Files are read by the safe readers of `modscope.graphs.files.formats`: a file that would need code to
run is refused unless ``trust_pickle``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np

from ..errors import ModscopeError
from .arrays import as_float64
from .chains import chains, ordered_weights
from .cnn import FlattenOrder, channel_weights, holds_conv, module_channel_weights
from .families import family_graph, match_family, read_config
from .files import formats
from .modules import named_linear_layers
from .names import EMBEDDING
from .weight_graph import WeightGraph, check_build_memory

if TYPE_CHECKING:
    from torch import nn

__all__ = ["LayoutOption", "Source", "load_graph", "load_weights", "not_a_plain_stack"]

Source = Union[str, os.PathLike, Mapping[str, Any], "nn.Module", Any]  # Any: a Checkpoint (to_payload())
LayoutOption = Literal["auto", "out_in", "in_out"]

# Key names that say a state dict is not a plain stack: (pattern, what it is, what to pass instead).
_NOT_A_STACK = (
    (
        re.compile(
            r"(^|\.)(query|key|value|q_proj|k_proj|v_proj|o_proj|out_proj|in_proj_weight|qkv|c_attn|"
            r"query_key_value|attn|attention|self_attn|selfattention|encdecattention)(\.|$)",
            re.IGNORECASE,
        ),
        "attention weights",
    ),
    (  # torch's names, and others' (enc_w_ih, gru.W_hh, lstm_kernel): never chained by shape
        re.compile(
            r"(^|\.)(weight|bias)_(ih|hh)(_l\d+)?(_reverse)?$|recurrent_kernel|(^|[._])[wb]_?(ih|hh)(_|\.|$)|"
            r"(^|[._])(lstm|gru|rnn|bilstm|bigru)\d*([._]|$)",
            re.IGNORECASE,
        ),
        "recurrent weights",
    ),
    (
        re.compile(r"(^|\.)(downsample|shortcut|skip|residual)(\.|_|$)", re.IGNORECASE),
        "a residual shortcut",
    ),
)
_WAY_OUT = (
    "pass the module with an example input (load_graph(module, example_input=...); on the command "
    "line --model package.module:factory), or a .pt2 torch.export archive"
)


def not_a_plain_stack(names: Sequence[str]) -> str | None:
    """Why tensors named ``names`` cannot be read as a plain stack of layers (None: they can)."""
    for pattern, what in _NOT_A_STACK:
        hit = next((n for n in names if pattern.search(n)), None)
        if hit is not None:
            return (
                f"{hit}: {what}, and a state dict does not say how the forward joins them; "
                f"modscope never chains such matrices: {_WAY_OUT}"
            )
    return None


def _is_module(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


# -- state dicts -------------------------------------------------------------------------------------
def _weight_names(tensors: Mapping[str, Any]) -> list[str]:
    return [k for k, v in tensors.items() if getattr(v, "ndim", np.ndim(v)) >= 2 and not EMBEDDING.search(k)]


def _linear_chain(
    tensors: Mapping[str, Any], layers: Sequence[str] | None, layout: LayoutOption
) -> tuple[list[tuple[str, np.ndarray]], str]:
    """A plain stack of Linear layers in forward order, and how it was read."""
    if layout != "auto":
        items = ordered_weights(tensors, layers, layout)
        return items, f"a plain stack of {len(items)} Linear layers ({layout.replace('_', ' x ')} weights)"
    try:
        return ordered_weights(tensors, layers, "out_in"), (
            "a plain stack of Linear layers (out x in weights, as torch stores them)"
        )
    except ModscopeError as torch_layout:
        try:
            items = ordered_weights(tensors, layers, "in_out")
        except ModscopeError:
            raise ModscopeError(f"{torch_layout} (nor in x out, as Keras / JAX store them)") from None
        return items, (
            f"a plain stack of {len(items)} Linear layers with in x out weights (Keras / JAX): "
            "only that layout chains"
        )


def _known_family_graph(tensors: Mapping[str, Any], kernel_norm: str, source: str) -> WeightGraph | None:
    """A state dict of a known family (`modscope.graphs.families`: torchvision CNNs, BERT, GPT-2,
    LLaMA, T5, ViT, ...) as tracing the real model gives it; None when the key names are no
    family's. A file's ``config.json`` beside it supplies what no shape holds (heads)."""
    if match_family(tensors) is None:
        return None
    path = Path(source)
    config = read_config(path.parent) if path.is_file() else None
    try:
        return family_graph(tensors, kernel_norm=kernel_norm, config=config).graph
    except ModscopeError as exc:
        raise ModscopeError(f"{source}: {exc}") from None


@dataclass(frozen=True)
class _Reading:
    """How `load_graph` was asked to read a network (its keyword options)."""

    layout: LayoutOption = "auto"
    kernel_norm: str = "1"
    flatten: FlattenOrder | None = None
    map_shape: tuple[int, int] | None = None
    bn_eps: float | None = None
    input_shape: tuple[int, ...] | None = None


def _state_graph(
    tensors: Mapping[str, Any], layers: Sequence[str] | None, how: _Reading, source: str
) -> WeightGraph:
    """The graph of a state dict: a known family traced from its reference module, a plain stack
    of Linear or conv layers, or a refusal."""
    layout, kernel_norm, flatten = how.layout, how.kernel_norm, how.flatten
    if layers is None:
        known = _known_family_graph(tensors, kernel_norm, source)
        if known is not None:
            return known
        why = not_a_plain_stack(_weight_names(tensors))
        if why is not None:
            raise ModscopeError(f"{source}: {why}")
    if layers is None and holds_conv(tensors):
        if any(getattr(v, "ndim", np.ndim(v)) in (3, 5) for k, v in tensors.items() if k.endswith("weight")):
            raise ModscopeError(f"{source}: Conv1d / Conv3d kernels: {_WAY_OUT}")
        eps = 1e-5 if how.bn_eps is None else how.bn_eps
        items = channel_weights(tensors, norm=kernel_norm, flatten=flatten, spatial=how.map_shape, bn_eps=eps)
        reading = "a plain conv stack in stored order, channels as units"
        if flatten is not None:
            reading += f", {flatten.replace('_', '-')} flatten"
        if how.map_shape is not None:
            reading += f" of {how.map_shape[0]} x {how.map_shape[1]} maps"
        if any(k.endswith("running_var") for k in tensors):  # the file cannot say: state it
            reading += (
                f", BatchNorm eps {eps:g}{'' if how.bn_eps is not None else ' (torch default, assumed)'}"
            )
        return _graph(items, reading)
    if layers is None and any(getattr(v, "ndim", np.ndim(v)) in (3, 5) for v in tensors.values()):
        raise ModscopeError(f"{source}: 3-D kernels (Conv1d) are not a plain Linear stack: {_WAY_OUT}")
    if layers is None and layout != "in_out" and any(k.endswith("running_var") for k in tensors):
        eps = 1e-5 if how.bn_eps is None else how.bn_eps
        items = channel_weights(tensors, norm=kernel_norm, need_conv=False, bn_eps=eps)
        assumed = "" if how.bn_eps is not None else " (torch default, assumed)"
        return _graph(
            items,
            f"a plain stack of Linear layers in stored order, BatchNorm folded in (eps {eps:g}{assumed})",
        )
    items, reading = _linear_chain(tensors, layers, layout)
    if layers is not None:
        reading = f"the {len(items)} named layers, in the order given"
    return _graph(items, reading)


def _graph(items: list[tuple[str, np.ndarray]], reading: str) -> WeightGraph:
    if items and all(w.ndim == 2 for _, w in items) and chains(items):
        # refuse a network too large for this machine before the float64 copies are made
        check_build_memory([items[0][1].shape[1], *(w.shape[0] for _, w in items)])
    return WeightGraph.from_weights([w for _, w in items], [n for n, _ in items], reading=reading)


def _payload_graph(payload: Mapping[str, Any], layers, source: str) -> WeightGraph:
    """A modscope checkpoint's Linear weights, inputs and outputs in the task's order."""
    formats.check_checkpoint_version(payload, source)
    try:
        n_linear = len(payload["architecture"]["widths"]) - 1
        state = payload["state_dict"]
    except (KeyError, TypeError) as exc:
        raise ModscopeError(f"{source}: malformed modscope checkpoint ({exc})") from None
    perms = (payload.get("bimt") or {}).get("permutations")
    sd = formats.task_ordered_state_dict(state, perms, n_linear)
    if layers is None:
        layers = [f"layers.{i}.weight" for i in range(n_linear)]
    return _graph(ordered_weights(sd, layers, "out_in"), "a modscope checkpoint (MLP)")


# -- modules -----------------------------------------------------------------------------------------
def _plain_sequential(module: Any) -> bool:
    """An ``nn.Sequential`` (nested ones allowed) of Linear layers and layers without weights."""
    from torch import nn

    if not isinstance(module, nn.Sequential):
        return False
    for m in module.modules():
        if isinstance(m, nn.Sequential | nn.Linear):
            continue
        if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)):
            return False
        if list(m.children()):
            return False
    return True


def _module_graph(
    module: Any, layers, example_input: Any, kernel_norm: str, input_axis: int | None = None
) -> WeightGraph:
    from torch import nn

    from .tracing import trace_graph

    if example_input is not None:
        graph = trace_graph(module, example_input, kernel_norm=kernel_norm, input_axis=input_axis)
        axis = "" if input_axis is None else f", the input's features on axis {input_axis}"
        return graph.read_as(
            f"traced with torch.export: {len(graph.sizes)} unit groups, {len(graph.weights)} blocks{axis}"
        )
    if layers is not None:
        return _graph(
            ordered_weights(module.state_dict(), layers, "out_in"), "the named layers, in the order given"
        )
    if type(module).__name__ == "MLP" and type(module).__module__.startswith("modscope."):
        linears = named_linear_layers(module)  # modscope's own MLP: its forward is the chain
        items = [(f"{n}.weight", as_float64(n, m.weight)) for n, m in linears]
        return _graph(items, "a modscope MLP")
    if _plain_sequential(module):
        items = [(f"{n}.weight", as_float64(n, m.weight)) for n, m in named_linear_layers(module)]
        if not items:
            raise ModscopeError("the module has no layer with weights")
        if not chains(items):
            raise ModscopeError("the Sequential's Linear layers do not chain")
        return _graph(items, "an nn.Sequential of Linear layers")
    if isinstance(module, nn.Sequential) and any(isinstance(m, nn.Conv2d) for m in module.modules()):
        try:
            items = module_channel_weights(module, norm=kernel_norm)
        except ModscopeError as exc:
            if "height and width" not in str(exc):
                raise
            raise ModscopeError(
                f"{type(module).__name__}: its head flattens a map whose height and width only a forward "
                "pass shows: pass example_input=... (a tensor of the shape the forward takes, batch 1)"
            ) from None
        return _graph(items, "an nn.Sequential conv stack, channels as units")
    raise ModscopeError(
        f"{type(module).__name__}: its layers' order is in its forward: pass example_input=... "
        "(a tensor of the shape the forward takes, batch 1) to trace it"
    )


# -- files -------------------------------------------------------------------------------------------
def _file_graph(path: Path, layers, trust_pickle: bool, how: _Reading) -> WeightGraph:
    from .files.archives import archive_kind, read_pt2, read_torchscript

    suffix = path.suffix.lower()
    other = (".safetensors", ".npz", ".onnx", ".h5", ".hdf5", ".keras")  # formats that are no torch zip
    kind = archive_kind(path) if suffix not in other else None
    if layers is not None and (suffix in (".onnx", ".h5", ".hdf5", ".keras", ".pt2") or kind == "pt2"):
        raise ModscopeError(f"{path}: layers name the tensors of a state dict; this file is traced whole")
    if suffix == ".onnx":
        from .files.onnx_model import onnx_graph

        return onnx_graph(path, kernel_norm=how.kernel_norm, input_shape=how.input_shape)
    if suffix in (".h5", ".hdf5", ".keras"):
        from .files.keras_h5 import keras_graph

        shape = None if how.input_shape is None else how.input_shape[1:]  # Keras: without the batch
        return keras_graph(path, kernel_norm=how.kernel_norm, input_shape=shape)
    if how.input_shape is not None:
        raise ModscopeError(
            f"{path}: an input shape goes with a module, an .onnx or a Keras file; this file's weights "
            "are read without running it"
        )
    if kind == "pt2" or suffix == ".pt2":  # torch.export archives: the program, traced, no code run
        from .tracing import trace_program

        program = read_pt2(path)
        try:
            graph = trace_program(program, kernel_norm=how.kernel_norm)
        except ModscopeError:
            raise
        except (IndexError, KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
            # the archive's shapes are the file's word: sizes that disagree with its weights
            raise ModscopeError(
                f"{path}: the program's shapes do not agree with its weights ({type(exc).__name__}: "
                f"{str(exc).strip()[:160]})"
            ) from None
        return graph.read_as("a torch.export archive (.pt2), traced")
    if kind == "torchscript":  # weights only: the archive's code is never run
        try:
            graph = _state_graph(read_torchscript(path), layers, how, str(path))
        except ModscopeError as exc:
            raise ModscopeError(
                f"a TorchScript archive, read for its weights only (its code is not run): {exc}"
            ) from None
        return graph.read_as(f"a TorchScript archive (weights read, its code not run): {graph.reading}")
    if suffix == ".safetensors":
        return _state_graph(formats.read_safetensors(path), layers, how, str(path))
    if suffix == ".npz":
        return _state_graph(formats.read_npz(path), layers, how, str(path))
    obj = formats.safe_torch_load(path, trust_pickle=trust_pickle)
    # whole pickled models (only loadable with trust_pickle), bare or under a usual key
    module = obj if _is_module(obj) else None
    if isinstance(obj, Mapping) and module is None:
        module = next((obj[k] for k in formats.STATE_DICT_KEYS if _is_module(obj.get(k))), None)
    if module is not None:
        return _module_graph(module, layers, None, how.kernel_norm)
    if formats.is_checkpoint_payload(obj):
        return _payload_graph(obj, layers, str(path))
    tensors = formats.unwrap_state_dict(obj, str(path))
    return _state_graph(tensors, layers, how, str(path))


def load_graph(
    source: Source,
    layers: Sequence[str] | None = None,
    layout: LayoutOption = "auto",
    trust_pickle: bool = False,
    *,
    example_input: Any = None,
    kernel_norm: str = "1",
    flatten: FlattenOrder | None = None,
    map_shape: tuple[int, int] | None = None,
    bn_eps: float | None = None,
    input_shape: Sequence[int] | None = None,
    input_axis: int | None = None,
) -> WeightGraph:
    """The unit graph ([spec §1][spec-1], [§1b][spec-1b]) of a checkpoint path, state dict, `Checkpoint` or
    ``nn.Module``.

    ``example_input``: for a module, a tensor (or tuple of the forward's arguments) to trace it
    with ``torch.export``. ``layers``: the weight tensors of a plain stack, in forward order.
    ``layout``: ``"auto"`` (torch's ``out x in``, or ``in x out`` when only that chains),
    ``"out_in"`` or ``"in_out"``. ``kernel_norm``: the norm of a kernel / gate-row / map slice.
    ``flatten``: a state-dict CNN's flatten order (``"channel_major"`` or ``"channel_last"``),
    needed when its head reads a map of several positions; ``map_shape``: that map's ``(H, W)``
    (the 1-norm of a map depends on it; a state dict does not hold it); ``bn_eps``: a state
    dict's BatchNorm eps (not stored in it; default torch's 1e-5, and the reading says it was
    assumed). ``input_shape``: batch first, the shape of the input an ``.onnx`` or Keras file (or
    a module, instead of ``example_input``) is traced on, where the file leaves sizes open (an
    image's height and width) or declares none. ``input_axis``: a traced module's first input's
    feature axis, when the tracer's guess (channels of a map, the axis a 3-D input's first reader
    reads, else the last) is wrong. A modscope checkpoint's input and
    output nodes come in the task's feature order, whatever BIMT swapped. The graph's
    ``reading`` says how the source was read.
    """
    if isinstance(source, WeightGraph):
        return source
    if layout not in ("auto", "out_in", "in_out"):
        raise ModscopeError(f"unknown weight layout {layout!r}; use 'auto', 'out_in' (torch) or 'in_out'")
    if map_shape is not None and (len(map_shape) != 2 or min(map_shape) < 1):
        raise ModscopeError(f"a map shape is (H, W) with positive sizes, got {map_shape}")
    if input_shape is not None:
        input_shape = tuple(int(d) for d in input_shape)
        if len(input_shape) < 2 or min(input_shape) < 1:
            raise ModscopeError(
                f"an input shape is batch first with positive sizes (1,3,32,32), got {input_shape}"
            )
    how = _Reading(
        layout, kernel_norm, flatten, None if map_shape is None else tuple(map_shape), bn_eps, input_shape
    )
    if callable(getattr(source, "to_payload", None)):  # a Checkpoint object
        source = source.to_payload()
    if _is_module(source):
        if example_input is None and input_shape is not None:
            from .files.user_model import example_tensor

            example_input = example_tensor(input_shape)
        return _module_graph(source, layers, example_input, kernel_norm, input_axis)
    if input_axis is not None:
        raise ModscopeError("input_axis goes with a module traced on an example input")
    if example_input is not None:
        raise ModscopeError("example_input traces a module; the source is not an nn.Module")
    if isinstance(source, Mapping):
        if input_shape is not None:
            raise ModscopeError(
                "an input shape goes with a module, an .onnx or a Keras file, not a state dict"
            )
        if formats.is_checkpoint_payload(source):
            return _payload_graph(source, layers, "checkpoint")
        tensors = formats.unwrap_state_dict(source, "state dict")
        return _state_graph(tensors, layers, how, "state dict")
    if not isinstance(source, str | os.PathLike):
        raise ModscopeError(f"cannot load weights from a {type(source).__name__}")
    return _file_graph(Path(source), layers, trust_pickle, how)


def load_weights(
    source: Source,
    layers: Sequence[str] | None = None,
    layout: LayoutOption = "auto",
    trust_pickle: bool = False,
) -> list[tuple[str, np.ndarray]]:
    """``[(name, W)]`` of a plain stack in forward order, each ``W`` an ``(out, in)`` float array.

    Graphs that are not a chain (traced residual networks, transformers) have no such list:
    use `load_graph`.
    """
    graph = load_graph(source, layers, layout, trust_pickle)
    if not graph.is_chain:
        raise ModscopeError("the network is not a plain stack of layers: use load_graph for its unit graph")
    return list(zip(graph.names, graph.weights, strict=True))
