"""Results to JSON: plain Python numbers, ``None`` for NaN / infinity, and an exact array codec.

Result dicts go through `to_jsonable` before they are written (``json`` refuses NaN with
``allow_nan=False``); cached intermediate results use `encode_exact` / `decode_exact`, which
keep arrays and non-finite floats bit for bit.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModscopeError

__all__ = ["decode_exact", "encode_exact", "finite_or_none", "read_json_file", "to_jsonable"]


def read_json_file(path: str | os.PathLike) -> Any:
    """The parsed contents of a JSON file, or a one-line `ModscopeError` (missing, unreadable, not
    JSON) naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModscopeError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModscopeError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ModscopeError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None


def finite_or_none(x: Any) -> float | None:
    """``float(x)``, or ``None`` for ``None``, NaN and infinities."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def to_jsonable(obj: Any) -> Any:
    """A copy of ``obj`` with numpy scalars / arrays as Python numbers / lists, tuples as lists,
    dict keys as strings and non-finite floats as ``None``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, float | np.floating):
        return finite_or_none(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def encode_exact(value: Any) -> Any:
    """JSON-ready copy that round-trips exactly: arrays as tagged hex bytes, NaN / inf as tags."""
    if isinstance(value, dict):
        return {k: encode_exact(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__array__": value.tobytes().hex(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return {"__float__": repr(float(value))}
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode_exact(value: Any) -> Any:
    """The inverse of `encode_exact`."""
    if isinstance(value, dict):
        if "__array__" in value:
            raw = bytes.fromhex(value["__array__"])
            return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
        if "__float__" in value:
            return float(value["__float__"])
        return {k: decode_exact(v) for k, v in value.items()}
    return value
