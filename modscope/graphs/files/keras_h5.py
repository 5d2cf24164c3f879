"""Keras files -> the unit graph ([spec §1b][spec-1b]): a full model is rebuilt as a torch module from its
config and traced; a weights-only file is read as a plain stack of Dense layers.

Read with ``h5py``; no code of the file runs, and links to other files, external raw storage and
virtual datasets are refused:

- a legacy full-model ``.h5`` / ``.hdf5`` (root attribute ``model_config``; Keras 2 and 3) or a
  Keras 3 ``.keras`` zip (``config.json`` + ``model.weights.h5``): a Sequential or Functional model
  whose layers `modscope.graphs.files.keras_layers` rebuilds in torch (channels-last tensors, so a
  Flatten is channels-last as in Keras; weights converted to torch's layouts), traced;
- a weights-only file (``save_weights``: layer groups at the root, ``model_weights/`` without a
  config, or Keras 3's ``layers/<name>/vars``): a plain stack of Dense kernels ``(in, out)`` in the
  stored layer order; anything else in it (convolutions, recurrent or normalisation layers) is
  refused, since its dataflow is in the config the file does not hold.

Weights are found by each layer's ``weight_names`` (Keras 2 names end in ``:0``, Keras 3's not),
or in Keras 3's layout by the ``name`` attribute of each ``vars`` group, in variable order.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModscopeError, first_line
from ...runtime.limits import Budget
from ..names import natural_key
from ..weight_graph import WeightGraph, check_build_memory
from .archives import Entries, open_zip
from .formats import MAX_FILE_BYTES, check_file, optional_import, refusing, symbolic_note, unreadable
from .keras_layers import KerasLayer, LayerBuilder

__all__ = ["KerasFile", "keras_graph", "keras_module", "read_keras"]

# what a config this reader does not follow raises on the way (a key missing, a value of another type)
_CONFIG_ERRORS = (KeyError, TypeError, AttributeError, ValueError, IndexError)


@dataclass
class KerasFile:
    """What a Keras file holds: the model config (None for weights only), each layer's weights
    in stored order with their names, the layers in stored order, and the file's kind (``HDF5`` or
    ``.keras``)."""

    config: dict | None
    weights: dict[str, list[np.ndarray]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    kind: str = "HDF5"
    version: str | None = None  # the Keras that wrote it, where the file says


def _h5py() -> Any:
    return optional_import("h5py", "reading Keras files needs h5py: pip install modscope[keras]")


def _text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def _strings(v: Any) -> list[str]:
    return [] if v is None else [_text(s) for s in np.asarray(v).reshape(-1)]


# -- reading -----------------------------------------------------------------------------------------
def _item(group: Any, name: str, where: str) -> Any:
    """``group[name]`` through hard / soft links inside the file only."""
    h5py = _h5py()
    for part in [p for p in name.split("/") if p]:  # down the path, one link at a time
        link = group.get(part, getlink=True)
        if link is None:
            raise ModscopeError(f"{where}: weight {name!r} is missing")
        if isinstance(link, h5py.ExternalLink):
            raise ModscopeError(f"{where}: {name!r} links to another file: refused")
        group = group[part]
    return group


def _dataset(group: Any, name: str, where: str, budget: Budget) -> np.ndarray:
    h5py = _h5py()
    ds = _item(group, name, where)
    if not isinstance(ds, h5py.Dataset):
        raise ModscopeError(f"{where}: {name!r} is not an array")
    if ds.external or ds.is_virtual:
        raise ModscopeError(f"{where}: {name!r} keeps its data in other files: refused")
    if ds.size * ds.dtype.itemsize > MAX_FILE_BYTES:
        raise ModscopeError(f"{where}: {name!r} is above the {MAX_FILE_BYTES:,}-byte limit")
    # declared shape x dtype, before reading: chunks of fill values or a gzip filter can make a
    # small file declare gigabytes
    budget.shape(ds.shape or (), ds.dtype.itemsize, f"dataset {name!r} of shape {ds.shape}")
    return np.asarray(ds[()])


def _legacy_weights(kf: KerasFile, root: Any, where: str, budget: Budget) -> None:
    """Add to ``kf`` the layer weights of the legacy layout: ``layer_names`` and each layer's
    ``weight_names``."""
    for layer in _strings(root.attrs.get("layer_names")):
        group = _item(root, layer, where)
        kf.names[layer] = _strings(group.attrs.get("weight_names"))
        kf.weights[layer] = [_dataset(group, n, where, budget) for n in kf.names[layer]]
        kf.order.append(layer)


def _v3_weights(kf: KerasFile, root: Any, where: str, budget: Budget) -> None:
    """Add to ``kf`` the layer weights of Keras 3's ``layers/<name>/vars/<i>`` layout (the user's
    layer name is the ``vars`` group's ``name`` attribute; a recurrent layer keeps its weights in
    ``cell/vars``)."""
    h5py = _h5py()
    layers = _item(root, "layers", where)
    for key in sorted(layers.keys(), key=natural_key):
        group = _item(layers, key, where)
        if not isinstance(group, h5py.Group):
            continue
        name = _text(group["vars"].attrs.get("name", key)) if "vars" in group else key
        kf.weights[name], kf.names[name] = [], []
        kf.order.append(name)
        todo = [("", group)]
        while todo:  # the layer's own vars, then nested objects' (cells, wrapped layers)
            prefix, g = todo.pop(0)
            if "vars" in g:
                vars_ = _item(g, "vars", where)
                for i in sorted(vars_.keys(), key=natural_key):
                    kf.weights[name].append(_dataset(vars_, i, where, budget))
                    kf.names[name].append(f"{prefix}vars/{i}")
            for sub in sorted(k for k in g.keys() if k != "vars"):
                child = _item(g, sub, where)
                if isinstance(child, h5py.Group):
                    todo.append((f"{prefix}{sub}/", child))


def _read_h5(
    source: Any, where: str, config: dict | None, kind: str, budget: Budget, version: Any = None
) -> KerasFile:
    h5py = _h5py()
    errors = (OSError, KeyError, ValueError, TypeError, RuntimeError)
    with refusing(errors, lambda exc: unreadable(where, "Keras HDF5 file", exc)), h5py.File(source, "r") as f:
        if config is None and "model_config" in f.attrs:
            config = _json(f.attrs["model_config"], where)
        version = f.attrs.get("keras_version", version)
        kf = KerasFile(config, kind=kind, version=None if version is None else _text(version))
        if "layer_names" in f.attrs:
            _legacy_weights(kf, f, where, budget)
        elif "model_weights" in f and "layer_names" in f["model_weights"].attrs:
            _legacy_weights(kf, _item(f, "model_weights", where), where, budget)
        elif "layers" in f:
            _v3_weights(kf, f, where, budget)
        else:
            raise ModscopeError(f"{where}: no Keras weights found (no layer_names, model_weights or layers)")
    return kf


def _json(raw: Any, where: str) -> dict:
    try:
        out = json.loads(_text(raw))
    except (ValueError, RecursionError) as exc:
        raise ModscopeError(f"{where}: the model config is not valid JSON ({first_line(exc)})") from None
    if not isinstance(out, dict):
        raise ModscopeError(f"{where}: the model config is not a Keras model config")
    return out


def read_keras(path: str | Path) -> KerasFile:
    """The config and weights of a Keras ``.h5`` / ``.hdf5`` (full model or weights only) or
    ``.keras`` file, with one-line errors."""
    path = Path(path)
    check_file(path, limit=True)
    _h5py()
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ModscopeError(f"{path}: not a readable .keras archive, truncated or corrupt (not a zip file)")
    if not zipfile.is_zipfile(path):
        return _read_h5(str(path), str(path), None, "HDF5", Budget(str(path)))
    with open_zip(path, ".keras archive") as z:
        entries = Entries(path, z, "", ".keras archive")
        if not (entries.has("config.json") and entries.has("model.weights.h5")):
            raise ModscopeError(f"{path}: not a Keras .keras archive (no config.json / model.weights.h5)")
        raw_config, data = entries.read("config.json"), entries.read("model.weights.h5")
        meta = _json(entries.read("metadata.json"), str(path)) if entries.has("metadata.json") else {}
    config = _json(raw_config, str(path))
    return _read_h5(io.BytesIO(data), str(path), config, ".keras", entries.budget, meta.get("keras_version"))


# -- weights only ------------------------------------------------------------------------------------
def _weights_only_graph(kf: KerasFile, where: str) -> WeightGraph:
    """A weights-only file: Dense kernels ``(in, out)`` chained in stored order."""
    items = []
    for layer in kf.order:
        if not kf.weights[layer]:
            continue
        kernel, *rest = kf.weights[layer]
        if kernel.ndim != 2 or len(rest) > 1 or any(r.ndim != 1 for r in rest):
            what = "convolution kernels" if kernel.ndim > 2 else "weights other than a Dense kernel and bias"
            raise ModscopeError(
                f"{where}: layer {layer} has {what}, and a weights-only Keras file does not say how "
                "the model joins its layers: save the full model (model.save('model.h5') or "
                "'model.keras') and pass that"
            )
        if not np.issubdtype(kernel.dtype, np.floating):
            raise ModscopeError(f"{where}: layer {layer} has a kernel of type {kernel.dtype}")
        items.append((f"{layer}.weight", kernel.astype(np.float64).T))  # torch's (out, in)
    if not items:
        raise ModscopeError(f"{where}: no Dense kernels found")
    for (a, wa), (b, wb) in zip(items, items[1:], strict=False):
        if wa.shape[0] != wb.shape[1]:
            raise ModscopeError(
                f"{where}: Dense kernels {a} {wa.shape[::-1]} and {b} {wb.shape[::-1]} (in x out) do not "
                "chain in stored order: save the full model"
            )
    check_build_memory([items[0][1].shape[1], *(w.shape[0] for _, w in items)])
    return WeightGraph.from_weights(
        [w for _, w in items],
        [n for n, _ in items],
        reading=f"a weights-only Keras file: a plain stack of {len(items)} Dense layers in stored order "
        "(in x out kernels)",
    )


# -- the model config --------------------------------------------------------------------------------
def _history(obj: Any, out: list) -> None:
    """The ``keras_history`` references in a Keras 3 call's arguments, in order."""
    if isinstance(obj, dict) and obj.get("class_name") == "__keras_tensor__":
        layer, node, index = obj["config"]["keras_history"]
        out.append((str(layer), int(node), int(index)))
    elif isinstance(obj, dict | list):
        for v in obj.values() if isinstance(obj, dict) else obj:
            _history(v, out)


