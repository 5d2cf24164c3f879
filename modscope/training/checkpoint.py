"""modscope's own checkpoints: one file that ``torch.load(weights_only=True)`` reads, holding a
trained MLP, its task and how it was trained.

The file layout is documented (and read for graphs) in `modscope.graphs.files.formats`. A
`Checkpoint` rebuilds the network ([`Checkpoint.model()`][modscope.training.checkpoint.Checkpoint.model]:
inputs and outputs in the task's order, whatever BIMT swapped) and its task (`task_for_checkpoint`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._version import __version__
from ..errors import ModscopeError
from ..graphs.files import formats
from ..runtime.atomic import write_atomic
from ..tasks import Task, get_task
from .models import MLP, Architecture

__all__ = [
    "WEIGHT_SUFFIXES",
    "Checkpoint",
    "check_weights_path",
    "from_payload",
    "load_checkpoint",
    "save_checkpoint",
    "save_state_dict",
    "task_for_checkpoint",
]


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
        return formats.task_ordered_state_dict(
            self.state_dict, self.permutations, len(self.architecture.widths) - 1
        )

    def model(self) -> MLP:
        """Rebuild the network (eval mode) computing the task's function in task order."""
        net = MLP(self.architecture)
        try:
            net.load_state_dict(self.task_ordered_state_dict())
        except RuntimeError as exc:
            raise ModscopeError(f"checkpoint state_dict does not fit its architecture: {exc}") from None
        return net.eval()

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": formats.CHECKPOINT_FORMAT,
            "format_version": formats.CHECKPOINT_FORMAT_VERSION,
            "modscope_version": __version__,
            "architecture": self.architecture.to_dict(),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in self.state_dict.items()},
            **{key: getattr(self, key) for key in ("task", "train_config", "seed", "metrics", "bimt")},
        }


def from_payload(obj: dict[str, Any], source: str = "checkpoint") -> Checkpoint:
    """The `Checkpoint` of a loaded payload dict (one-line errors for other versions or shapes)."""
    formats.check_checkpoint_version(obj, source)
    try:
        arch = Architecture.from_dict(obj["architecture"])
        sd = dict(obj["state_dict"])
    except (KeyError, TypeError) as exc:
        raise ModscopeError(f"{source}: malformed modscope checkpoint ({exc})") from None
    return Checkpoint(
        architecture=arch,
        state_dict=sd,
        **{key: obj.get(key) or {} for key in ("task", "train_config", "metrics")},  # {} when absent or None
        seed=obj.get("seed"),
        bimt=obj.get("bimt"),
        modscope_version=obj.get("modscope_version", ""),
    )


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` atomically to ``path``."""
    payload = ckpt.to_payload()
    return write_atomic(path, lambda fh: torch.save(payload, fh))


WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def check_weights_path(path: str | os.PathLike) -> None:
    """A one-line refusal of a weights file name `save_state_dict` cannot write."""
    if Path(path).suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModscopeError(
            f"{path}: the trained weights are written as a state dict: name the file .safetensors or .pt"
        )


def save_state_dict(path: str | os.PathLike, module: torch.nn.Module) -> Path:
    """Write ``module``'s state dict atomically: ``.safetensors`` (tensors only, read without
    pickle) or ``.pt`` / ``.pth`` (``torch.save`` of plain tensors, read with ``weights_only``).
    Each tensor is copied to the CPU on its own, so tied weights are stored under each name."""
    check_weights_path(path)
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}
    if Path(path).suffix.lower() == ".safetensors":
        from safetensors.torch import save

        return write_atomic(path, lambda fh: fh.write(save(state)))
    return write_atomic(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a modscope checkpoint safely (``weights_only=True``); errors are one line."""
    suffix = Path(path).suffix.lower()
    run_it = (
        "this command runs the network: pass its code with --model package.module:factory and your "
        "data with --data FILE (score and plot network read the weights as they are)"
    )
    if suffix in (".safetensors", ".npz"):
        raise ModscopeError(f"{path}: weights without a forward, not a modscope checkpoint: {run_it}")
    if suffix in (".onnx", ".h5", ".hdf5", ".keras", ".pt2"):
        raise ModscopeError(
            f"{path}: not a modscope checkpoint but a model file, which score reads for its graph; "
            "knockout and masks run the network on your data: pass its code with --model "
            "package.module:factory, its weights (a state dict) and --data FILE"
        )
    obj = formats.safe_torch_load(path, trust_option=False)
    if not formats.is_checkpoint_payload(obj):
        what = "a modscope checkpoint"
        if isinstance(obj, dict):
            with contextlib.suppress(ModscopeError):  # not a state dict either: the plain refusal
                n = len(formats.unwrap_state_dict(obj, str(path)))
                what = f"a modscope checkpoint but a state dict of {n} tensors"
        raise ModscopeError(f"{path}: not {what}: {run_it}")
    return from_payload(obj, str(path))


def task_for_checkpoint(ckpt: Any, name: str | None = None, data: str | None = None) -> Task:
    """The task to test a checkpoint on: ``name`` (default: the one it was trained on).

    The checkpoint's recorded task parameters (seed, sizes) are reused when the names
    agree, so the test split is the one it was evaluated on; ``data`` overrides the data
    path of file-backed tasks.
    """
    recorded = ckpt.task or {}
    name = name or recorded.get("name")
    if not name:
        raise ModscopeError("the checkpoint records no task: pass one with --task")
    params = dict(recorded.get("params") or {}) if name == recorded.get("name") else {}
    if data is not None:
        params["data"] = data
    task = get_task(name, **params)
    widths = ckpt.architecture.widths
    if task.vocab_size is None and (task.n_inputs, task.n_outputs) != (widths[0], widths[-1]):
        raise ModscopeError(
            f"task {name} has {task.n_inputs} inputs and {task.n_outputs} outputs, the network "
            f"{widths[0]} and {widths[-1]}"
        )
    return task
