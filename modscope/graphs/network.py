"""One network object from reading to every analysis: `Network`, made once by `network`.

A `Network` holds the unit graph ([spec §1][spec-1], [§1b][spec-1b]), what was read and how, the
torch module when an analysis needs to run it (the one given, or a zero-argument ``loader`` that
builds it on first use, so a weights file is scored without importing torch), the example input
it was traced on, and where each unit group is read (`Site`, for lesions).

How a source is read, in order (the graph's ``reading`` says which way was taken):

- a `Network`: itself; a `WeightGraph`: itself, wrapped;
- a modscope checkpoint (a path, a payload dict or a `Checkpoint`): its MLP, inputs and outputs in
  the task's order (a `Checkpoint` also gives the loader of its module);
- an ``nn.Module``: traced with ``torch.export`` on ``example_input`` (`modscope.graphs.tracing`);
  without one, the weights-only family (`modscope.graphs.stacks`): modscope's own MLP and an
  ``nn.Sequential`` of Linear layers and weightless layers (or a plain conv stack), because their
  order is their dataflow; any other module has its order in its forward, and is refused;
- a state dict (in memory, ``.pt``/``.pth``/``.bin``/``.ckpt``, ``.safetensors``, ``.npz``): a known
  family recognised by its key names (`modscope.graphs.families`: torchvision CNNs, BERT, GPT-2,
  LLaMA, T5, ViT, ...; a ``config.json`` beside the file supplies what no shape holds), traced from
  modscope's reference module as tracing the real model would; else a plain stack of Linear layers
  (stored, then natural key order; the ``in x out`` layout of Keras and JAX detected when only it
  chains) or a plain conv stack. Key names that say the network is not a plain stack (attention,
  recurrent, residual shortcuts) are refused, never chained;
- ``.onnx`` and Keras files: rebuilt as torch ops and traced; ``.pt2`` (``torch.export``
  archives) and TorchScript archives: read without running their code.

Files are read by the safe readers of `modscope.graphs.files.formats`: a file that would need code
to run is refused unless ``trust_pickle``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import ModscopeError
from .cnn import FlattenOrder
from .families import family_graph, match_family, read_config
from .files import formats
from .norms import check_norm
from .stacks import (
    LayoutOption,
    StackReading,
    linear_sites,
    linear_stack,
    module_stack,
    payload_stack,
    state_stack,
)
from .weight_graph import WeightGraph

if TYPE_CHECKING:
    from torch import nn

    from .tracing.incidence import ParameterMap
    from .tracing.sites import Site

__all__ = ["Network", "Source", "network"]

Source = Union[str, os.PathLike, Mapping[str, Any], "nn.Module", WeightGraph, "Network", Any]


@dataclass(frozen=True, eq=False)
class Network:
    """A network as every analysis takes it.

    ``graph``: its unit graph. ``source``: what was read (a path, ``"state dict"``,
    ``"checkpoint"``, a module's class name, ``"graph"``). ``module``: the ``nn.Module`` read or
    traced (None when only weights were read); ``loader``: a zero-argument callable that builds
    the module when an analysis needs to run it (a `Checkpoint`'s ``model``), called at most
    once (`torch_module`). ``example_input``: what the module was traced on (a tensor or a tuple
    of the forward's arguments), None when it was not traced. ``sites``: for every read of a
    unit group by a layer with weights, where it is read (`modscope.graphs.tracing.Site`: the
    module, its input or parameter, the graph node of each feature); None when unknown (a
    weights file, a conv stack read without a trace). ``parameters``: where each parameter's
    entries write and read units (`modscope.graphs.tracing.incidence.ParameterMap`, recorded by
    the trace; masks count on it); None when the network was not traced.
    """

    graph: WeightGraph
    source: str = "graph"
    module: Any = None
    loader: Callable[[], Any] | None = None
    example_input: Any = None
    sites: tuple[Site, ...] | None = None
    parameters: ParameterMap | None = None
    _built: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def reading(self) -> str:
        """How the source was read (the graph's ``reading``)."""
        return self.graph.reading

    def __repr__(self) -> str:  # the module, its input and the sites would fill a screen
        module = type(self.module).__name__ if self.module is not None else None
        sites = None if self.sites is None else len(self.sites)
        return f"Network({self.source!r}, {self.graph!r}, module={module}, sites={sites})"

    @property
    def has_module(self) -> bool:
        """Whether the network can be run: a module was read, or a loader builds one."""
        return self.module is not None or self.loader is not None

    def torch_module(self) -> nn.Module:
        """The ``nn.Module``: the one read, else the loader's (built on the first call, then kept).
        Refuses in one line when the network was read from weights alone."""
        if self.module is not None:
            return self.module
        if self.loader is None:
            raise ModscopeError(
                f"{self.source} was read as {self.reading}, weights without code: this analysis runs "
                "the network, so pass its nn.Module (or a modscope Checkpoint) instead"
            )
        if "module" not in self._built:
            self._built["module"] = self.loader()
        return self._built["module"]


def _is_module(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _check_options(
    layout: str, map_shape: Sequence[int] | None, input_shape: Sequence[int] | None
) -> tuple[int, ...] | None:
    if layout not in ("auto", "out_in", "in_out"):
        raise ModscopeError(f"unknown weight layout {layout!r}; use 'auto', 'out_in' (torch) or 'in_out'")
    if map_shape is not None and (len(map_shape) != 2 or min(map_shape) < 1):
        raise ModscopeError(f"a map shape is (H, W) with positive sizes, got {map_shape}")
    if input_shape is None:
        return None
    shape = tuple(int(d) for d in input_shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ModscopeError(f"an input shape is batch first with positive sizes (1,3,32,32), got {shape}")
    return shape


def network(
    source: Source,
    example_input: Any = None,
    *,
    layers: Sequence[str] | None = None,
    layout: LayoutOption = "auto",
    trust_pickle: bool = False,
    kernel_norm: str = "1",
    flatten: FlattenOrder | None = None,
    map_shape: tuple[int, int] | None = None,
    bn_eps: float | None = None,
    input_shape: Sequence[int] | None = None,
    input_axis: int | None = None,
    input_axes: dict[str, int] | None = None,
    kwargs: dict | None = None,
    keep_dead_ends: bool = False,
) -> Network:
    """The `Network` of a path, state dict, `Checkpoint`, ``nn.Module`` or `WeightGraph`, read once.

    ``example_input``: for a module, a tensor (or tuple of the forward's positional arguments;
    ``kwargs`` its keyword arguments) to trace it with ``torch.export``. ``layers``: the weight
    tensors of a plain stack, in forward order. ``layout``: ``"auto"`` (torch's ``out x in``, or
    ``in x out`` when only that chains), ``"out_in"`` or ``"in_out"``. ``kernel_norm``: the norm
    of a kernel / gate-row / map slice. ``flatten``: a state-dict CNN's flatten order
    (``"channel_major"`` or ``"channel_last"``), needed when its head reads a map of several
    positions; ``map_shape``: that map's ``(H, W)`` (the 1-norm of a map depends on it; a state
    dict does not hold it); ``bn_eps``: a state dict's BatchNorm eps (not stored in it; default
    torch's 1e-5, and the reading says it was assumed). ``input_shape``: batch first, the shape
    of the input an ``.onnx`` or Keras file (or a module, instead of ``example_input``) is traced
    on, where the file leaves sizes open (an image's height and width) or declares none.
    ``input_axis``: a traced module's first input's feature axis, when the tracer's guess
    (channels of a map, the axis a 3-D input's first reader reads, else the last) is wrong;
    ``input_axes``: the same by the forward's argument name. ``keep_dead_ends``: keep units that
    reach no output (queries and keys). A modscope checkpoint's input and output nodes come in
    the task's feature order, whatever BIMT swapped.
    """
    if isinstance(source, Network):
        return source
    if isinstance(source, WeightGraph):
        return Network(source)
    check_norm(kernel_norm)  # for every source: a Linear stack reads no kernel, yet a typo is refused
    shape = _check_options(layout, map_shape, input_shape)
    how = StackReading(
        layout, kernel_norm, flatten, None if map_shape is None else tuple(map_shape), bn_eps, shape
    )
    loader = None
    if callable(getattr(source, "to_payload", None)):  # a Checkpoint object: its module on demand
        loader = getattr(source, "model", None)
        source = source.to_payload()
    if _is_module(source):
        if example_input is None and shape is not None:
            from .files.user_model import example_tensor

            example_input = example_tensor(shape)
        return _module_network(
            source, layers, example_input, kernel_norm, input_axis, kwargs=kwargs, input_axes=input_axes,
            keep_dead_ends=keep_dead_ends,
        )
    if input_axis is not None or input_axes is not None:
        raise ModscopeError("input_axis goes with a module traced on an example input")
    if example_input is not None:
        raise ModscopeError("example_input traces a module; the source is not an nn.Module")
    if isinstance(source, Mapping):
        if shape is not None:
            raise ModscopeError(
                "an input shape goes with a module, an .onnx or a Keras file, not a state dict"
            )
        if formats.is_checkpoint_payload(source):
            graph = payload_stack(source, layers, "checkpoint")
            sites = linear_sites(graph) if loader is not None and layers is None else None
            return Network(graph, "checkpoint", loader=loader, sites=sites)
        tensors = formats.unwrap_state_dict(source, "state dict")
        return Network(_state_graph(tensors, layers, how, "state dict"), "state dict")
    if not isinstance(source, str | os.PathLike):
        raise ModscopeError(f"cannot load weights from a {type(source).__name__}")
    return _file_network(Path(source), layers, trust_pickle, how)


def _state_graph(
    tensors: Mapping[str, Any], layers: Sequence[str] | None, how: StackReading, source: str
) -> WeightGraph:
    """The graph of a state dict: a known family traced from its reference module (a file's
    ``config.json`` beside it supplies what no shape holds), else a plain stack, else a refusal."""
    if layers is None and match_family(tensors) is not None:
        path = Path(source)
        config = read_config(path.parent) if path.is_file() else None
        try:
            return family_graph(tensors, kernel_norm=how.kernel_norm, config=config).graph
        except ModscopeError as exc:
            raise ModscopeError(f"{source}: {exc}") from None
    return state_stack(tensors, layers, how, source)


def _module_network(
    module: Any, layers: Sequence[str] | None, example_input: Any, kernel_norm: str,
    input_axis: int | None = None, **trace: Any,
) -> Network:
    """A module traced on its example input, else read as a plain stack (weights only)."""
    name = type(module).__name__
    if example_input is None:
        graph = module_stack(module, layers, kernel_norm)
        sites = linear_sites(graph) if layers is None and linear_stack(module) else None
        return Network(graph, name, module=module, sites=sites)
    from .tracing import trace_network

    traced = trace_network(module, example_input, kernel_norm=kernel_norm, input_axis=input_axis, **trace)
    graph = traced.graph
    axis = "" if input_axis is None else f", the input's features on axis {input_axis}"
    graph = graph.read_as(
        f"traced with torch.export: {len(graph.sizes)} unit groups, {len(graph.weights)} edge sets{axis}"
    )
    return Network(graph, name, module=module, example_input=example_input, sites=traced.sites,
                   parameters=traced.parameters)


_MODEL_FILES = (".onnx", ".h5", ".hdf5", ".keras")  # rebuilt as torch ops and traced


def _model_file_graph(path: Path, suffix: str, how: StackReading) -> WeightGraph:
    """An ``.onnx`` or Keras file rebuilt as torch ops and traced (none of the file's code runs)."""
    if suffix == ".onnx":
        from .files.onnx_model import onnx_graph

        return onnx_graph(path, kernel_norm=how.kernel_norm, input_shape=how.input_shape)
    from .files.keras_h5 import keras_graph

    shape = None if how.input_shape is None else how.input_shape[1:]  # Keras: without the batch
    return keras_graph(path, kernel_norm=how.kernel_norm, input_shape=shape)


def _pt2_graph(path: Path, kernel_norm: str) -> WeightGraph:
    """A ``torch.export`` archive: its program traced, no code run."""
    from .files.archives import read_pt2
    from .tracing import trace_program

    program = read_pt2(path)
    try:
        graph = trace_program(program, kernel_norm=kernel_norm)
    except ModscopeError:
        raise
    except (IndexError, KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        # the archive's shapes are the file's word: sizes that disagree with its weights
        raise ModscopeError(
            f"{path}: the program's shapes do not agree with its weights ({type(exc).__name__}: "
            f"{str(exc).strip()[:160]})"
        ) from None
    return graph.read_as("a torch.export archive (.pt2), traced")


def _file_network(path: Path, layers: Sequence[str] | None, trust_pickle: bool, how: StackReading) -> Network:
    from .files.archives import archive_kind, read_torchscript

    suffix, where = path.suffix.lower(), str(path)
    kind = archive_kind(path) if suffix not in (".safetensors", ".npz", *_MODEL_FILES) else None
    pt2 = kind == "pt2" or suffix == ".pt2"
    if layers is not None and (pt2 or suffix in _MODEL_FILES):
        raise ModscopeError(f"{path}: layers name the tensors of a state dict; this file is traced whole")
    if suffix in _MODEL_FILES:
        return Network(_model_file_graph(path, suffix, how), where)
    if how.input_shape is not None:
        raise ModscopeError(
            f"{path}: an input shape goes with a module, an .onnx or a Keras file; this file's weights "
            "are read without running it"
        )
    if pt2:
        return Network(_pt2_graph(path, how.kernel_norm), where)
    if kind == "torchscript":  # weights only: the archive's code is never run
        try:
            graph = _state_graph(read_torchscript(path), layers, how, where)
        except ModscopeError as exc:
            raise ModscopeError(
                f"a TorchScript archive, read for its weights only (its code is not run): {exc}"
            ) from None
        return Network(
            graph.read_as(f"a TorchScript archive (weights read, its code not run): {graph.reading}"), where
        )
    if suffix in (".safetensors", ".npz"):
        tensors = formats.read_safetensors(path) if suffix == ".safetensors" else formats.read_npz(path)
        return Network(_state_graph(tensors, layers, how, where), where)
    obj = formats.safe_torch_load(path, trust_pickle=trust_pickle)
    # whole pickled models (only loadable with trust_pickle), bare or under a usual key
    module = obj if _is_module(obj) else None
    if isinstance(obj, Mapping) and module is None:
        module = next((obj[k] for k in formats.STATE_DICT_KEYS if _is_module(obj.get(k))), None)
    if module is not None:
        return replace(_module_network(module, layers, None, how.kernel_norm), source=where)
    if formats.is_checkpoint_payload(obj):
        return Network(payload_stack(obj, layers, where), where)
    return Network(_state_graph(formats.unwrap_state_dict(obj, where), layers, how, where), where)