def _calls(inbound: Any, where: str, name: Any) -> list[list[tuple[str, int, int]]]:
    """The tensors each call of layer ``name`` reads (``inbound``: its inbound nodes); a call in
    training mode (``Dropout(0.5)(x, training=True)``: batch statistics, dropout at inference) refused."""
    calls = []
    for node in inbound or []:
        refs: list = []
        if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
            _history([node.get("args", []), node.get("kwargs", {})], refs)  # initial states, masks
            kwargs = [node.get("kwargs") or {}]
        else:  # Keras 2: [[layer, call, index, kwargs], ...]
            refs = [(str(r[0]), int(r[1]), int(r[2])) for r in node]
            kwargs = [r[3] for r in node if len(r) > 3 and isinstance(r[3], dict)]
        if any(k.get("training") for k in kwargs):
            raise ModscopeError(f"{where}: Keras layer {name} is called with training=True (it computes "
                                "as in training when the model runs): not read")
        calls.append(refs)
    return calls


def _refs(v: Any) -> list[tuple[str, int, int]]:
    if v and isinstance(v[0], str):
        v = [v]
    return [(str(r[0]), int(r[1]), int(r[2])) for r in v or []]


def _model_layers(config: dict, where: str) -> tuple[list[KerasLayer], list, list, bool]:
    """Layers, the model's input and output references, and whether it is Sequential; a malformed
    config (a missing class_name, a config that is not an object, layers not a list, inbound
    nodes that are not references) is refused in one line."""
    cls, body = config.get("class_name"), config.get("config")
    sequential = cls == "Sequential"
    if not sequential and not (cls in ("Functional", "Model") and isinstance(body, dict)):
        raise ModscopeError(
            f"{where}: a Keras model of class {cls!r} is not read (Sequential and Functional are)"
        )
    with refusing(_CONFIG_ERRORS, lambda exc: _malformed(where, exc)):
        raw = body if isinstance(body, list) else (body or {}).get("layers", [])
        if not isinstance(raw, list):
            raise ModscopeError(f"{where}: malformed Keras model config (layers is not a list)")
        if sequential:
            layers = [
                KerasLayer(r["class_name"], r["config"].get("name", f"layer_{i}"), r["config"], [])
                for i, r in enumerate(raw)
            ]
            inputs, outputs = [], []
        else:  # a Functional model's layers also say the tensors each call reads
            layers = [
                KerasLayer(r["class_name"], r.get("name", r["config"].get("name")), r["config"],
                           _calls(r.get("inbound_nodes"), where, r.get("name")))
                for r in raw
            ]
            inputs, outputs = _refs(body.get("input_layers")), _refs(body.get("output_layers"))
    ok = (isinstance(r.cls, str) and isinstance(r.name, str) and isinstance(r.config, dict) for r in layers)
    if not all(ok):
        raise ModscopeError(f"{where}: malformed Keras model config (a layer's class_name, name, config)")
    return layers, inputs, outputs, sequential


