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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModscopeError
from . import formats
from .arrays import as_float64
from .names import natural_key
from .weight_graph import WeightGraph

__all__ = ["PAIRS", "MLPBlock", "mlp_blocks"]

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


def _read(source: str | os.PathLike | Mapping | Any) -> Mapping[str, Any]:
    if hasattr(source, "state_dict") and callable(source.state_dict):  # an nn.Module
        return source.state_dict()
    if isinstance(source, Mapping):
        return formats.unwrap_state_dict(source, "state dict")
    if not isinstance(source, str | os.PathLike):
        raise ModscopeError(f"cannot load a transformer from a {type(source).__name__}")
    path = Path(source)
    if path.suffix.lower() == ".safetensors":
        return formats.read_safetensors(path)
    return formats.unwrap_state_dict(formats.safe_torch_load(path), str(path))


def _matrix(name: str, value: Any) -> np.ndarray:
    a = as_float64(name, value)
    if a.ndim != 2:
        raise ModscopeError(f"{name}: an MLP weight must be 2-D, got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise ModscopeError(f"{name}: weights contain NaN or infinite values")
    return a


def mlp_blocks(source: str | os.PathLike | Mapping | Any) -> list[MLPBlock]:
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
    return sorted(blocks, key=lambda b: natural_key(b.name))
