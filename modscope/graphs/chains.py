"""A state dict of Linear weights -> the matrices in forward order (a plain chain, spec §1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ..errors import ModscopeError
from .arrays import as_float64
from .names import EMBEDDING, natural_key

__all__ = ["Layout", "chain_by_shape", "chains", "ordered_weights"]

Layout = Literal["out_in", "in_out"]


def chains(items: Sequence[tuple[str, np.ndarray]]) -> bool:
    """Whether each matrix (out x in) feeds the next one."""
    return all(b.shape[1] == a.shape[0] for (_, a), (_, b) in zip(items[:-1], items[1:], strict=False))


def chain_by_shape(items: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]] | None:
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
    chained = chain_by_shape(items)
    if chained is not None:
        return chained
    shapes = ", ".join(f"{k} {a.shape[0]}x{a.shape[1]}" for k, a in items[:8])
    hint = "" if layout == "in_out" else "; for in x out (Keras/JAX) kernels use layout 'in_out'"
    raise ModscopeError(f"weight shapes (out x in) do not chain in any order: {shapes}{hint}")