def _malformed(where: str, exc: Exception) -> ModscopeError:
    """The refusal of a model config this reader does not follow (parsing it raised ``exc``)."""
    what = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else first_line(exc)
    return ModscopeError(f"{where}: malformed Keras model config ({type(exc).__name__}: {what})")


def _batch_shape(cfg: dict) -> list | None:
    return cfg.get("batch_shape") or cfg.get("batch_input_shape")


_LAYER_METHODS = frozenset(n for n in vars(LayerBuilder) if n[:1].isupper())


def keras_module(kf: KerasFile, input_shape: Sequence[int] | None = None, source: str = "model") -> tuple:
    """``(module, example_input, input_axes)``: a torch module running the Keras model of ``kf``,
    a zero example input of its declared shape (batch 1; ``input_shape`` replaces the first input's
    shape without the batch axis), and each input's feature axis for `trace_graph`."""
    import torch

    if kf.config is None:
        raise ModscopeError(f"{source}: the file holds weights only, no model config")
    layers, inputs, outputs, sequential = _model_layers(kf.config, source)

    class KerasModule(torch.nn.Module):
        def forward(self, x: Any, *more: Any) -> Any:
            """The layers (``fns``: each one's function) run on the model's inputs (Keras layout): one
            after the other (Sequential), or each call on the tensors it reads (``inputs`` and
            ``outputs``: the model's input and output tensors, as ``(layer, call, index)``)."""
            if sequential:
                for layer in layers:
                    x = fns[layer.name]([x])[0]
                return x
            values: dict[tuple[str, int, int], Any] = dict(zip(inputs, [x, *more], strict=True))
            for layer in layers:
                if layer.name not in fns:
                    continue
                for call, refs in enumerate(layer.calls):
                    for index, out in enumerate(fns[layer.name]([values[r] for r in refs])):
                        values[(layer.name, call, index)] = out
            outs = tuple(values[r] for r in outputs)
            return outs[0] if len(outs) == 1 else outs

    module = KerasModule()
    fns = _layer_functions(module, kf, layers, sequential, source)
    example, symbolic = [], []
    for k, (shape, dtype) in enumerate(_declared_inputs(kf, layers, inputs, sequential)):
        if k == 0 and input_shape is not None:
            shape = [None, *input_shape]
        if shape is None:
            raise ModscopeError(
                f"{source}: the model does not declare its input shape: pass --input-shape (batch first, "
                "channels last: 1,H,W,C) or load_graph(path, input_shape=...)"
            )
        symbolic += [f"input {k} axis {j}" for j, d in enumerate(shape) if j > 0 and d is None]
        dt = torch.int64 if isinstance(dtype, str) and "int" in dtype else torch.float32
        example.append(torch.zeros(_example_dims(shape, source), dtype=dt))
    axes = {"x" if k == 0 else f"more_{k - 1}": -1 for k in range(len(example))}  # features last

    def cannot_run(exc: Exception) -> ModscopeError:  # a config this reader does not follow, a wrong shape
        why = f"{type(exc).__name__}: {first_line(exc)}"
        note = symbolic_note(symbolic, example)
        return ModscopeError(f"{source}: cannot run the Keras model as torch ({why}){note}")

    with refusing(Exception, cannot_run), torch.no_grad():
        module.eval()(*example)
    module.symbolic = symbolic
    return module, tuple(example), axes


