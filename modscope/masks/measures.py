"""What learned masks say ([spec §5][spec-5]): kept fractions, overlaps (IoU, IoMin, shared fraction) overall,
per layer and per unit group, each mask's metric on every function's data, the inverted-mask test,
and the per-class accuracy drop of class-removal masks.

The data is scored batch by batch (`evaluate_streamed`): every batch goes through the K masked
networks, the K inverted ones and the intact one, and a `modscope.data.accumulate.Accumulator`
sums the metric per network, per function and per class, so only a batch (times the networks it
runs through) is in memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data.accumulate import Accumulator
from ..data.functions import CONTROL, Function
from .data import StreamedData
from .frozen import FrozenNet
from .result import MaskResult

__all__ = ["evaluate_streamed", "group_measures", "overlap_measures", "streamed_scores"]


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def overlap_measures(
    masks: torch.Tensor, names: Sequence[str], function_rows: Sequence[int] | None = None
) -> dict[str, dict]:
    """Kept fraction, IoU, IoMin and shared fraction of bool masks ``(K, P)``.

    ``iou`` / ``iomin`` have keys ``"f|g"`` for every pair f before g in ``names``. ``shared``
    of mask i is ``|M_i ∧ ∪_j M_j| / |M_i|`` over the rows ``j != i`` in ``function_rows``
    (default all; modscope leaves the control mask out of the union). Undefined ratios
    (empty denominators) are ``None``.
    """
    m = masks.to(torch.float64)
    K, P = m.shape
    rows = list(range(K)) if function_rows is None else list(function_rows)
    size = m.sum(1)
    inter = m @ m.T
    out: dict[str, dict] = {"kept_fraction": {}, "iou": {}, "iomin": {}, "shared": {}}
    for i in range(K):
        out["kept_fraction"][names[i]] = float(size[i] / P) if P else None
        for j in range(i + 1, K):
            key = f"{names[i]}|{names[j]}"
            out["iou"][key] = _ratio(float(inter[i, j]), float(size[i] + size[j] - inter[i, j]))  # / union
            out["iomin"][key] = _ratio(float(inter[i, j]), float(min(size[i], size[j])))
        others = [j for j in rows if j != i]  # none: no union to share with
        shared = float((masks[i] & masks[others].any(0)).sum()) if others else None
        out["shared"][names[i]] = None if shared is None else _ratio(shared, float(size[i]))
    return out


def streamed_scores(
    net: FrozenNet,
    stream: StreamedData,
    weights: torch.Tensor,
    functions: Sequence[Function],
    batch_size: int = 512,
    max_elements: int = 2**22,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The metric of the networks with effective weights ``weights`` ``(N, P)`` on the test split of
    ``stream``'s data, read batch by batch: ``(metric (N,), per_class (N, C) or None, per_function
    (N, F))`` (`Accumulator`). ``max_elements`` bounds the input elements of one forward (the
    networks of a forward each see the batch), so memory holds a batch, not the data."""
    data = stream.data
    n = weights.shape[0]
    acc = None
    with torch.no_grad():
        for idx, x, y in data.split("test").batches(batch_size):
            x = stream.inputs(x, net.device)
            chunk = max(1, min(n, max_elements // max(1, x.numel())))
            for start in range(0, n, chunk):
                rows = slice(start, min(n, start + chunk))
                out = net(weights[rows], x, shared_input=True)  # (rows, B, n_out)
                acc = acc or Accumulator(data, out.shape[-1], n, functions, "test")
                acc.add(idx, out, y, rows)
    return acc.result()


def evaluate_streamed(
    net: FrozenNet,
    stream: StreamedData,
    functions: Sequence[Function],
    logits: torch.Tensor,
    class_removal: bool = False,
    config: dict[str, Any] | None = None,
    keep_logits: bool = False,
    batch_size: int = 512,
) -> MaskResult:
    """All measures of the hard masks ``logits > 0`` (logits ``(K, P)``, one row per function) on
    the test split, streamed: the K masked networks, the K inverted ones and the intact one
    (``2K + 1`` weight sets) score every test batch once (`streamed_scores`); each mask's metric
    on function g is the mean over g's test examples and output groups. ``class_drop``
    (one-group classifiers): per-class accuracy of the intact network minus that under each
    mask, from the whole test split."""
    keep = logits > 0
    K = keep.shape[0]
    fnames = [f.name for f in functions]
    weights = torch.cat([net.w * keep, net.w * ~keep, net.w[None]])  # masked, inverted, intact
    _, per_class, per_fn = streamed_scores(net, stream, weights, functions, batch_size)
    class_drop = None
    if class_removal and per_class is not None:
        class_drop = {
            f: {str(c): float(per_class[2 * K, c] - per_class[k, c]) for c in range(per_class.shape[1])}
            for k, f in enumerate(fnames)
        }
    # the result of the hard masks and their metrics (rows: masks, columns: functions' data)
    acc, inv_acc, full = per_fn[:K].tolist(), per_fn[K : 2 * K].tolist(), per_fn[2 * K].tolist()
    fn_rows = [i for i, n in enumerate(fnames) if n != CONTROL]

    def split(t: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = zip(net.names, net.spans, net.shapes, strict=True)
        return {n: t[sl].reshape(shape).cpu() for n, sl, shape in parts}

    return MaskResult(
        functions=list(fnames),
        layer_names=list(net.names),
        masks={f: split(keep[k]) for k, f in enumerate(fnames)},
        **overlap_measures(keep, fnames, fn_rows),  # kept_fraction, iou, iomin, shared
        accuracy={f: dict(zip(fnames, acc[k], strict=True)) for k, f in enumerate(fnames)},
        inverted_accuracy={f: dict(zip(fnames, inv_acc[k], strict=True)) for k, f in enumerate(fnames)},
        full_accuracy=dict(zip(fnames, full, strict=True)),
        layers={
            n: overlap_measures(keep[:, sl], fnames, fn_rows)
            for n, sl in zip(net.names, net.spans, strict=True)
        },
        class_drop=class_drop,
        config=dict(config or {}),
        logits={f: split(logits[k]) for k, f in enumerate(fnames)} if keep_logits else None,
    )


def group_measures(units: Any, result: MaskResult) -> dict[str, dict[str, Any]]:
    """Per unit group of a traced network (``units``: its
    `modscope.graphs.tracing.incidence.ParameterMap`): which masked parameters write into it and
    read from it, how many of their weights touch it, and the
    kept fraction, IoU, IoMin and shared fraction of the masks over those weights."""
    names = list(result.layer_names)
    fn_rows = [i for i, n in enumerate(result.functions) if n != CONTROL]
    keep = torch.stack([torch.cat([result.masks[f][n].reshape(-1) for n in names]) for f in result.functions])
    out: dict[str, dict[str, Any]] = {}
    sizes = [int(result.masks[result.functions[0]][n].numel()) for n in names]
    for g, (gname, writes, reads, sel) in enumerate(units.group_entries(names, sizes)):
        if not sel.any():
            continue
        out[gname if gname not in out else f"{gname}#{g}"] = {
            "group": g, "label": units.graph.group_label(g), "writes": writes, "reads": reads,
            "weights": int(sel.sum()),
            **overlap_measures(keep[:, torch.from_numpy(sel)], result.functions, fn_rows),
        }
    return out
