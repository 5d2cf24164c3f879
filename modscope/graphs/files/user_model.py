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

from ...errors import ModscopeError, first_line
from ...runtime.limits import Budget
from . import formats

__all__ = ["build_model", "example_tensor", "guess_example", "load_weights_into", "parse_shape"]

_DTYPES = ("float32", "float64", "float16", "bfloat16", "long", "int32", "bool")


def parse_shape(shape: str | tuple[int, ...]) -> tuple[int, ...]:
    """``"1,3,32,32"`` (or a tuple) -> ``(1, 3, 32, 32)``, positive sizes, or a one-line refusal."""
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
    return dims


def example_tensor(shape: str | tuple[int, ...], dtype: str = "float32") -> Any:
    """A zero tensor of ``shape`` (``"1,3,32,32"`` or a tuple) and ``dtype`` (``long`` for token
    ids): the example input a module is traced with."""
    import torch

    dims = parse_shape(shape)
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
        factory = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # the user's code: its import failure in one line
        raise ModscopeError(
            f"cannot import {module_name!r} ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ModscopeError(f"{module_name} has no {attr!r}")
        factory = getattr(factory, part)
    return factory


def _listed(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load_weights_into(
    model: Any, weights: str | os.PathLike | Mapping[str, Any], *, non_strict: bool = False
) -> list[str]:
    """Load a state dict (a file read safely, or a mapping) into ``model``; returns what was
    ignored, in words (``[]`` when every key matched).

    Keys of buffers (a checkpoint's ``embeddings.position_ids`` that the model makes itself, a
    buffer the file lacks) and integer tensors are ignored and said. Missing or unexpected
    parameters are refused with their names, unless ``non_strict``: then the model keeps its own
    values for missing ones and extra ones are dropped, and both are said."""
    is_mapping = isinstance(weights, Mapping)
    state = formats.unwrap_state_dict(weights, "weights") if is_mapping else formats.read_state_dict(weights)
    import numpy as np
    import torch

    state = {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v for k, v in state.items()}
    # every name of every buffer: non-persistent ones (not in state_dict()) and a shared one's each name
    buffers = {name for name, _ in model.named_buffers(remove_duplicate=False)}
    persistent = set(model.state_dict())
    extra = [k for k in state if k not in persistent]
    harmless = [k for k in extra if k in buffers or not torch.is_floating_point(state[k])]
    state = {k: v for k, v in state.items() if k not in harmless}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches: the file is not this model's
        raise ModscopeError(f"the weights do not fit the model ({first_line(exc)})") from None
    missing_buffers = [k for k in result.missing_keys if k in buffers]
    missing = [k for k in result.missing_keys if k not in buffers]
    unexpected = list(result.unexpected_keys)
    if (missing or unexpected) and not non_strict:
        lacks = f"the file lacks {len(missing)} parameters ({_listed(missing)})" if missing else ""
        extra_text = f"the model has no {len(unexpected)} keys of the file ({_listed(unexpected)})"
        raise ModscopeError(
            "the weights do not fit the model: "
            + "; ".join(t for t in (lacks, extra_text if unexpected else "") if t)
            + "; --non-strict (non_strict=True) loads the rest, the model keeping its own values"
        )
    said = [
        ("buffer keys ignored", harmless + missing_buffers),
        ("--non-strict: parameters the file lacks, kept as made", missing),
        ("--non-strict: keys of the file the model lacks, dropped", unexpected),
    ]
    return [f"{what}: {_listed(keys)}" for what, keys in said if keys]


_GUESSED_LENGTH = 8  # tokens / time steps of a guessed sequence input: any length gives the same graph
_GUESSED_SIDE = 32  # a guessed conv input's spatial size, checked by the trace


def guess_example(module: Any) -> tuple[Any, str]:
    """``(example input, how it was chosen)`` from the module's first layer with weights (in the
    order its code registers them): a Linear's input features, an Embedding's token ids, a
    recurrent layer's input size (a sequence of 8 steps), a conv's channels (a 32-wide map: the
    trace checks it runs; where a head needs another size, pass the shape). Refused for anything else."""
    import torch
    from torch import nn

    first = next((m for m in module.modules() if any(True for _ in m.parameters(recurse=False))), None)
    kind = type(first).__name__
    if isinstance(first, nn.Linear):
        shape, dtype = (1, first.in_features), torch.float32
        how = f"{first.in_features} features, from the first layer ({kind})"
    elif isinstance(first, nn.Embedding):
        shape, dtype = (1, _GUESSED_LENGTH), torch.long
        how = f"{_GUESSED_LENGTH} token ids, from the first layer ({kind})"
    elif isinstance(first, nn.RNNBase):
        steps = (1, _GUESSED_LENGTH) if first.batch_first else (_GUESSED_LENGTH, 1)
        shape, dtype = (*steps, first.input_size), torch.float32
        how = f"{_GUESSED_LENGTH} steps of {first.input_size} features, from the first layer ({kind})"
    elif isinstance(first, nn.Conv1d | nn.Conv2d | nn.Conv3d):
        shape, dtype = (1, first.in_channels, *[_GUESSED_SIDE] * (first.weight.ndim - 2)), torch.float32
        how = (
            f"{first.in_channels} channels from the first layer ({kind}), spatial size {_GUESSED_SIDE} "
            "assumed (the graph does not depend on it unless a head flattens the map)"
        )
    else:
        raise ModscopeError(
            f"pass --input-shape (or --data): the first layer with weights is a {kind}, whose input "
            "shape cannot be known"
        )
    return torch.zeros(shape, dtype=dtype), "example input " + ",".join(map(str, shape)) + f": {how}"


def build_model(
    spec: str,
    weights: str | os.PathLike | Mapping[str, Any] | None = None,
    *,
    non_strict: bool = False,
    notes: list[str] | None = None,
) -> tuple[Any, Any]:
    """``(module, example_input or None)`` from ``package.module:factory`` and a weights file
    (`load_weights_into`; what it ignored is appended to ``notes``)."""
    import torch

    factory = _factory(spec)
    try:
        made = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    except SystemExit as exc:  # the user's code ended the run: say so, do not end silently
        raise ModscopeError(f"{spec}() called sys.exit({exc.code!r}) instead of returning a module") from None
    except Exception as exc:  # the user's code
        raise ModscopeError(f"{spec}() failed ({type(exc).__name__}: {first_line(exc)})") from None
    example = None
    if isinstance(made, tuple) and len(made) == 2:
        made, example = made
    if not isinstance(made, torch.nn.Module):
        raise ModscopeError(f"{spec} gave a {type(made).__name__}, not an nn.Module")
    if example is None:
        example = getattr(made, "example_input", None)
    if weights is not None:
        said = load_weights_into(made, weights, non_strict=non_strict)
        if notes is not None:
            notes.extend(said)
    return made, example
