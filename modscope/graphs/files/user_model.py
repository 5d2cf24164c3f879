"""The user's own model, named by its code: ``package.module:factory`` plus a weights file.

The user names the code that builds the module (modscope imports it, as ``python -m`` would,
with the working directory on the path); the weights come from a file read by the safe readers
(nothing in a checkpoint runs). The factory returns an ``nn.Module``, or ``(module,
example_input)``; a module may also carry an ``example_input`` attribute. Otherwise the example
input is given by shape (``1,3,32,32``) and dtype.
"""

from __future__ import annotations

import importlib
import operator
import os
import sys
from collections.abc import Mapping
from typing import Any

from ...errors import ModscopeError
from ...runtime.limits import Budget
from . import formats

__all__ = ["build_model", "example_tensor", "load_weights_into"]

_DTYPES = ("float32", "float64", "float16", "bfloat16", "long", "int32", "bool")


def example_tensor(shape: str | tuple[int, ...], dtype: str = "float32") -> Any:
    """A zero tensor of ``shape`` (``"1,3,32,32"`` or a tuple) and ``dtype`` (``long`` for token
    ids): the example input a module is traced with."""
    import torch

    if isinstance(shape, str):
        try:
            dims = tuple(int(t) for t in shape.replace("x", ",").split(",") if t.strip())
        except ValueError:
            raise ModscopeError(
                f"an input shape is comma-separated integers (1,3,32,32), got {shape!r}"
            ) from None
    else:
        try:
            dims = tuple(operator.index(t) for t in shape)
        except TypeError:
            raise ModscopeError(f"an input shape is a tuple of integers, got {shape!r}") from None
    if not dims or min(dims) < 1:
        raise ModscopeError(f"an input shape needs positive sizes, got {shape!r}")
    if dtype not in _DTYPES:
        raise ModscopeError(f"unknown input dtype {dtype!r}; choose from {', '.join(_DTYPES)}")
    item = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    Budget("--input-shape").shape(dims, item, f"an example input of shape {','.join(map(str, dims))}")
    return torch.zeros(dims, dtype=getattr(torch, dtype))


def _factory(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ModscopeError(f"--model takes package.module:factory, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:  # as `python -m` does: the user's own modules next to their data
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # the user's code: its import failure in one line
        raise ModscopeError(
            f"cannot import {module_name!r} ({type(exc).__name__}: {formats.first_line(exc)})"
        ) from None
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ModscopeError(f"{module_name} has no {attr!r}")
        factory = getattr(factory, part)
    return factory


def load_weights_into(model: Any, weights: str | os.PathLike | Mapping[str, Any]) -> None:
    """Load a state dict (a file read safely, or a mapping) into ``model``, every key matched."""
    if isinstance(weights, Mapping):
        state = formats.unwrap_state_dict(weights, "weights")
    else:
        state = formats.read_state_dict(weights)
    import numpy as np
    import torch

    state = {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v for k, v in state.items()}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches: the file is not this model's
        raise ModscopeError(f"the weights do not fit the model ({formats.first_line(exc)})") from None
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:4])
        extra = ", ".join(result.unexpected_keys[:4])
        raise ModscopeError(
            "the weights do not fit the model: "
            + (f"missing {missing}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"unexpected {extra}" if extra else "")
        )


def build_model(spec: str, weights: str | os.PathLike | Mapping[str, Any] | None = None) -> tuple[Any, Any]:
    """``(module, example_input or None)`` from ``package.module:factory`` and a weights file."""
    import torch

    factory = _factory(spec)
    try:
        made = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    except SystemExit as exc:  # the user's code ended the run: say so, do not end silently
        raise ModscopeError(f"{spec}() called sys.exit({exc.code!r}) instead of returning a module") from None
    except Exception as exc:  # the user's code
        raise ModscopeError(f"{spec}() failed ({type(exc).__name__}: {formats.first_line(exc)})") from None
    example = None
    if isinstance(made, tuple) and len(made) == 2:
        made, example = made
    if not isinstance(made, torch.nn.Module):
        raise ModscopeError(f"{spec} gave a {type(made).__name__}, not an nn.Module")
    if example is None:
        example = getattr(made, "example_input", None)
    if weights is not None:
        load_weights_into(made, weights)
    return made, example
