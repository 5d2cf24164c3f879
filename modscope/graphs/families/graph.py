"""A known family's graph: its reference module checked against the checkpoint, loaded, traced.

`family_graph` infers the sizes from shapes (and ``config.json`` for what no shape holds), builds
the family's reference module on the meta device, checks every key and shape against it (a key
missing, unexpected or of another shape is refused in one line, never guessed around), loads the
tensors into it (``load_state_dict(strict=True, assign=True)``: no copy of float32 / float64
weights), ties the weights a tied model does not save, and traces it
(`modscope.graphs.tracing.trace_graph`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModscopeError, first_line
from ..weight_graph import check_build_memory
from .base import WAY_OUT, Family, FamilyGraph
from .detect import DATA_PARALLEL, match_family, unwrap_keys

__all__ = ["family_graph", "read_config"]


def read_config(folder: str | os.PathLike | None) -> dict[str, Any] | None:
    """The ``config.json`` in ``folder`` as plain JSON (Hugging Face key names), or None."""
    if folder is None:
        return None
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModscopeError(f"{path}: not a readable JSON config ({first_line(exc, None)})") from None
    if not isinstance(config, dict):
        raise ModscopeError(f"{path}: a config must be a JSON object, got {type(config).__name__}")
    return config


def _torch_state(tensors: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """The tensors as torch tensors of one floating dtype (float64 if any is, else float32:
    half and bfloat16 widen exactly); integer buffers stay as they are."""
    import torch

    def as_torch(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v.detach()
        a = np.asarray(v)
        return torch.from_numpy(a if a.flags.writeable and a.flags.c_contiguous else np.array(a))

    state = {k: as_torch(v) for k, v in tensors.items()}
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in state.values()) else torch.float32
    return {k: (t.to(dtype) if t.is_floating_point() else t) for k, t in state.items()}, dtype


def _check_keys(family: Family, config: Mapping[str, Any], expected: Mapping[str, Any], state: dict) -> None:
    """Every key of the reference in ``state`` with its shape, and no other key; else one line."""
    what = f"{family.label(config)} ({family.describe(config)})"
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ModscopeError(f"{missing[0]}: missing{more}, which a {what} has: {WAY_OUT}")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise ModscopeError(f"{unexpected[0]}: not a tensor of a {what}{more}: {WAY_OUT}")
    for key, want in expected.items():
        if key in state and tuple(state[key].shape) != tuple(want.shape):
            have = "x".join(map(str, state[key].shape)) or "scalar"
            need = "x".join(map(str, want.shape)) or "scalar"
            raise ModscopeError(f"{key}: shape {have} where a {what} has {need}: {WAY_OUT}")


def _mlp_groups(
    family: Family, config: Mapping[str, Any], group_names: tuple[str, ...]
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    first = {name.split("+")[0]: g for g, name in enumerate(group_names)}
    groups, names = [], []
    for block, module in family.mlp_inputs(config):
        if module not in first:
            raise ModscopeError(f"{module}: no hidden group of this MLP in the traced graph")
        groups.append(first[module])
        names.append(block)
    return tuple(groups), tuple(names)


def family_graph(
    tensors: Mapping[str, Any], *, kernel_norm: str = "1", config: Mapping[str, Any] | None = None
) -> FamilyGraph:
    """The unit graph ([spec §1b][spec-1b]) of a state dict of a known family, as tracing the real model
    gives.

    ``tensors``: ``{key: array or tensor}`` with the checkpoint's own key names (a
    ``module.`` prefix of ``DataParallel`` is stripped). ``config``: the model's ``config.json``
    (Hugging Face key names, e.g. ``num_attention_heads``, ``num_key_value_heads``,
    ``head_dim``) or numbers given by hand, for what no shape holds; its ``model_type``, when
    given, must be one of the family's. ``kernel_norm``: the norm of a kernel or gate-row slice.
    Returns a `FamilyGraph`; a state dict of no known family, or one that does not fit its
    family, is refused in one line.
    """
    import torch

    from ..tracing import trace_graph

    if unwrap_keys(tensors) != list(tensors.keys()):
        tensors = {k[len(DATA_PARALLEL) :]: v for k, v in tensors.items()}
    family = match_family(tensors)
    if family is None:
        raise ModscopeError("the key names are not those of a known family")
    given = dict(config or {})
    model_type = given.get("model_type")
    if model_type is not None and family.model_types and model_type not in family.model_types:
        raise ModscopeError(
            f"config.json says model_type {model_type!r}, but the keys are laid out as {family.title}'s "
            f"({', '.join(family.model_types)}): not read as it; {WAY_OUT}"
        )
    state = {k: v for k, v in tensors.items() if family.buffers is None or not family.buffers.search(k)}
    for key, others in family.aliases().items():
        found = [o for o in others if o in state]
        if key not in state and found:
            state[key] = state[found[0]]
        for other in found:
            del state[other]
    cfg = family.config(state, given)
    state, dtype = _torch_state(state)
    ties = family.ties(cfg)
    state.update({target: state[src] for target, src in ties.items() if target not in state and src in state})
    with torch.device("meta"):
        module = family.module(cfg)
    expected = module.state_dict()
    _check_keys(family, cfg, expected, state)
    counters = [k for k in expected if k.endswith("num_batches_tracked") and k not in state]
    state.update({k: torch.zeros((), dtype=torch.long) for k in counters})  # a counter, not a weight
    check_build_memory(n_weights=sum(int(t.numel()) for t in state.values() if t.ndim >= 2))
    module.load_state_dict(state, strict=True, assign=True)
    for target, source in ties.items():
        owner, _, name = target.rpartition(".")  # the tied parameter is the one it is tied to
        setattr(module.get_submodule(owner) if owner else module, name, module.get_parameter(source))
    example = family.example_input(cfg)
    if isinstance(example, torch.Tensor) and example.is_floating_point():
        example = example.to(dtype)
    label = family.label(cfg)
    graph = trace_graph(module, example, kernel_norm=kernel_norm).read_as(
        f"{label} ({family.describe(cfg)}), traced from a reference module"
    )
    groups, names = _mlp_groups(family, cfg, graph.group_names)
    return FamilyGraph(graph, family.name, cfg, groups, names, label)
