"""Transformer MLP blocks: one 3-layer graph per block, every block scored (spec §1).

Each block's feed-forward pair ``d_model -> d_ff -> d_model`` is a `WeightGraph` of two
matrices in torch's out x in layout: ``W_in`` ``(d_ff, d_model)`` and ``W_out``
``(d_model, d_ff)``. Recognised key pairs (any prefix, e.g. ``transformer.h.3.``):

| in / out | layout stored | models |
|---|---|---|
| ``mlp.c_fc`` / ``mlp.c_proj`` | in x out (GPT-2's ``Conv1D``) | GPT-2 |
| ``fc1`` / ``fc2`` | out x in (``nn.Linear``) | OPT, BART, CLIP, ViT-style |
| ``mlp.fc_in`` / ``mlp.fc_out`` | out x in | GPT-J |
| ``dense_h_to_4h`` / ``dense_4h_to_h`` | out x in | GPT-NeoX, BLOOM |

GPT-2's ``attn.c_proj`` is an attention projection, not an MLP: only ``mlp.c_proj`` pairs
with ``mlp.c_fc``. Files are read safely: ``.safetensors``, or ``.bin``/``.pt`` with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from . import __version__
from .errors import ModscopeError
from .graph import WeightGraph
from .spectral import SpectralClusterer

# (in suffix, out suffix, stored layout)
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("mlp.c_fc.weight", "mlp.c_proj.weight", "in_out"),
    ("fc1.weight", "fc2.weight", "out_in"),
    ("mlp.fc_in.weight", "mlp.fc_out.weight", "out_in"),
    ("dense_h_to_4h.weight", "dense_4h_to_h.weight", "out_in"),
)


@dataclass(frozen=True)
class MLPBlock:
    """One feed-forward block: ``w_in`` ``(d_ff, d_model)`` and ``w_out`` ``(d_model, d_ff)``."""

    name: str
    w_in: np.ndarray
    w_out: np.ndarray

    @property
    def d_model(self) -> int:
        return int(self.w_in.shape[1])

    @property
    def d_ff(self) -> int:
        return int(self.w_in.shape[0])

    def graph(self) -> WeightGraph:
        """The 3-layer graph ``d_model -> d_ff -> d_model``."""
        return WeightGraph.from_weights([self.w_in, self.w_out], [f"{self.name}.in", f"{self.name}.out"])


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _read(source: str | os.PathLike | nn.Module | Mapping) -> Mapping[str, Any]:
    from .io import _read_safetensors, _unwrap_state_dict, safe_torch_load

    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, Mapping):
        return _unwrap_state_dict(source, "state dict")
    if not isinstance(source, str | os.PathLike):
        raise ModscopeError(f"cannot load a transformer from a {type(source).__name__}")
    path = Path(source)
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    return _unwrap_state_dict(safe_torch_load(path), str(path))


def _matrix(name: str, value: Any) -> np.ndarray:
    from .io import _to_numpy

    a = _to_numpy(name, value).astype(np.float64)
    if a.ndim != 2:
        raise ModscopeError(f"{name}: an MLP weight must be 2-D, got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise ModscopeError(f"{name}: weights contain NaN or infinite values")
    return a


def mlp_blocks(source: str | os.PathLike | nn.Module | Mapping) -> list[MLPBlock]:
    """Every MLP block of a transformer checkpoint, in natural key order (``h.2`` before ``h.10``).

    Block names are the key prefixes (``h.0.mlp``, ``model.decoder.layers.3``). Raises
    `ModscopeError` when no known pair is found or a pair's shapes do not chain.
    """
    tensors = _read(source)
    blocks = []
    for key in tensors:
        for in_suffix, out_suffix, layout in PAIRS:
            if key != in_suffix and not key.endswith("." + in_suffix):
                continue
            prefix = key[: -len(in_suffix)]
            out_key = prefix + out_suffix
            if out_key not in tensors:
                raise ModscopeError(f"{key}: no matching {out_key!r}")
            w_in, w_out = _matrix(key, tensors[key]), _matrix(out_key, tensors[out_key])
            if layout == "in_out":
                w_in, w_out = w_in.T, w_out.T
            if w_out.shape[1] != w_in.shape[0] or w_out.shape[0] != w_in.shape[1]:
                raise ModscopeError(
                    f"{prefix or 'block'}: {key} is {w_in.shape[0]}x{w_in.shape[1]} and {out_key} "
                    f"{w_out.shape[0]}x{w_out.shape[1]} (out x in): not d_model -> d_ff -> d_model"
                )
            name = (prefix + in_suffix.rsplit(".", 2)[0]) if in_suffix.startswith("mlp.") else prefix
            blocks.append(MLPBlock(name.rstrip(".") or "mlp", w_in, w_out))
    if not blocks:
        known = ", ".join(f"{a}/{b}" for a, b, _ in PAIRS)
        raise ModscopeError(f"no transformer MLP blocks found (looked for {known})")
    return sorted(blocks, key=lambda b: _natural_key(b.name))


@dataclass
class BlockScores:
    """Every MLP block scored: ``blocks[i]`` with ``results[i]`` (a `ScoreResult` for the
    spectral n-cut, a `modscope.measures.MeasureResult` for the other methods)."""

    blocks: list[MLPBlock]
    results: list[Any]
    method: str

    def to_frame(self) -> pd.DataFrame:
        """One row per block: ``block, d_model, d_ff, n_edges, measure, value, null_mean,
        null_std, z, p_value`` (null columns ``NaN`` without shuffles)."""
        rows = []
        for block, r in zip(self.blocks, self.results, strict=True):
            d = r.to_dict()
            s = d["shuffle"] or {}
            rows.append({
                "block": block.name,
                "d_model": block.d_model,
                "d_ff": block.d_ff,
                "n_edges": d["n_edges"],
                "measure": d.get("measure", "ncut"),
                "value": d.get("value", d.get("ncut")),
                "null_mean": s.get("mean", np.nan),
                "null_std": s.get("std", np.nan),
                "z": np.nan if s.get("z") is None else s["z"],
                "p_value": s.get("p_value", np.nan),
            })
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "blocks": [
                {"block": b.name, "d_model": b.d_model, "d_ff": b.d_ff, **r.to_dict()}
                for b, r in zip(self.blocks, self.results, strict=True)
            ],
            "version": __version__,
        }


def score_blocks(
    source: str | os.PathLike | nn.Module | Mapping | Sequence[MLPBlock],
    method: str = "spectral",
    n_clusters: int = 12,
    n_shuffles: int = 50,
    shuffle_method: str = "layer",
    seed: int = 0,
    jobs: int = 1,
    clusterer: SpectralClusterer | None = None,
    progress: bool = False,
) -> BlockScores:
    """Score every MLP block's 3-layer graph against its own shuffles.

    Every block uses the same ``seed``, so block ``i``'s row equals scoring that block's
    graph alone (`modscope.score` for ``method="spectral"``, `modscope.measures.score_measure`
    otherwise).
    """
    from .measures import score_graph

    given = isinstance(source, Sequence) and not isinstance(source, str)
    blocks = list(source) if given else mlp_blocks(source)
    results = [
        score_graph(
            block.graph(), method, n_clusters, n_shuffles, shuffle_method, seed, jobs, clusterer, progress
        )
        for block in blocks
    ]
    return BlockScores(blocks, results, method)


def format_blocks(scores: BlockScores, source: str = "") -> str:
    """The per-block table for the terminal."""
    df = scores.to_frame()
    measure = df["measure"].iloc[0] if len(df) else "ncut"
    lines = [
        f"modscope {__version__}  {source}".rstrip(),
        f"{len(df)} MLP blocks, method {scores.method} ({measure}; "
        f"{'higher' if measure == 'modularity' else 'lower'} = more modular)",
        "",
    ]
    width = max([5, *(len(b) for b in df["block"])])
    header = f"{'block':<{width}}  d_model   d_ff  {measure:>10}  null mean +- std     z       p"
    lines += [header, "-" * len(header)]
    for _, r in df.iterrows():
        has_null = not np.isnan(r["null_mean"])
        null = f"{r['null_mean']:.4f} +- {r['null_std']:.4f}" if has_null else "n/a".ljust(18)
        z = "n/a" if np.isnan(r["z"]) else f"{r['z']:.2f}"
        p = "n/a" if np.isnan(r["p_value"]) else f"{r['p_value']:.4g}"
        lines.append(
            f"{r['block']:<{width}}  {r['d_model']:>7} {r['d_ff']:>6}  {r['value']:>10.4f}  "
            f"{null}  {z:>6}  {p:>6}"
        )
    return "\n".join(lines)