def _layer_functions(module: Any, kf: KerasFile, layers: list, sequential: bool, source: str) -> dict:
    """``{layer name: the torch function running it}``, the layers' weights registered on ``module``;
    a nested model, an unsupported layer or a malformed config refused in one line."""
    fns = {}
    for layer in layers:
        if layer.cls == "InputLayer" and not sequential:
            continue
        if layer.cls in ("Sequential", "Functional", "Model"):
            raise ModscopeError(f"{source}: layer {layer.name} is a nested model: not read")
        # only the builder's layer methods (Keras class names are capitalised): a class_name such
        # as "cfg" or "weights" must not reach the builder's own attributes
        if layer.cls not in _LAYER_METHODS:
            raise ModscopeError(
                f"{source}: Keras layer {layer.cls} ({layer.name}) is not supported by modscope's reader"
            )
        weights, names = kf.weights.get(layer.name, []), kf.names.get(layer.name, [])
        build = LayerBuilder(module, layer, weights, names, source, kf.version)
        with refusing(_CONFIG_ERRORS, build.malformed):
            build.check()
            fns[layer.name] = getattr(build, layer.cls)()
    return fns


def _declared_inputs(kf: KerasFile, layers: list, inputs: list, sequential: bool) -> list[tuple]:
    """Each input's ``(declared batch shape, dtype)`` (the shape None where undeclared; symbolic
    sizes None)."""
    if sequential:
        first = layers[0].config if layers else {}
        body = kf.config.get("config")  # an old Sequential's config is the list of its layers
        shape = _batch_shape(first) or (body.get("build_input_shape") if isinstance(body, dict) else None)
        if shape is None and layers and layers[0].cls == "Dense":
            w = kf.weights.get(layers[0].name)
            shape = [None, w[0].shape[0]] if w else None
        dtype = first.get("dtype") if layers and layers[0].cls == "InputLayer" else None
        return [(shape, "int64" if layers and layers[0].cls == "Embedding" else dtype)]
    by_name = {layer.name: layer for layer in layers}
    configs = [by_name[name].config if name in by_name else {} for name, _, _ in inputs]
    return [(_batch_shape(cfg), cfg.get("dtype")) for cfg in configs]


