"""What a knockout run returns: each true lesion against its random ones, per sub-module and per
pair, and the function-mask removals."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import numpy as np

from ..runtime.jsonable import to_jsonable
from .functions import FunctionKnockoutResult

__all__ = ["Category", "KnockoutResult", "LesionResult", "PairResult", "SubmoduleResult"]

# "whole-group": the lesion is every labelled unit of its group(s), so every random lesion of its size
# is the same set and no p-value can tell it from them
Category = Literal["important", "sig-but-small", "prunable", "not-significant", "whole-group"]


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

    _head: ClassVar[tuple[str, ...]] = ()  # a subclass's own fields, first in its dict
    _tail: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON fields (not ``damage`` nor ``random_metric``), non-finite numbers as ``None``."""
        own = [f.name for f in fields(LesionResult) if f.name not in ("damage", "random_metric")]
        return to_jsonable({k: getattr(self, k) for k in (*self._head, *own, *self._tail)})


@dataclass
class SubmoduleResult(LesionResult):
    layer: int = 0
    cluster: int = 0
    _head = ("layer", "cluster")


@dataclass
class PairResult(LesionResult):
    layer_a: int = 0
    cluster_a: int = 0
    layer_b: int = 0
    cluster_b: int = 0
    interaction: float = 0.0
    _head = ("layer_a", "cluster_a", "layer_b", "cluster_b")
    _tail = ("interaction",)


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
        keys = ("metric", "intact_accuracy", "intact_per_class", "intact_per_function", "submodules",
                "fisher_p", "n_random", "seed", "alpha", "min_effect")
        d = to_jsonable(
            {**{k: getattr(self, k) for k in keys}, "submodules": [s.to_dict() for s in self.submodules]}
        )
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

    return pd.DataFrame([_flat(row) for row in rows])


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """A result row with its per-class and per-function values as columns of their own."""
    return {
        **{k: v for k, v in row.items() if k not in _FRAME_DROP},
        **{f"class_{c}": v for c, v in enumerate(row.get("per_class") or [])},
        **{f"fn_{name}": v for name, v in (row.get("per_function") or {}).items()},
    }
