"""Lesions by function: remove each function's weight mask in turn and score every function
([spec §5][spec-5]'s inverted mask test, run on the trained network)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ..data.functions import CONTROL
from ..errors import ModscopeError
from ..runtime.jsonable import to_jsonable
from .evaluator import Split, score_model
from .inplace import remove_weights, weight_masks

__all__ = ["FunctionKnockoutResult", "function_knockout"]


@dataclass
class FunctionKnockoutResult:
    """Every function's metric with each function's mask removed ([spec §5][spec-5]'s inverted mask test).

    ``removed[f][g]``: metric of function ``g`` with the weights of ``M_f`` zeroed.
    ``mask_sizes[f]``: how many weights ``M_f`` marks.
    """

    metric: str
    functions: list[str]
    intact: dict[str, float]
    removed: dict[str, dict[str, float]]
    mask_sizes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    def to_frame(self):
        """Rows: the removed mask (``"none"`` for intact); columns: the function scored."""
        import pandas as pd

        return pd.DataFrame.from_dict({"none": self.intact, **self.removed}, orient="index")[self.functions]


def function_knockout(
    model: nn.Module,
    data: Any,
    masks: Mapping[str, Any],
    *,
    split: Split = "test",
    batch_size: int = 256,
    output: Any = None,
) -> FunctionKnockoutResult:
    """Remove each function's mask in turn ([`remove_weights()`][modscope.lesions.inplace.remove_weights]) and
    score every function.

    ``data``: a built-in `Task`, a `modscope.data.Data` or anything `modscope.data.load_data` reads
    (streamed in batches of ``batch_size``; ``output``: which head to score). ``masks``:
    ``{function name: mask}``, a mask in any form
    [`weight_masks()`][modscope.lesions.inplace.weight_masks] accepts. Functions without a mask are still
    scored. The model is restored after each removal.
    """
    from ..data.dataset import load_data

    if not masks:
        raise ModscopeError("no masks given")
    data = load_data(data)
    functions = list(data.functions.values())
    names = [f.name for f in functions] or ["all"]
    known = set(data.functions) | {"all", CONTROL}  # `control`: the mask trained on all the data
    if data.kind == "classification" and len(data.output_groups) <= 1 and data.n_classes:
        known |= {f"not-{c}" for c in range(data.n_classes)}  # the masks of a per-class run
    unknown = [f for f in masks if f not in known]
    if unknown:
        raise ModscopeError(f"masks for unknown functions {unknown}; {data.name} has {list(data.functions)}")
    norm = {f: weight_masks(model, m) for f, m in masks.items()}

    def score() -> dict[str, float]:
        s = score_model(model, data, split=split, functions=functions, batch_size=batch_size, output=output)
        if not functions:
            return {"all": float(s.metric[0])}
        return {g: float(s.per_function[0, i]) for i, g in enumerate(names)}

    intact = score()
    removed = {}
    for f, m in norm.items():
        with remove_weights(model, m):
            removed[f] = score()
    return FunctionKnockoutResult(
        data.metric_name, names, intact, removed,
        {f: int(sum(int(t.sum()) for t in m.values())) for f, m in norm.items()},  # mask sizes
    )
