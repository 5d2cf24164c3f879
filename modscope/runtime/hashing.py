"""Content hashes: of files, of arrays, of JSON-able settings (cache and sweep keys)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["fingerprint_arrays", "file_sha256", "json_digest"]


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in blocks (never whole)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def fingerprint_arrays(arrays: Iterable[Any]) -> str:
    """sha256 of arrays' shapes, dtypes and bytes (order matters)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def json_digest(obj: Any) -> str:
    """sha256 of ``obj`` as key-sorted JSON (non-JSON values by ``str``)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
