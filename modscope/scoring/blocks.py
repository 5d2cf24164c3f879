"""Every MLP block of a transformer scored on its own 3-layer graph ([spec §1][spec-1]), one row per block."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ModscopeError
from ..graphs.load import load_graph
from ..graphs.network import Network
from ..graphs.transformer import MLPBlock, count_mlp_blocks, iter_mlp_blocks, read_mlp_blocks
from ..runtime.executors import Executor
from .engine import score
from .result import ScoreResult

__all__ = ["BlockRows", "BlockScores", "score_blocks", "stream_block_scores"]


@dataclass
class BlockScores:
    """Every MLP block scored: ``blocks[i]`` with ``results[i]``; ``method`` names the measure."""

    blocks: list[MLPBlock]
    results: list[ScoreResult]
    method: str
    whole: ScoreResult | None = None  # the whole merged-stream graph (spec §1b), when asked for
    reading: str = ""  # how the blocks were read (a known family traced, key pairs)

    def to_frame(self):
        """One row per block: ``block, d_model, d_ff, n_edges, measure, value, null_mean,
        null_std, z, p_value`` (null columns ``NaN`` without shuffles)."""
        return _frame([_row(_head(b), r) for b, r in zip(self.blocks, self.results, strict=True)])

    def to_dict(self) -> dict:
        rows = [{**_head(b), **r.to_dict()} for b, r in zip(self.blocks, self.results, strict=True)]
        return {
            "method": self.method, "blocks": rows, "version": __version__,
            **({"reading": self.reading} if self.reading else {}),
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
    device: str | None = None,
) -> BlockScores:
    """`modscope.score` on every MLP block's 3-layer graph (``source``: a transformer checkpoint,
    state dict or module, or a list of `MLPBlock`). Every block uses the same ``seed``, so block
    ``i``'s row equals scoring that block's graph alone. ``whole``: also score the whole network's
    unit graph (`modscope.load_graph` of ``source``: for a transformer the merged residual stream,
    attention value units and MLP units of [spec §1b][spec-1b]) with the same measure, null and seed.
    ``device``: every block's spectral path (and the whole graph's) batched on this torch device
    (`modscope.score`'s ``device``). A `Network`: the blocks of the module or file it was read from,
    its graph as the whole."""
    network = source
    if isinstance(source, Network):
        if source.module is None and not os.path.isfile(source.source):
            raise ModscopeError(
                f"a Network read from a {source.source} keeps no key names to cut MLP blocks from: "
                "pass the transformer's file, state dict or module"
            )
        source = source.module if source.module is not None else source.source
    given = isinstance(source, Sequence) and not isinstance(source, str)
    blocks, reading = (list(source), "the MLP blocks given") if given else read_mlp_blocks(source)
    options = dict(measure=measure, n_clusters=n_clusters, null=null, n_shuffles=n_shuffles, seed=seed,
                   jobs=jobs, executor=executor, progress=progress, device=device)
    results = [score(block.graph(), **options) for block in blocks]
    name = measure if isinstance(measure, str) else getattr(measure, "name", "ncut")
    if whole and given:
        raise ModscopeError("whole=True scores the network the blocks came from: pass its checkpoint")
    whole_result = score(load_graph(network), **options) if whole else None
    return BlockScores(blocks, results, name, whole_result, reading)


@dataclass
class BlockRows:
    """Every block's row of a streamed run (`stream_block_scores`): the columns of
    `BlockScores.to_frame` and ``seconds`` (0 for a row read back from the cache)."""

    rows: list[dict]
    method: str
    computed: int
    reused: int
    whole: None = None  # a streamed run never holds the whole network
    reading: str = ""  # how the blocks were read

    def to_frame(self):
        return _frame(self.rows)

    def to_dict(self) -> dict:
        return {"method": self.method, "blocks": self.rows, "computed": self.computed,
                "reused": self.reused, "version": __version__,
                **({"reading": self.reading} if self.reading else {})}


def _head(block: MLPBlock) -> dict:
    """A block's first columns: its name and sizes."""
    return {"block": block.name, "d_model": block.d_model, "d_ff": block.d_ff}


def _row(head: dict, r: ScoreResult, seconds: float | None = None) -> dict:
    """A block's row: its `_head`, its score and its null (None without shuffles), and ``seconds``
    when given."""
    s = r.null
    row = {**head, "n_edges": int(r.graph.n_edges),
           "measure": r.measure, "value": float(r.value), "null_mean": None if s is None else float(s.mean),
           "null_std": None if s is None else float(s.std),
           "z": None if s is None or not np.isfinite(s.z) else float(s.z),
           "p_value": None if s is None else float(s.p_value)}
    return row if seconds is None else {**row, "seconds": round(seconds, 3)}


def _frame(rows: list[dict]):
    """The rows as a table, the score and null columns floats (``NaN`` for None)."""
    import pandas as pd

    nums = ("value", "null_mean", "null_std", "z", "p_value")
    return pd.DataFrame(rows).astype({c: float for c in nums if rows})


def stream_block_scores(
    source: str | os.PathLike,
    *,
    measure: Any = "ncut",
    n_clusters: int | None = None,
    null: Any = "layer",
    n_shuffles: int = 20,
    seed: int = 0,
    jobs: int = 1,
    device: str | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = False,
    limit: int | None = None,
) -> BlockRows:
    """`score_blocks` for networks too large to hold: blocks read one at a time from a
    memory-mapped file (`iter_mlp_blocks`), each scored and dropped, so memory holds one block
    and its shuffles in flight. ``cache``: a folder where each block's finished shuffles and its
    finished row are kept; a rerun (after a stop, or on another device) computes only what is
    missing. ``progress``: a bar over the blocks whose time left is measured on the blocks done
    in this run. ``limit``: the first ``limit`` blocks only. Rows equal `score_blocks`' up to the
    float tolerances of ``device`` (the same seed for every block)."""
    from tqdm.auto import tqdm

    path = Path(source)
    if not path.is_file():
        raise ModscopeError(f"{path}: no such file")
    total = count_mlp_blocks(path)
    if limit is not None:
        total = min(total, int(limit))
    name = measure if isinstance(measure, str) else getattr(measure, "name", "ncut")
    stat = path.stat()
    file_id = [path.name, stat.st_size, stat.st_mtime_ns]
    same = dict(n_clusters=n_clusters, n_shuffles=n_shuffles, seed=seed)  # in the cache key and every score
    settings = {"file": file_id, "measure": str(name), "null": str(null), "version": __version__, **same}
    options = dict(measure=measure, null=null, jobs=jobs, device=device, progress=progress, **same)
    store = _RowStore(Path(cache) if cache is not None else None, settings)
    rows: list[dict] = []
    reused = 0
    with tqdm(total=total, desc="blocks", unit="block", disable=not progress, leave=False) as bar:
        for block in islice(iter_mlp_blocks(path), total):  # the first `total`, none read beyond
            key = store.key(block.name)
            row = store.get(key)
            if row is None:
                start = time.perf_counter()
                graph = block.graph()
                head = _head(block)
                del block  # memory holds one block's graph and its shuffles in flight
                r = score(graph, cache=store.samples(key), **options)
                row = _row(head, r, time.perf_counter() - start)
                del graph, r
                store.put(key, row)
                bar.update()
            else:
                reused += 1
                # off the bar's count: its rate and time left come from blocks computed now only
                bar.total -= 1
                bar.set_description(f"blocks ({reused} from the cache)")
            rows.append(row)
    return BlockRows(
        rows, str(name), len(rows) - reused, reused,
        reading=f"{total} MLP blocks read one at a time from the memory-mapped file",
    )


@dataclass
class _RowStore:
    """A streamed run's finished rows under ``root / "rows"`` and each block's finished shuffles
    under ``root / "samples"``, keyed by the run's ``settings`` and the block (no ``root``: none)."""

    root: Path | None
    settings: dict

    def key(self, block_name: str) -> str:
        from ..runtime.hashing import json_digest

        return json_digest({**self.settings, "block": block_name})[:24]

    def get(self, key: str) -> dict | None:
        done = None if self.root is None else self.root / "rows" / f"{key}.json"
        return json.loads(done.read_text())["row"] if done is not None and done.is_file() else None

    def put(self, key: str, row: dict) -> None:
        if self.root is not None:
            from ..runtime.atomic import write_json

            write_json(self.root / "rows" / f"{key}.json", {"settings": self.settings, "row": row})

    def samples(self, key: str) -> Path | None:
        return None if self.root is None else self.root / "samples" / key
