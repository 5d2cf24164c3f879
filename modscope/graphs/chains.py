"""A state dict of Linear weights -> the matrices in forward order (a plain chain, [spec §1][spec-1])."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ..errors import ModscopeError
from .arrays import as_float64
from .names import EMBEDDING, natural_key

__all__ = ["Layout", "chains", "ordered_weights"]

Layout = Literal["out_in", "in_out"]


def chains(items: Sequence[tuple[str, np.ndarray]]) -> bool:
    """Whether each matrix (out x in) feeds the next one."""
    return all(b.shape[1] == a.shape[0] for (_, a), (_, b) in zip(items[:-1], items[1:], strict=False))


def ordered_weights(
    tensors: Mapping[str, Any],
    layers: Sequence[str] | None = None,
    layout: Layout = "out_in",
) -> list[tuple[str, np.ndarray]]:
    """Pick the Linear weight matrices of a state dict and put them in forward order.

    ``layers`` names the weight tensors explicitly; otherwise every 2-D ``*weight`` tensor
    (embeddings excluded) is used, in stored order, or else in natural-sorted key order
    (``.safetensors`` files store keys sorted). Never in an order found by matching shapes: that
    chains matrices that do not follow each other (a transformer's). ``layout="in_out"`` reads
    Keras/JAX-style ``in x out`` kernels. Raises `ModscopeError` if the shapes do not chain.
    """
    if layout not in ("out_in", "in_out"):
        raise ModscopeError(f"unknown weight layout {layout!r}; use 'out_in' (torch) or 'in_out'")
    if layers is not None:
        missing = [k for k in layers if k not in tensors]
        if missing:
            raise ModscopeError(f"no tensor named {missing[0]!r}; available: {', '.join(list(tensors)[:12])}")
        names = list(layers)
    else:
        two_d = [
            k for k, v in tensors.items() if getattr(v, "ndim", np.ndim(v)) == 2 and not EMBEDDING.search(k)
        ]
        named = [k for k in two_d if k.endswith("weight") or k.endswith("kernel")]
        names = named or two_d
    if not names:
        raise ModscopeError("no 2-D weight matrices found (is this a stack of Linear layers?)")
    items = []
    for k in names:
        a = as_float64(k, tensors[k])
        if a.ndim != 2:
            raise ModscopeError(f"{k}: a Linear weight must be 2-D, got shape {tuple(a.shape)}")
        items.append((k, a.T if layout == "in_out" else a))
    if layers is not None or chains(items):
        return items
    by_key = sorted(items, key=lambda kv: natural_key(kv[0]))
    if chains(by_key):
        return by_key
    shapes = ", ".join(f"{k} {a.shape[0]}x{a.shape[1]}" for k, a in items[:8])
    raise ModscopeError(
        f"weight shapes ({layout.replace('_', ' x ')}) do not chain in stored or key order: {shapes}; "
        "a network that is not a plain stack needs its module (example_input=...) or a .pt2 archive"
    )
