"""Weight masks as JSON: one bit per weight, packed and base64-encoded.

`modscope masks --json` writes them under the key ``weight_masks`` (added in 0.4.0) so that
`modscope explore` can draw each function's mask on the network; 1 bit per weight keeps the
file small (a 768 x 3072 matrix: 295 KB of text).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ModscopeError

__all__ = ["decode_masks", "encode_masks"]


def encode_masks(masks: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{function: {parameter: {"shape": [...], "bits": base64 of np.packbits(kept.ravel())}}}``.

    ``masks[f][name]``: a bool array or tensor (True = the weight is kept)."""
    return {f: {name: _packed(m) for name, m in per.items()} for f, per in masks.items()}


def _packed(m: Any) -> dict[str, Any]:
    """One mask: its shape and its bits, packed and base64-encoded."""
    a = np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m, dtype=bool)
    return {"shape": list(a.shape), "bits": base64.b64encode(np.packbits(a.ravel())).decode()}


def decode_masks(d: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of `encode_masks`: ``{function: {parameter: bool array of its shape}}``."""
    try:
        return {f: {name: _unpacked(rec, f"{f}/{name}") for name, rec in per.items()} for f, per in d.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ModscopeError(
            f"weight_masks: not masks as `modscope masks --json` writes them ({exc})"
        ) from None


def _unpacked(rec: Mapping[str, Any], where: str) -> np.ndarray:
    """One mask (``where``: its function/parameter, for the error) from its shape and bits."""
    shape = tuple(int(s) for s in rec["shape"])
    n = int(np.prod(shape, dtype=np.int64))
    bits = np.unpackbits(np.frombuffer(base64.b64decode(rec["bits"]), dtype=np.uint8))
    if bits.size < n:
        raise ValueError(f"{where}: {bits.size} bits for {n} weights")
    return bits[:n].astype(bool).reshape(shape)
