"""Loaders: checkpoints and in-memory models -> an ordered list of weight matrices -> `WeightGraph`.

Accepted sources: modscope checkpoints, plain torch state_dicts of Linear stacks
(``.pt``/``.pth``/``.bin``/``.ckpt``), ``.safetensors``, ``.npz``, an ``nn.Module`` or a
state-dict ``dict`` in memory. Pickled files are always read with
``torch.load(weights_only=True)``: a file that would need code to run is refused.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint, from_payload, is_checkpoint_payload
from .errors import ModscopeError
from .graph import WeightGraph

Layout = Literal["out_in", "in_out"]
Source = str | os.PathLike | nn.Module | Mapping | Checkpoint

# Learned lookup tables are not Linear layers: leave them out of the chain.
_EMBEDDING = re.compile(r"(^|[._])(embed|embedding|embeddings|emb|wte|wpe)([._]|$)", re.IGNORECASE)
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
# Checkpoint files above this size are refused before anything is read.
MAX_FILE_BYTES = 8 * 2**30


class UntrustedPickleWarning(UserWarning):
    """A file is being unpickled without the weights-only safeguard."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ModscopeError(f"{path}: no such file")
    if path.is_dir():
        raise ModscopeError(f"{path}: is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise ModscopeError(f"{path}: empty file")


def safe_torch_load(path: str | os.PathLike, trust_pickle: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors.

    ``trust_pickle=True`` lifts the restriction (``weights_only=False``): the file's pickled
    objects are rebuilt, which runs whatever code they name. Only for files you made.
    """
    path = Path(path)
    _check_file(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ModscopeError(
            f"{path}: {path.stat().st_size:,} bytes is above the {MAX_FILE_BYTES:,}-byte limit"
        )
    if trust_pickle:
        warnings.warn(
            f"{path}: loading with trust_pickle: any code pickled in this file runs now",
            UntrustedPickleWarning,
            stacklevel=2,
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise ModscopeError(
                f"{path}: refused: loading it would run pickled code "
                "(only tensors and plain containers are accepted)"
            ) from None
        raise ModscopeError(f"{path}: not a readable torch checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # torch's unpickler raises many types on corrupt bytes
        raise ModscopeError(
            f"{path}: not a readable torch checkpoint, truncated or corrupt ({_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


# -- state dict -> ordered weights ----------------------------------------------------------
def _chains(ws: Sequence[tuple[str, np.ndarray]]) -> bool:
    return all(b.shape[1] == a.shape[0] for (_, a), (_, b) in zip(ws[:-1], ws[1:], strict=False))


def _chain_by_shape(items: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]] | None:
    """Order matrices so that each one's out-dim feeds the next one's in-dim.

    Ties (equal shapes) keep the given order. ``None`` when no chain uses every matrix.
    """
    outs = [w.shape[0] for _, w in items]
    starts = [i for i, (_, w) in enumerate(items) if w.shape[1] not in outs] or [0]
    for start in starts:
        order, used = [start], {start}
        while len(order) < len(items):
            want = items[order[-1]][1].shape[0]
            nxt = next((i for i in range(len(items)) if i not in used and items[i][1].shape[1] == want), None)
            if nxt is None:
                break
            order.append(nxt)
            used.add(nxt)
        if len(order) == len(items):
            return [items[i] for i in order]
    return None


def _to_numpy(name: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point()):
            raise ModscopeError(f"{name}: weights must be floating point, got dtype {value.dtype}")
        return value.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ModscopeError(f"{name}: weights must be floating point, got dtype {arr.dtype}")
    return arr


def ordered_weights(
    tensors: Mapping[str, Any],
    layers: Sequence[str] | None = None,
    layout: Layout = "out_in",
) -> list[tuple[str, np.ndarray]]:
    """Pick the Linear weight matrices of a state dict and put them in forward order.

    ``layers`` names the weight tensors explicitly; otherwise every 2-D ``*weight`` tensor
    (embeddings excluded) is used, in stored order, then natural-sorted key order, then
    any order in which the shapes chain. ``layout="in_out"`` reads Keras/JAX-style
    ``in x out`` kernels. Raises `ModscopeError` if the shapes do not chain.
    """
    if layout not in ("out_in", "in_out"):
        raise ModscopeError(f"unknown weight layout {layout!r}; use 'out_in' (torch) or 'in_out'")
    if layers is None:
        from .cnn import channel_weights, holds_conv

        if holds_conv(tensors):  # Conv2d kernels: the channel graph, filters as units (modscope.cnn)
            return channel_weights(tensors)
    if layers is not None:
        missing = [k for k in layers if k not in tensors]
        if missing:
            raise ModscopeError(f"no tensor named {missing[0]!r}; available: {', '.join(list(tensors)[:12])}")
        names = list(layers)
    else:
        two_d = [
            k for k, v in tensors.items() if getattr(v, "ndim", np.ndim(v)) == 2 and not _EMBEDDING.search(k)
        ]
        named = [k for k in two_d if k.endswith("weight") or k.endswith("kernel")]
        names = named or two_d
    if not names:
        raise ModscopeError("no 2-D weight matrices found (is this a stack of Linear layers?)")
    items = []
    for k in names:
        a = _to_numpy(k, tensors[k])
        if a.ndim != 2:
            raise ModscopeError(f"{k}: a Linear weight must be 2-D, got shape {tuple(a.shape)}")
        items.append((k, a.T if layout == "in_out" else a))
    if layers is not None or _chains(items):
        return items
    by_key = sorted(items, key=lambda kv: _natural_key(kv[0]))
    if _chains(by_key):
        return by_key
    chained = _chain_by_shape(items)
    if chained is not None:
        return chained
    shapes = ", ".join(f"{k} {a.shape[0]}x{a.shape[1]}" for k, a in items[:8])
    hint = "" if layout == "in_out" else "; for in x out (Keras/JAX) kernels use layout 'in_out'"
    raise ModscopeError(f"weight shapes (out x in) do not chain in any order: {shapes}{hint}")


def _unwrap_state_dict(obj: Any, source: str) -> Mapping[str, Any]:
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor | np.ndarray) for v in obj.values()):
            return obj
        for key in _STATE_DICT_KEYS:
            inner = obj.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor | np.ndarray) for v in inner.values())
            ):
                return inner
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor | np.ndarray)}
        if tensors:
            return tensors
    raise ModscopeError(f"{source}: no state_dict of weight tensors found")


def load_weights(
    source: Source,
    layers: Sequence[str] | None = None,
    layout: Layout = "out_in",
    trust_pickle: bool = False,
) -> list[tuple[str, np.ndarray]]:
    """``[(name, W)]`` in forward order, each ``W`` an ``(out, in)`` float array."""
    if isinstance(source, Checkpoint):
        return _checkpoint_weights(source, layers, layout)
    if isinstance(source, nn.Module):
        if layers is None:
            if any(isinstance(m, nn.Conv2d) for m in source.modules()):
                from .cnn import module_channel_weights

                return module_channel_weights(source)
            linears = [(n, m) for n, m in source.named_modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ModscopeError("the module has no nn.Linear layers")
            items = [(f"{n}.weight", _to_numpy(n, m.weight)) for n, m in linears]
            if not _chains(items):
                raise ModscopeError("the module's Linear layers do not chain in registration order")
            return items
        return ordered_weights(source.state_dict(), layers, layout)
    if isinstance(source, Mapping):
        if is_checkpoint_payload(source):
            return _checkpoint_weights(from_payload(dict(source)), layers, layout)
        return ordered_weights(_unwrap_state_dict(source, "state dict"), layers, layout)
    if not isinstance(source, str | os.PathLike):
        raise ModscopeError(f"cannot load weights from a {type(source).__name__}")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return ordered_weights(_read_safetensors(path), layers, layout)
    if suffix == ".npz":
        return ordered_weights(_read_npz(path), layers, layout)
    obj = safe_torch_load(path, trust_pickle=trust_pickle)
    # whole pickled models (only loadable with trust_pickle), bare or under a usual key
    module = obj if isinstance(obj, nn.Module) else None
    if isinstance(obj, Mapping) and module is None:
        module = next((obj[k] for k in _STATE_DICT_KEYS if isinstance(obj.get(k), nn.Module)), None)
    if module is not None:
        return load_weights(module, layers, layout)
    if is_checkpoint_payload(obj):
        return _checkpoint_weights(from_payload(obj, str(path)), layers, layout)
    return ordered_weights(_unwrap_state_dict(obj, str(path)), layers, layout)


def _checkpoint_weights(ckpt: Checkpoint, layers, layout) -> list[tuple[str, np.ndarray]]:
    sd = ckpt.task_ordered_state_dict()  # inputs / outputs back in the task's feature order
    if layers is None:
        n = len(ckpt.architecture.widths) - 1
        layers = [f"layers.{i}.weight" for i in range(n)]
    return ordered_weights(sd, layers, layout)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _check_file(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModscopeError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    _check_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ModscopeError(f"{path}: refused: the .npz holds pickled objects") from None
        raise ModscopeError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise ModscopeError(
            f"{path}: not a readable .npz file, truncated or corrupt ({_first_line(exc)})"
        ) from None


def load_graph(
    source: Source,
    layers: Sequence[str] | None = None,
    layout: Layout = "out_in",
    trust_pickle: bool = False,
) -> WeightGraph:
    """Build the `WeightGraph` of a checkpoint path, state dict, `Checkpoint` or ``nn.Module``.

    A modscope checkpoint's input and output nodes come in the task's feature order,
    whatever BIMT swapped.
    """
    from .spectral import check_memory

    items = load_weights(source, layers, layout, trust_pickle=trust_pickle)
    if items and all(w.ndim == 2 for _, w in items):
        # refuse a network that cannot be scored in the memory there is, before the float64 copies
        check_memory([items[0][1].shape[1], *(w.shape[0] for _, w in items)])
    return WeightGraph.from_weights([w for _, w in items], [n for n, _ in items])
