"""Where each unit is read: the places a lesion silences it ([spec §4][spec-4] on any network, [§1b][spec-1b]
units).

A unit is lesioned by replacing its value wherever a layer with weights reads it (zero, or its
mean over the data): it then contributes nothing (or a constant) downstream, which is what
"the unit outputs zero" means for a residual stream, an attention value dimension or a hidden
unit alike. Every read the tracer saw becomes a `Site`:

- ``"input"``: a module's forward input, changed by a forward pre-hook; valid when the op reads
  the module's argument directly or through views that keep its feature axis (``nn.Linear``,
  convolutions, recurrent layers and cells, ``nn.MultiheadAttention``, GPT-2's ``Conv1D``);
- ``"parameter"``: reads inside one module that no hook can reach (an ``nn.LSTM``'s recurrent
  weights, its upper layers reading the lower ones, a cell's recurrent weights): the columns of
  that parameter, swapped for a changed copy while the module runs.

A read that fits neither (a weight applied inside a module's forward after other ops) has no
site; lesioning units read there is refused, naming the module.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .interpreter import Interpreter, module_at, op_name

__all__ = ["VIEW_OPS", "Site", "locate_sites"]

# ops between a module's input and the op that reads it that keep each feature where it is
VIEW_OPS = frozenset(
    """view reshape _unsafe_view flatten contiguous clone alias detach _to_copy to dropout
    lift_fresh_copy""".split()
)
_SEQ_FIRST = ("LSTM", "GRU", "RNN", "MultiheadAttention")


@dataclass(frozen=True, eq=False)
class Site:
    """One place units are read. ``module``: the reading module's dotted path (``""``: the root).
    ``kind``: ``"input"`` or ``"parameter"``. Input sites: ``arg`` the positional argument
    (``None``: every tensor argument of that shape, as ``MultiheadAttention``'s query, key and
    value), ``axis`` its feature axis (negative), ``batch_axis``. Parameter sites: ``parameter``
    the parameter's name in the module, its columns (axis 1) the features. ``nodes``: the graph
    node each feature index holds (``-1``: none). ``unhookable``: why this read has no site
    (then only ``module`` and ``nodes`` mean anything)."""

    module: str
    kind: str
    nodes: np.ndarray
    arg: int | None = 0
    axis: int = -1
    batch_axis: int = 0
    parameter: str | None = None
    module_type: str = ""
    unhookable: str | None = field(default=None)


def _inside(node: Any, path: str) -> bool:
    return any(str(p) == path for p, _ in (node.meta.get("nn_module_stack") or {}).values())


def locate_sites(interp: Any) -> list[Site]:
    """Every read of the finished trace (``interp``: a run `Interpreter`) as a `Site`."""
    state_reads = getattr(interp, "state_reads", ())  # h0 / c0 of a recurrent layer
    return [
        _state_site(read[0], interp.builder.nodes(read[3])) if i in state_reads else _site(interp, *read)
        for i, read in enumerate(interp.reads)
    ]


def _site(interp: Any, node, source, axis, units, param, param_axis) -> Site:
    nodes = interp.builder.nodes(units)
    where = module_at(node)
    path, module_type = where or ("", "")
    owner, _, attr = param.rpartition(".")

    def parameter_site(why: str) -> Site:
        """The read as the parameter's columns, or no site when they are not one per feature."""
        return (
            Site(path, "input", nodes, module_type=module_type, unhookable=why)
            if param_axis is None
            else Site(owner, "parameter", nodes, axis=param_axis, parameter=attr, module_type=module_type)
        )

    if source is None:  # a read inside one module (recurrent weights): the parameter's columns
        return parameter_site(f"{path} ({module_type}) reads the units inside its forward")
    if where is None:
        return parameter_site("the model's own forward applies the weight")
    boundary = source
    while boundary.op != "placeholder" and _inside(boundary, path):
        if not (boundary.args and (op_name(boundary.target) in VIEW_OPS or _keeps_last_axis(boundary))):
            return parameter_site(f"{path} ({module_type}) applies its weight after other ops on its input")
        boundary = boundary.args[0]
    here = interp.env.get(boundary.name)
    ndim = len(source.meta["val"].shape)
    at = axis % max(1, ndim)
    b_axis = -1 if at == ndim - 1 else at  # dense reads: the last axis; convolutions: the channels
    ok = here is not None and here.units.ndim > 0 and here.units.shape[b_axis] == len(units)
    if ok:
        try:
            ok = np.array_equal(interp.features(node, here, b_axis)[0], units)
        except Exception:  # the module's input mixes units along the axis: no per-feature mask
            ok = False
    if not ok:
        return parameter_site(f"{path} ({module_type}) reshapes its input before the weight reads it")
    batch_axis = 1 if module_type in _SEQ_FIRST and not _batch_first(interp, path) else 0
    return Site(
        path, "input", nodes, arg=None if module_type == "MultiheadAttention" else 0,
        axis=b_axis if b_axis < 0 else b_axis - here.units.ndim, batch_axis=batch_axis,
        module_type=module_type,
    )


def _state_site(node: Any, nodes: np.ndarray) -> Site:
    """A recurrent layer's initial state as a site: its ``hx`` argument (``(h0, c0)`` of an LSTM,
    both changed), ``(slots, batch, hidden)``, when it has one slot (one layer, one direction);
    with several, each slot holds other units and no per-feature mask fits them all."""
    path, module_type = module_at(node) or ("", "")
    hx = node.args[1] if len(node.args) > 1 else None
    first = hx[0] if isinstance(hx, list | tuple) and hx else hx
    val = getattr(first, "meta", {}).get("val")
    if val is None or len(val.shape) != 3 or int(val.shape[0]) != 1:
        why = f"{path} ({module_type}) reads the units as a slot of its initial state (hx) of several layers"
        return Site(path, "input", nodes, module_type=module_type, unhookable=why)
    return Site(path, "input", nodes, arg=1, axis=-1, batch_axis=1, module_type=module_type)


def _keeps_last_axis(node: Any) -> bool:
    """A transpose or permute that leaves the last axis (the features of a dense read) last."""
    val = node.meta.get("val")
    if val is None or op_name(node.target) not in ("transpose", "permute"):
        return False
    axes = Interpreter.follow_axes(node, list(range(len(val.shape))))
    return axes is not None and axes[-1] == len(val.shape) - 1


def _batch_first(interp: Any, path: str) -> bool:
    """Whether the traced module at ``path`` takes batch-first input (recurrent, attention)."""
    with suppress(AttributeError):  # no module (a program read from a file), or none at ``path``
        return bool(getattr(interp.module.get_submodule(path), "batch_first", True))
    return True