def _example_dims(shape: Any, source: str) -> list[int]:
    """A declared batch shape as the example's dims: batch 1 whatever the file says, symbolic
    sizes 1, every other size a positive integer, the whole within the memory budget."""
    if not isinstance(shape, list | tuple) or not shape:
        raise ModscopeError(f"{source}: malformed input shape {str(shape)[:60]!r}")
    dims = [1]
    for s in shape[1:]:
        if s is None:
            dims.append(1)
        elif isinstance(s, int) and not isinstance(s, bool) and s > 0:
            dims.append(s)
        else:
            raise ModscopeError(f"{source}: the input shape {str(shape)[:60]} has a size {s!r}, not positive")
    Budget(source).shape(dims, 8, f"the example input of shape {tuple(dims)}")
    return dims


def keras_graph(
    path: str | Path, *, kernel_norm: str = "1", input_shape: Sequence[int] | None = None
) -> WeightGraph:
    """The unit graph of a Keras ``.h5`` / ``.hdf5`` / ``.keras`` file: a full model traced from a
    torch module rebuilt from its config, or a weights-only file's plain stack of Dense layers.
    ``input_shape``: the first input's shape without the batch axis, when the config lacks it."""
    from ..tracing import trace_graph

    kf = read_keras(path)
    if kf.config is None:
        return _weights_only_graph(kf, str(path))
    module, example, axes = keras_module(kf, input_shape, str(path))
    try:
        graph = trace_graph(module, example, kernel_norm=kernel_norm, input_axes=axes)
    except ModscopeError as exc:
        raise ModscopeError(f"{exc}{symbolic_note(module.symbolic, example)}") from None
    reading = f"a Keras {kf.kind} model, traced"
    if input_shape is not None:
        reading += f" on an input of shape {(1, *(int(d) for d in input_shape))}"
    if module.symbolic:
        reading += f"; open input sizes ({', '.join(module.symbolic)}) set to 1 (--input-shape sets them)"
    return graph.read_as(reading)
