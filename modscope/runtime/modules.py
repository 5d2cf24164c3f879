"""Context managers and checks for torch modules and devices; torch is imported only when used."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from ..errors import ModscopeError

__all__ = [
    "SMALL_WORK",
    "device_errors",
    "eval_mode",
    "model_device",
    "on_device",
    "resolve_device",
    "threads_for",
    "torch_threads",
]

# Multiply-adds per step below which torch's intra-op threads cost more than they give: a tiny
# network's matrices are split into pieces smaller than a thread's start-up (measured in
# benchmarks/training_steps.py).
SMALL_WORK = 20_000_000


@contextlib.contextmanager
def eval_mode(model: Any, no_grad: bool = False) -> Iterator[Any]:
    """Every submodule in eval mode inside (and, with ``no_grad``, autograd off); each module's
    own ``training`` flag is given back on exit, also on error."""
    import torch

    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield model
    finally:
        for m, flag in flags:
            m.training = flag


def resolve_device(device: Any) -> Any:
    """A usable ``torch.device``, or a one-line error (e.g. ``cuda`` on a machine without CUDA)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModscopeError(f"unknown device {device!r} (try 'cpu' or 'cuda')") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no GPU found"
            raise ModscopeError(
                f"device {device!r} requested but CUDA is not available here (torch "
                f"{torch.__version__}, {build})"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ModscopeError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ModscopeError(f"device {device!r} requested but MPS is not available here")
    elif dev.type != "cpu":
        raise ModscopeError(f"unsupported device {device!r} (use 'cpu' or 'cuda')")
    return dev


def model_device(model: Any) -> Any:
    """The one ``torch.device`` that holds ``model``'s parameters and buffers (the CPU for a module
    without any), or a one-line error when they are spread over several."""
    import torch

    found = {t.device for t in list(model.parameters()) + list(model.buffers())}
    if len(found) > 1:
        names = ", ".join(sorted(str(d) for d in found))
        raise ModscopeError(
            f"the model's weights are on several devices ({names}): pass device=... to move it to one"
        )
    return found.pop() if found else torch.device("cpu")


@contextlib.contextmanager
def on_device(model: Any, device: Any = None) -> Iterator[Any]:
    """``model`` moved to ``device`` inside (``None``: where it is, which must be one device); every
    parameter and buffer goes back to where it was on exit, also on error. Yields the device.

    The parameters stay the same objects (their ``.data`` moves), so an optimizer holding them and
    the caller's references stay valid; the model's values are unchanged, only their place."""
    if device is None:
        yield model_device(model)
        return
    dev = resolve_device(device)
    places = [t.device for t in (*model.parameters(), *model.buffers())]
    if all(d == dev for d in places):
        yield dev
        return
    try:
        model.to(dev)
        yield dev
    finally:
        import torch

        with torch.no_grad():
            for t, d in zip([*model.parameters(), *model.buffers()], places, strict=True):
                if t.device != d:
                    t.data = t.data.to(d)


@contextlib.contextmanager
def device_errors(lower: str) -> Iterator[None]:
    """A device running out of memory inside becomes one line that says how much was asked for, how
    much the device holds and what to lower (``lower``, e.g. ``"--batch-size (batch_size=)"``)."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError as exc:
        text = str(exc)
        asked = re.search(r"Tried to allocate ([0-9.]+ [KMGT]?i?B)", text)
        total = re.search(r"total capacity of ([0-9.]+ [KMGT]?i?B)", text)
        free = re.search(r"of which ([0-9.]+ [KMGT]?i?B) is free", text)
        parts = [f"needed {asked.group(1)} more" if asked else "needed more memory"]
        if total:
            parts.append(f"the device holds {total.group(1)}" + (f", {free.group(1)} free" if free else ""))
        raise ModscopeError(f"out of device memory ({'; '.join(parts)}): lower {lower}") from None


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside (``None``: unchanged), restored after."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def threads_for(work: int, threads: int | None = None) -> int | None:
    """torch threads for a step of ``work`` multiply-adds: ``threads`` when given, else 1 below
    `SMALL_WORK` and ``None`` (torch's own setting) above."""
    if threads is not None:
        if int(threads) != threads or threads < 1:
            raise ModscopeError(f"threads must be an integer >= 1, got {threads}")
        return int(threads)
    return 1 if work < SMALL_WORK else None
