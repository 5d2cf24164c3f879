"""modscope's own checkpoint format: one file that ``torch.load(weights_only=True)`` reads.

Layout (a plain dict of str / int / float / list / dict / tensors, so no pickled code)::

    {"format": "modscope.checkpoint", "format_version": 1, "modscope_version": "0.1.0",
     "architecture": {...Architecture.to_dict()...},
     "state_dict": {name: tensor},          # in neuron *position* order (see "bimt")
     "task": {"name": str, "params": {...}},
     "train_config": {...}, "seed": int, "metrics": {...},
     "bimt": None | {"permutations": [LongTensor per layer],   # perm[l][p] = original index
                     "coordinates": [FloatTensor (n_l, d) per layer], ...}}

BIMT moves neurons around; ``permutations[l][p]`` is the original (task) index of the
neuron now at position ``p`` of layer ``l``. :meth:`Checkpoint.model` un-permutes the
input and output layers so the rebuilt model takes features and returns outputs in the
task's order; hidden neurons stay at their positions (a permutation of hidden units
never changes the function).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._atomic import write_atomic
from .errors import ModscopeError
from .models import MLP, Architecture

FORMAT = "modscope.checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded modscope checkpoint. Tensors live on the CPU."""

    architecture: Architecture
    state_dict: dict[str, torch.Tensor]
    task: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    bimt: dict[str, Any] | None = None
    modscope_version: str = ""

    @property
    def permutations(self) -> list[torch.Tensor] | None:
        return None if self.bimt is None else self.bimt.get("permutations")

    def task_ordered_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict with input columns / output rows put back in task order."""
        sd = {k: v.clone() for k, v in self.state_dict.items()}
        perms = self.permutations
        if not perms:
            return sd
        n_lin = len(self.architecture.widths) - 1
        inv_in = torch.argsort(perms[0])  # position of each original input
        inv_out = torch.argsort(perms[-1])
        sd["layers.0.weight"] = sd["layers.0.weight"][:, inv_in]
        last = f"layers.{n_lin - 1}"
        sd[f"{last}.weight"] = sd[f"{last}.weight"][inv_out]
        sd[f"{last}.bias"] = sd[f"{last}.bias"][inv_out]
        return sd

    def model(self) -> MLP:
        """Rebuild the network (eval mode) computing the task's function in task order."""
        net = MLP(self.architecture)
        try:
            net.load_state_dict(self.task_ordered_state_dict())
        except RuntimeError as exc:
            raise ModscopeError(f"checkpoint state_dict does not fit its architecture: {exc}") from None
        return net.eval()

    def to_payload(self) -> dict[str, Any]:
        from . import __version__

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "modscope_version": __version__,
            "architecture": self.architecture.to_dict(),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()},
            "task": self.task,
            "train_config": self.train_config,
            "seed": self.seed,
            "metrics": self.metrics,
            "bimt": self.bimt,
        }


def is_checkpoint_payload(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def from_payload(obj: dict[str, Any], source: str = "checkpoint") -> Checkpoint:
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise ModscopeError(
            f"{source}: modscope checkpoint format version {version!r} is not supported "
            f"(this modscope reads version {FORMAT_VERSION})"
        )
    try:
        arch = Architecture.from_dict(obj["architecture"])
        sd = dict(obj["state_dict"])
    except (KeyError, TypeError) as exc:
        raise ModscopeError(f"{source}: malformed modscope checkpoint ({exc})") from None
    return Checkpoint(
        architecture=arch,
        state_dict=sd,
        task=obj.get("task") or {},
        train_config=obj.get("train_config") or {},
        seed=obj.get("seed"),
        metrics=obj.get("metrics") or {},
        bimt=obj.get("bimt"),
        modscope_version=obj.get("modscope_version", ""),
    )


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically to ``path``."""
    payload = ckpt.to_payload()
    return write_atomic(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a modscope checkpoint safely (``weights_only=True``); errors are one line."""
    from .io import safe_torch_load

    obj = safe_torch_load(path)
    if not is_checkpoint_payload(obj):
        raise ModscopeError(f"{path}: not a modscope checkpoint (no 'format': '{FORMAT}' entry)")
    return from_payload(obj, str(path))
