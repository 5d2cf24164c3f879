"""Transformer MLP blocks: one 3-layer graph per block, every block scored ([spec §1][spec-1]).

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

A checkpoint of a known family (`modscope.graphs.families`: BERT / RoBERTa, GPT-2, GPT-NeoX, OPT,
LLaMA / Mistral, T5, ViT) has its blocks cut from the family's traced graph instead, so they are
the whole graph's own: ``W_in`` from the stream to the MLP's hidden group with the LayerNorm /
RMSNorm gain folded into its columns and a gated pair (SwiGLU ``gate_proj`` and ``up_proj``, T5's
``wi_0`` and ``wi_1``) combined as in the whole graph, ``W_out`` back to the stream; blocks are
named by layer (``bert.encoder.layer.3``, ``model.layers.3.mlp``) in layer order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModscopeError
from .arrays import as_float64
from .families import FamilyGraph, family_graph, match_family, read_config
from .files import formats
from .names import natural_key
from .weight_graph import WeightGraph

__all__ = [
    "GATED_MLP",
    "PAIRS",
    "MLPBlock",
    "count_mlp_blocks",
    "family_blocks",
    "iter_mlp_blocks",
    "mlp_blocks",
    "read_mlp_blocks",
]

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
    if path.suffix.lower() in (".onnx", ".h5", ".hdf5", ".keras", ".pt2"):
        raise ModscopeError(
            f"{path}: blocks reads a transformer's state dict (.safetensors, .bin / .pt); a model file "
            "is scored whole with `modscope score`"
        )
    return formats.read_state_dict(path)


def _matrix(name: str, value: Any) -> np.ndarray:
    a = as_float64(name, value)
    if a.ndim != 2:
        raise ModscopeError(f"{name}: an MLP weight must be 2-D, got shape {tuple(a.shape)}")
    if not np.isfinite(a).all():
        raise ModscopeError(f"{name}: weights contain NaN or infinite values")
    return a


def family_blocks(known: FamilyGraph) -> list[MLPBlock]:
    """The MLP blocks of a known family's graph, in layer order: per MLP hidden group, ``W_in``
    the stream -> hidden block and ``W_out`` the hidden -> stream block of the whole graph
    (several blocks into one group, as a gated pair the tracer could not stack, add as ``|W|``)."""
    g = known.graph
    if not known.mlp_groups:
        raise ModscopeError(f"a {known.title} has no transformer MLP blocks")
    blocks = []
    for group, name in zip(known.mlp_groups, known.mlp_names, strict=True):
        into = [b for b, (_, dst) in enumerate(g.links) if dst == group]
        out = [b for b, (src, _) in enumerate(g.links) if src == group]
        streams = {g.links[b][0] for b in into} | {g.links[b][1] for b in out}
        if not into or not out or len(streams) != 1:
            raise ModscopeError(f"{name}: its hidden group does not read from and write to one stream")

        def joined(bs: list[int]) -> np.ndarray:
            return g.weights[bs[0]] if len(bs) == 1 else sum(np.abs(g.weights[b]) for b in bs)

        blocks.append(MLPBlock(name, joined(into), joined(out)))
    return blocks


def mlp_blocks(source: str | os.PathLike | Mapping | Any) -> list[MLPBlock]:
    """`read_mlp_blocks` without the reading."""
    return read_mlp_blocks(source)[0]


def read_mlp_blocks(source: str | os.PathLike | Mapping | Any) -> tuple[list[MLPBlock], str]:
    """``(blocks, reading)``: every MLP block of a transformer checkpoint, in natural key order
    (``h.2`` before ``h.10``), and how they were read.

    Block names are the key prefixes (``h.0.mlp``, ``model.decoder.layers.3``). A checkpoint of a
    known family (with a ``config.json`` beside the file where it needs one) gives the blocks of
    its traced graph (`family_blocks`). Raises `ModscopeError` when no known pair is found or a
    pair's shapes do not chain.
    """
    tensors = _read(source)
    if match_family(tensors) is not None:
        near = Path(source).parent if isinstance(source, str | os.PathLike) else None
        fg = family_graph(tensors, config=read_config(near))
        blocks = family_blocks(fg)
        return blocks, f"{len(blocks)} MLP blocks of {fg.graph.reading}"
    blocks = []
    pairs: list[str] = []
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
            pairs.append(f"{in_suffix}/{out_suffix}")
    if not blocks:
        known = ", ".join(f"{a}/{b}" for a, b, _ in PAIRS)
        raise ModscopeError(f"no transformer MLP blocks found (looked for {known})")
    how = ", ".join(dict.fromkeys(pairs))
    return sorted(blocks, key=lambda b: natural_key(b.name)), (
        f"{len(blocks)} MLP blocks by their key pairs ({how}), no known family"
    )


# a gated (SwiGLU) MLP of the LLaMA / Mistral layout, any prefix: its norm gain goes on the columns
GATED_MLP = re.compile(r"(?P<prefix>(?:.*\.)?layers\.(?P<i>\d+)\.)mlp\.gate_proj\.weight")


@contextmanager
def _gated_file(source: str | os.PathLike | Mapping | Any) -> Iterator[tuple[Any, set[str], list[re.Match]]]:
    """A ``.safetensors`` file opened memory-mapped, its key names and the `GATED_MLP` matches among
    them in layer order (none for any other source: ``(None, set(), [])``)."""
    path = Path(source) if isinstance(source, str | os.PathLike) else None
    if path is None or path.suffix.lower() != ".safetensors":
        yield None, set(), []
        return
    from safetensors import safe_open

    formats.check_file(path)
    with safe_open(str(path), framework="numpy") as f:
        keys = set(f.keys())
        yield f, keys, sorted((m for k in keys if (m := GATED_MLP.fullmatch(k))), key=lambda m: int(m["i"]))


def count_mlp_blocks(source: str | os.PathLike | Mapping | Any) -> int:
    """How many blocks `iter_mlp_blocks` yields, from a ``.safetensors`` file's key names alone
    where it is of the gated layout (no tensor read); else by reading the blocks."""
    with _gated_file(source) as (_, _, gated):
        if gated:
            return len(gated)
    return len(mlp_blocks(source))


def iter_mlp_blocks(source: str | os.PathLike | Mapping | Any) -> Iterator[MLPBlock]:
    """`mlp_blocks`, one block at a time: a ``.safetensors`` file of the LLaMA / Mistral layout
    (``layers.N.mlp.gate_proj/up_proj/down_proj``, ``layers.N.post_attention_layernorm``) is
    memory-mapped and each block's tensors are read only when it comes up, so a 7B-parameter file
    needs one block in memory, never the whole network. The blocks are those `mlp_blocks` gives (a
    gated pair as ``(|gate| + |up|)`` with the RMSNorm gain ``|g|`` on the columns, as in the
    family's whole graph). Any other source, a `PAIRS` layout included: `mlp_blocks`' list, read
    whole, then given block by block.
    """
    with _gated_file(source) as (f, keys, gated):
        for m in gated:
            p = m["prefix"]
            need = [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight",
                    p + "post_attention_layernorm.weight"]
            missing = [k for k in need if k not in keys]
            if missing:
                raise ModscopeError(f"{p}mlp: a gated MLP without {missing[0]!r}")
            gate, up, down, gain = (_matrix(k, f.get_tensor(k)) if i < 3 else f.get_tensor(k)
                                    for i, k in enumerate(need))
            w_in = np.abs(gate)
            del gate
            w_in += np.abs(up)
            del up
            w_in *= np.abs(np.asarray(gain, dtype=np.float64))[None, :]
            if down.shape != (w_in.shape[1], w_in.shape[0]):
                raise ModscopeError(f"{p}mlp: down_proj is {down.shape}, not d_model x d_ff")
            yield MLPBlock(p + "mlp", w_in, down)
        if gated:
            return
    yield from mlp_blocks(source)  # other layouts: read whole, then block by block
