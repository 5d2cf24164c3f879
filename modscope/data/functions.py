"""A *function* of a network: a piece of its job, defined by data ([spec §5][spec-5]).

A function is a subset of the examples and/or a subset of the output groups. Masks learn one
subnetwork per function; knockouts score every function separately. Researchers name their
own: classes (``animals=2,3,4,5,6,7`` or by class name, ``footwear=Sandal,Sneaker,Ankle boot``),
output groups (``digit0=outputs:0``), all classes but one per class (`class_functions`), example
indices, or a predicate over the examples (`function_where`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModscopeError

__all__ = ["CONTROL", "Function", "class_functions", "function_where", "parse_function"]

# The control mask's function: all of the data, every output.
CONTROL = "control"


@dataclass(frozen=True)
class Function:
    """One function of a task.

    ``train_index`` / ``test_index``: LongTensors of example indices (``None`` = all).
    ``groups``: which output groups the function asks for (``None`` = all); for MSE tasks the
    groups are single output columns.
    """

    name: str
    train_index: Any = None
    test_index: Any = None
    groups: tuple[int, ...] | None = None


def _classes(labels: Any, classes: Sequence[int]) -> np.ndarray:
    y = labels[:, 0].numpy() if hasattr(labels, "numpy") else np.asarray(labels)[:, 0]
    return np.isin(y, np.asarray(classes, dtype=np.int64))


def _class_ids(data: Any, names: Sequence[str], spec: str) -> list[int]:
    n = data.n_classes
    out = []
    for text in names:
        text = text.strip()
        if text.lstrip("-").isdigit():
            c = int(text)
        elif data.class_names is not None and text in data.class_names:
            c = data.class_names.index(text)
        else:
            known = f"; classes are 0..{n - 1}" if n else ""
            named = f" or {', '.join(data.class_names)}" if data.class_names else ""
            raise ModscopeError(f"function {spec!r}: no class {text!r}{known}{named}")
        if n is not None and not 0 <= c < n:
            raise ModscopeError(f"function {spec!r}: class {c} does not exist (classes 0..{n - 1})")
        out.append(c)
    return out


def parse_function(spec: str, data: Any) -> Function:
    """``name=2,3,4`` (classes, by number or by name), ``name=outputs:0,1`` (output groups), or
    ``name=not:3`` (every class but 3): a `Function` of ``data`` (a `modscope.data.Data`)."""
    name, sep, body = spec.partition("=")
    name, body = name.strip(), body.strip()
    if not sep or not name or not body:
        raise ModscopeError(f"a function is name=classes (e.g. animals=2,3,4), got {spec!r}")
    if body.startswith("outputs:"):
        groups = tuple(int(g) for g in body[len("outputs:") :].split(",") if g.strip())
        n_groups = len(data.output_groups) if data.output_groups else None
        if not groups or (n_groups is not None and not all(0 <= g < n_groups for g in groups)):
            raise ModscopeError(f"function {spec!r}: output groups must be 0..{(n_groups or 1) - 1}")
        return Function(name, groups=groups)
    if data.kind != "classification" or data.metric is not None:
        raise ModscopeError(f"function {spec!r}: class subsets need classification data")
    negate = body.startswith("not:")
    classes = _class_ids(data, (body[4:] if negate else body).split(","), spec)
    if not classes:
        raise ModscopeError(f"function {spec!r} names no class")

    def kept(split: Any) -> np.ndarray:
        keep = _classes(split.labels(), classes)
        return ~keep if negate else keep

    return _from_splits(
        name, data, kept, f"function {spec!r}: no test example has {'another' if negate else 'that'} class"
    )


def _from_splits(name: str, data: Any, kept: Callable[[Any], np.ndarray], empty: str) -> Function:
    """The function of the examples ``kept(split)`` marks in each split of ``data`` (``(n,)`` bool;
    None where there is no such split); ``empty``: the error when no test example is kept."""
    import torch

    train, test = (None if s is None else torch.from_numpy(np.flatnonzero(kept(s)).astype(np.int64))
                   for s in (data.train, data.test))
    if test.numel() == 0:
        raise ModscopeError(empty)
    return Function(name, train_index=train, test_index=test)


def class_functions(data: Any) -> dict[str, Function]:
    """``not-<c>`` for every class ``c``: the examples whose label is not ``c`` (Csordás et al.'s
    per-class removal: a mask trained on all but one class)."""
    if data.n_classes is None:
        raise ModscopeError("per-class functions need a one-group classifier")
    return {
        f"not-{c}": parse_function(f"not-{c}=not:{data.class_names[c] if data.class_names else c}", data)
        for c in range(data.n_classes)
    }


def function_where(
    name: str, data: Any, predicate: Callable[[Any, Any], Any], batch_size: int = 1024
) -> Function:
    """The examples for which ``predicate(x, y)`` (a ``(B,)`` bool tensor per batch) holds, in
    both splits, computed batch by batch."""

    def kept(split: Any) -> np.ndarray:
        keep = np.zeros(len(split), dtype=bool)
        for idx, x, y in split.batches(batch_size):
            hit = predicate(x, y)
            hit = hit.cpu().numpy() if hasattr(hit, "cpu") else np.asarray(hit)
            if hit.shape != (len(idx),) or hit.dtype != bool:
                raise ModscopeError(f"function {name}: the predicate must give a ({len(idx)},) bool tensor")
            keep[idx] = hit
        return keep

    return _from_splits(name, data, kept, f"function {name}: no test example satisfies the predicate")
