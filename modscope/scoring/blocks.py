"""Every MLP block of a transformer scored on its own 3-layer graph ([spec §1][spec-1]), one row per block."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ModscopeError
from ..graphs.load import load_graph
from ..graphs.transformer import MLPBlock, mlp_blocks
from ..runtime.executors import Executor
from .engine import score
from .result import ScoreResult

__all__ = ["BlockScores", "score_blocks"]


@dataclass
class BlockScores:
    """Every MLP block scored: ``blocks[i]`` with ``results[i]``; ``method`` names the measure."""

    blocks: list[MLPBlock]
    results: list[ScoreResult]
    method: str
    whole: ScoreResult | None = None  # the whole merged-stream graph (spec §1b), when asked for

    def to_frame(self):
        """One row per block: ``block, d_model, d_ff, n_edges, measure, value, null_mean,
        null_std, z, p_value`` (null columns ``NaN`` without shuffles)."""
        import pandas as pd

        rows = []
        for block, r in zip(self.blocks, self.results, strict=True):
            s = r.null
            rows.append(
                {
                    "block": block.name,
                    "d_model": block.d_model,
                    "d_ff": block.d_ff,
                    "n_edges": r.graph.n_edges,
                    "measure": r.measure,
                    "value": r.value,
                    "null_mean": np.nan if s is None else s.mean,
                    "null_std": np.nan if s is None else s.std,
                    "z": np.nan if s is None or not np.isfinite(s.z) else s.z,
                    "p_value": np.nan if s is None else s.p_value,
                }
            )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "blocks": [
                {"block": b.name, "d_model": b.d_model, "d_ff": b.d_ff, **r.to_dict()}
                for b, r in zip(self.blocks, self.results, strict=True)
            ],
            "version": __version__,
            **({"whole": self.whole.to_dict()} if self.whole is not None else {}),
        }


def score_blocks(
    source: str | os.PathLike | Mapping | Sequence[MLPBlock] | Any,
    *,
    measure: Any = "ncut",
    n_clusters: int | None = None,
    null: Any = "layer",
    n_shuffles: int = 50,
    seed: int = 0,
    jobs: int = 1,
    executor: Executor | None = None,
    progress: bool = False,
    whole: bool = False,
) -> BlockScores:
    """`modscope.score` on every MLP block's 3-layer graph (``source``: a transformer checkpoint,
    state dict or module, or a list of `MLPBlock`). Every block uses the same ``seed``, so block
    ``i``'s row equals scoring that block's graph alone. ``whole``: also score the whole network's
    unit graph (`modscope.load_graph` of ``source``: for a transformer the merged residual stream,
    attention value units and MLP units of [spec §1b][spec-1b]) with the same measure, null and seed."""
    given = isinstance(source, Sequence) and not isinstance(source, str)
    blocks = list(source) if given else mlp_blocks(source)
    results = [
        score(
            block.graph(),
            measure=measure,
            n_clusters=n_clusters,
            null=null,
            n_shuffles=n_shuffles,
            seed=seed,
            jobs=jobs,
            executor=executor,
            progress=progress,
        )
        for block in blocks
    ]
    name = measure if isinstance(measure, str) else getattr(measure, "name", "ncut")
    whole_result = None
    if whole:
        if given:
            raise ModscopeError("whole=True scores the network the blocks came from: pass its checkpoint")
        whole_result = score(
            load_graph(source),
            measure=measure,
            n_clusters=n_clusters,
            null=null,
            n_shuffles=n_shuffles,
            seed=seed,
            jobs=jobs,
            executor=executor,
            progress=progress,
        )
    return BlockScores(blocks, results, name, whole_result)
