"""The masks of several functions of one network, what they say, and their file format."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from ..errors import ModscopeError
from ..runtime.atomic import write_atomic
from ..runtime.jsonable import to_jsonable
from ..stats.flags import Flag, mask_flags

__all__ = ["FORMAT", "FORMAT_VERSION", "MaskResult", "load_masks"]

FORMAT = "modscope.masks"
FORMAT_VERSION = 1


@dataclass
class MaskResult:
    """Masks of several functions of one network and what they say.

    ``masks[f]`` maps each masked parameter name to a bool tensor of its shape. ``accuracy[f][g]``
    is the task metric (accuracy, or MSE for regression tasks) of the network under mask f on the
    test data of g; ``inverted_accuracy[f][g]`` the same with exactly the weights of mask f
    removed and all others kept; ``full_accuracy[g]`` the intact network on g. The ``control``
    mask, when trained, learns the whole task; it is left out of the ``shared`` unions.
    ``class_drop[f][c]`` (per-class runs only): per-class accuracy of the intact network minus
    that under mask f, from the confusion matrices on the whole test set.

    ``groups`` (runs given an example input): per unit group of the traced graph, the masked
    parameters that write into it and read from it (``writes`` / ``reads``), the number of their
    weights touching it, and the masks' kept fraction, IoU, IoMin and shared fraction over those
    weights. ``units``: the `modscope.graphs.tracing.incidence.ParameterMap` they came from (for
    `alignment`; not saved). ``config["metric"]`` names the metric of runs on the user's data.
    """

    functions: list[str]
    layer_names: list[str]
    masks: dict[str, dict[str, torch.Tensor]]
    kept_fraction: dict[str, float | None]
    iou: dict[str, float | None]
    iomin: dict[str, float | None]
    shared: dict[str, float | None]
    accuracy: dict[str, dict[str, float]]
    inverted_accuracy: dict[str, dict[str, float]]
    full_accuracy: dict[str, float]
    layers: dict[str, dict[str, dict]]
    class_drop: dict[str, dict[str, float | None]] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    logits: dict[str, dict[str, torch.Tensor]] | None = None
    history: dict[int, MaskResult] = field(default_factory=dict)  # steps -> result (record_at)
    groups: dict[str, dict[str, Any]] | None = None
    units: Any = None

    @property
    def flags(self) -> list[Flag]:
        """Caveats (`modscope.stats.flags`): masks still near the 100 % of the weights every mask
        starts from are flagged ``masks_not_converged`` (not part of ``to_dict``)."""
        return mask_flags(self.kept_fraction, self.config.get("steps"), self.functions)

    @property
    def warnings(self) -> list[str]:
        """The `flags` as sentences."""
        return [f.message for f in self.flags]

    def to_dict(self) -> dict:
        # every field but the masks themselves, the config and what is never saved, in field order
        skip = ("layer_names", "masks", "config", "logits", "history", "units")
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        d = {k: v for k, v in values.items() if v is not None}  # to_jsonable copies
        if "metric" in self.config:
            d["metric"] = self.config["metric"]
        return to_jsonable(d)

    def to_payload(self) -> dict[str, Any]:
        """Everything but ``logits``, ``history`` and ``units``, as plain containers and tensors."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self) if f.name not in ("logits", "history", "units")
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> MaskResult:
        return cls(**payload)

    def to_frame(self):
        """One row per (mask, data): metric under the mask, under its inverse, intact; plus the
        mask's kept and shared fractions."""
        import pandas as pd

        return pd.DataFrame([
            {"mask": f, "data": g, "accuracy": self.accuracy[f][g],
             "inverted_accuracy": self.inverted_accuracy[f][g], "full_accuracy": self.full_accuracy[g],
             "kept_fraction": self.kept_fraction[f], "shared": self.shared[f]}
            for f in self.functions for g in self.full_accuracy
        ])

    def layer_frame(self):
        """One row per (layer, mask): kept and shared fraction in that layer."""
        import pandas as pd

        return pd.DataFrame([
            {"layer": layer, "mask": f, "kept_fraction": v["kept_fraction"][f], "shared": v["shared"][f]}
            for layer, v in self.layers.items() for f in self.functions
        ])

    def group_frame(self):
        """One row per (unit group, mask): the weights touching the group, the mask's kept and
        shared fraction of them (runs given an example input; empty otherwise)."""
        import pandas as pd

        return pd.DataFrame([
            {"group": g, "mask": f, "weights": v["weights"], "kept_fraction": v["kept_fraction"][f],
             "shared": v["shared"][f], "writes": ", ".join(v["writes"]), "reads": ", ".join(v["reads"])}
            for g, v in (self.groups or {}).items() for f in self.functions
        ])

    def save(self, path: str | os.PathLike) -> os.PathLike:
        """Write the hard masks (and the config) to a file ``torch.load(weights_only=True)`` reads."""
        payload = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "functions": list(self.functions),
            "layers": list(self.layer_names), "config": to_jsonable(self.config),
            "masks": {f: {n: t.cpu().contiguous() for n, t in m.items()} for f, m in self.masks.items()},
        }
        return write_atomic(path, lambda fh: torch.save(payload, fh))


def load_masks(path: str | os.PathLike) -> dict[str, dict[str, torch.Tensor]]:
    """Read a file written by [`MaskResult.save()`][modscope.masks.result.MaskResult.save]: ``{function:
    {parameter name: bool tensor}}``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModscopeError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        raise ModscopeError(f"{path}: not a readable torch file ({type(exc).__name__})") from None
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
        raise ModscopeError(f"{path}: not a modscope masks file")
    if obj.get("format_version") != FORMAT_VERSION:
        raise ModscopeError(f"{path}: masks format version {obj.get('format_version')!r} unsupported")
    return {f: dict(obj["masks"][f]) for f in obj["functions"]}
