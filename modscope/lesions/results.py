"""What a knockout run returns: each true lesion against its random ones, per sub-module and per
pair, and the function-mask removals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..runtime.jsonable import finite_or_none
from .functions import FunctionKnockoutResult

__all__ = ["Category", "KnockoutResult", "LesionResult", "PairResult", "SubmoduleResult"]

# "whole-group": the lesion is every labelled unit of its group(s), so every random lesion of its size
# is the same set and no p-value can tell it from them
Category = Literal["important", "sig-but-small", "prunable", "not-significant", "whole-group"]


def _num_list(a: np.ndarray | None) -> list[float | None] | None:
    return None if a is None else [finite_or_none(v) for v in np.asarray(a).tolist()]


@dataclass
class LesionResult:
    """One true lesion against its random ones. ``random_metric``: ``(N,)``, not in JSON."""

    size: int
    accuracy: float
    per_class: np.ndarray | None
    per_function: dict[str, float]
    delta: float
    damage: float
    p_value: float
    z: float | None
    category: Category
    random_mean: float
    random_std: float
    random_metric: np.ndarray = field(repr=False)

    def _common(self) -> dict[str, Any]:
        return {
            "size": int(self.size),
            "accuracy": finite_or_none(self.accuracy),
            "per_class": _num_list(self.per_class),
            "per_function": {k: finite_or_none(v) for k, v in self.per_function.items()},
            "delta": finite_or_none(self.delta),
            "p_value": float(self.p_value),
            "z": finite_or_none(self.z),
            "category": self.category,
            "random_mean": finite_or_none(self.random_mean),
            "random_std": finite_or_none(self.random_std),
        }


@dataclass
class SubmoduleResult(LesionResult):
    layer: int = 0
    cluster: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"layer": int(self.layer), "cluster": int(self.cluster), **self._common()}


@dataclass
class PairResult(LesionResult):
    layer_a: int = 0
    cluster_a: int = 0
    layer_b: int = 0
    cluster_b: int = 0
    interaction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer_a": int(self.layer_a),
            "cluster_a": int(self.cluster_a),
            "layer_b": int(self.layer_b),
            "cluster_b": int(self.cluster_b),
            **self._common(),
            "interaction": finite_or_none(self.interaction),
        }


_FRAME_DROP = ("per_class", "per_function")


@dataclass
class KnockoutResult:
    """Single (and optionally double) lesions of every sub-module against random lesions.

    ``metric`` names what the ``accuracy`` fields hold: ``"accuracy"`` (fraction correct)
    or, for regression tasks, ``"mse"`` (lower is better).
    """

    metric: str
    intact_accuracy: float
    intact_per_class: np.ndarray | None
    intact_per_function: dict[str, float]
    submodules: list[SubmoduleResult]
    fisher_p: float | None
    pairs: list[PairResult] | None
    n_random: int
    seed: int
    alpha: float
    min_effect: float
    functions: FunctionKnockoutResult | None = None
    clustering: dict | None = None  # how the labels were made, when modscope clustered
    group_names: list[str] | None = None  # a traced network's unit groups ("layer" indexes them)
    # the same for a reader: name, layer kind and size ("0 (Linear, 32 units)"); not in JSON
    group_labels: list[str] | None = field(default=None, repr=False)
    # (n_nodes,) the partition lesioned, when modscope clustered; not in to_dict (the CLI adds it)
    labels: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "metric": self.metric,
            "intact_accuracy": finite_or_none(self.intact_accuracy),
            "intact_per_class": _num_list(self.intact_per_class),
            "intact_per_function": {k: finite_or_none(v) for k, v in self.intact_per_function.items()},
            "submodules": [s.to_dict() for s in self.submodules],
            "fisher_p": finite_or_none(self.fisher_p),
            "n_random": int(self.n_random),
            "seed": int(self.seed),
            "alpha": float(self.alpha),
            "min_effect": float(self.min_effect),
        }
        if self.pairs is not None:
            d["pairs"] = [p.to_dict() for p in self.pairs]
        if self.functions is not None:
            d["functions"] = self.functions.to_dict()
        if self.clustering is not None:
            d["clustering"] = dict(self.clustering)
        if self.group_names is not None:
            d["groups"] = list(self.group_names)
        return d

    def to_frame(self):
        """One row per sub-module (per-class / per-function columns flattened; a traced network's
        rows name their unit ``group``)."""
        frame = _frame([s.to_dict() for s in self.submodules])
        if self.group_names is not None and len(frame):
            frame.insert(1, "group", [self.group_names[g] for g in frame["layer"]])
        return frame

    def pairs_frame(self):
        """One row per pair of sub-modules (empty when pairs were not run)."""
        return _frame([p.to_dict() for p in self.pairs or []])


def _frame(rows: list[dict[str, Any]]):
    import pandas as pd

    flat = []
    for row in rows:
        r = {k: v for k, v in row.items() if k not in _FRAME_DROP}
        for c, v in enumerate(row.get("per_class") or []):
            r[f"class_{c}"] = v
        for name, v in (row.get("per_function") or {}).items():
            r[f"fn_{name}"] = v
        flat.append(r)
    return pd.DataFrame(flat)
