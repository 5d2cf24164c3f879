"""Safe readers for the files weights come in, and the layout of modscope's own checkpoints.

Every reader returns plain tensors or arrays and never runs code from the file: pickled
files are read with ``torch.load(weights_only=True)``, ``.npz`` with ``allow_pickle=False``,
and ``.safetensors`` hold no code by design. Errors are one line (`ModscopeError`).

modscope checkpoint payload (a plain dict, what ``torch.load(weights_only=True)`` gives back)::

    {"format": "modscope.checkpoint", "format_version": 1, "modscope_version": "0.3.0",
     "architecture": {"widths": [...], ...},
     "state_dict": {name: tensor},          # in neuron *position* order (see "bimt")
     "task": {"name": str, "params": {...}},
     "train_config": {...}, "seed": int, "metrics": {...},
     "bimt": None | {"permutations": [LongTensor per layer],   # perm[l][p] = original index
                     "coordinates": [FloatTensor (n_l, d) per layer], ...}}

BIMT moves neurons around; ``permutations[l][p]`` is the original (task) index of the neuron
now at position ``p`` of layer ``l``. `task_ordered_state_dict` puts the input columns and
output rows back in the task's order; hidden neurons stay at their positions (a permutation
of hidden units never changes the function). `modscope.training.checkpoint.Checkpoint` is
the object built on this layout.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModscopeError, first_line
from ...runtime.limits import ZIP_ERRORS, Budget, check_npz, check_zip

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "MAX_FILE_BYTES",
    "STATE_DICT_KEYS",
    "UntrustedPickleWarning",
    "check_checkpoint_version",
    "check_file",
    "check_tensor_sizes",
    "is_checkpoint_payload",
    "optional_import",
    "read_npz",
    "read_safetensors",
    "read_state_dict",
    "refusing",
    "safe_torch_load",
    "symbolic_note",
    "task_ordered_state_dict",
    "unreadable",
    "unwrap_state_dict",
    "widen_float8",
]

CHECKPOINT_FORMAT = "modscope.checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
# Where a state dict sits inside the checkpoints of common training loops.
# The training weights first; an EMA copy only when the file holds no other.
STATE_DICT_KEYS = (
    "state_dict", "model_state_dict", "model_state", "model", "state", "net", "network", "weights", "params",
    "module", "ema", "model_ema", "ema_state_dict",
)
# Checkpoint files above this size are refused before anything is read.
MAX_FILE_BYTES = 8 * 2**30


class UntrustedPickleWarning(UserWarning):
    """A file is being unpickled without the weights-only safeguard."""


def unreadable(path: str | os.PathLike, what: str, exc: BaseException) -> ModscopeError:
    """The one-line error for a file that is not a readable ``what`` (the reader raised ``exc``)."""
    return ModscopeError(f"{path}: not a readable {what}, truncated or corrupt ({first_line(exc)})")


@contextlib.contextmanager
def refusing(
    errors: type[Exception] | tuple[type[Exception], ...], error: Callable[[Exception], ModscopeError]
) -> Iterator[None]:
    """Runs the block with a library's ``errors`` (a malformed file, a config the reader does not
    follow) raised as the one-line ``error(exc)``; a `ModscopeError` passes as it is (it is a
    ``ValueError``, which ``errors`` may name)."""
    try:
        yield
    except ModscopeError:
        raise
    except errors as exc:
        raise error(exc) from None


def optional_import(module: str, install: str) -> Any:
    """``module`` (a library an extra of modscope installs), or the one-line error ``install`` saying
    how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModscopeError(install) from None


def check_file(path: Path, limit: bool = False) -> None:
    """A one-line error unless ``path`` is an existing, non-empty regular file (with ``limit``: of
    at most `MAX_FILE_BYTES`, checked before anything is read)."""
    if not path.exists():
        raise ModscopeError(f"{path}: no such file")
    if path.is_dir():
        raise ModscopeError(f"{path}: is a directory, not a checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise ModscopeError(f"{path}: empty file")
    if limit and size > MAX_FILE_BYTES:
        raise ModscopeError(f"{path}: {size:,} bytes is above the {MAX_FILE_BYTES:,}-byte limit")


def check_tensor_sizes(tensors: Any, budget: Budget, limit: int = 1_000_000) -> None:
    """Add the bytes each tensor of a loaded object *declares* (numel x element size) to
    ``budget``: a stride-0 (expanded) tensor over a tiny storage declares far more than the file
    holds, and every later copy would allocate it. Walks dicts, lists and tuples (at most
    ``limit`` containers and tensors)."""
    torch = sys.modules.get("torch")
    todo: list[tuple[str, Any]] = [("", tensors)]
    for _ in range(limit):
        if not todo:
            return
        name, obj = todo.pop()
        where = name or "(root)"
        if torch is not None and isinstance(obj, torch.Tensor):
            budget.shape(obj.shape, obj.element_size(), f"tensor {where} of shape {tuple(obj.shape)}")
        elif isinstance(obj, np.ndarray):
            budget.shape(obj.shape, obj.itemsize, f"array {where} of shape {obj.shape}")
        elif isinstance(obj, Mapping):
            todo.extend((f"{name}.{k}" if name else str(k), v) for k, v in obj.items() if _walk(v))
        elif isinstance(obj, list | tuple):
            todo.extend((f"{name}[{i}]", v) for i, v in enumerate(obj) if _walk(v))


def _walk(v: Any) -> bool:
    return isinstance(v, Mapping | list | tuple | np.ndarray) or _is_array(v)


def safe_torch_load(path: str | os.PathLike, trust_pickle: bool = False, trust_option: bool = True) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors.

    ``trust_pickle=True`` lifts the restriction (``weights_only=False``): the file's pickled
    objects are rebuilt, which runs whatever code they name. Only for files you made.
    ``trust_option``: whether the caller offers ``--trust-pickle`` (a refusal names it only then).
    """
    import torch

    path = Path(path)
    check_file(path, limit=True)
    check_zip(path, Budget(str(path)))
    if trust_pickle:
        warnings.warn(
            f"{path}: loading with trust_pickle: any code pickled in this file runs now",
            UntrustedPickleWarning,
            stacklevel=2,
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except RuntimeError as exc:
        if "TorchScript" in str(exc) or "constants.pkl" in str(exc):
            raise ModscopeError(f"{path}: a TorchScript archive: read it with load_graph") from None
        if "data.pkl" in str(exc) and zipfile.is_zipfile(path):
            raise ModscopeError(f"{path}: not a torch.save file (a .pt2 archive? use load_graph)") from None
        raise unreadable(path, "torch checkpoint", exc) from None
    except Exception as exc:  # torch's unpickler raises many types on corrupt bytes
        if isinstance(exc, pickle.UnpicklingError) and re.search("Unsupported global|GLOBAL", str(exc)):
            # torch names the first global it refused: "Unsupported global: GLOBAL a.b.C was not ..."
            found = re.search(r"GLOBAL ([\w.]+) (?:was not an allowed global|whose module)", str(exc))
            what = found.group(1) if found else "a Python object"
            module = what.startswith(("torch.nn.", "__main__.")) or ".modules." in what
            way = (
                "--trust-pickle (trust_pickle=True) loads it and runs the file's code: only for a file "
                "you made; or save its state_dict or a .pt2 torch.export archive"
                if trust_option
                else "save its state_dict (torch.save(model.state_dict(), path)) and pass its code with "
                "--model package.module:factory"
            )
            raise ModscopeError(
                f"{path}: refused: it pickles {what}"
                + (" (a whole module, not a state dict)" if module else "")
                + f"; loading it would run pickled code from the file. {way}"
            ) from None
        raise ModscopeError(f"{path}: {_not_torch(path)}") from None
    check_tensor_sizes(obj, Budget(str(path)))
    return obj


_READ = ".pt/.pth/.bin/.ckpt (torch.save), .safetensors, .npz, .onnx, .h5/.keras or .pt2"


def _not_torch(path: Path) -> str:
    """Why a file torch cannot read is not a torch checkpoint: another format under a torch suffix
    (named, with the suffix to give it), or bytes no reader knows."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head.startswith(b"\x89HDF\r\n\x1a\n") and path.suffix.lower() not in (".h5", ".hdf5", ".keras"):
        return "an HDF5 file (a Keras model?) under another suffix: name it .h5 or .keras"
    if path.suffix.lower() != ".onnx" and _looks_onnx(path):
        return "an ONNX model under another suffix: name it .onnx"
    if head[:1] == b"{":
        return "a text / JSON file, not weights"
    return f"not a torch checkpoint (truncated, corrupt or another format); modscope reads {_READ}"


def _looks_onnx(path: Path) -> bool:
    if path.stat().st_size > 2**28:
        return False
    with contextlib.suppress(Exception):  # no onnx installed, or bytes protobuf rejects (in many ways)
        import onnx

        model = onnx.load_model_from_string(path.read_bytes())
        return bool(model.graph.node) and bool(model.graph.output)
    return False


def symbolic_note(symbolic: Sequence[str], example: Sequence[Any]) -> str:
    """What a refusal adds when the file left input sizes open (they were set to 1)."""
    if not symbolic:
        return ""
    shape = ",".join(str(int(d)) for d in example[0].shape) if example else ""
    return (
        f"; the input sizes {', '.join(symbolic)} are left open in the file and were set to 1 (it ran on "
        f"{shape}): pass the shape the model was made for, batch first, with --input-shape "
        "(load_graph(path, input_shape=...))"
    )


def read_safetensors(path: Path) -> dict[str, Any]:
    """Every tensor of a ``.safetensors`` file, by name: numpy arrays (no torch needed), or torch
    tensors when the file holds a dtype numpy lacks (bfloat16)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    check_file(path)
    try:
        try:
            return load_file(str(path))
        except (TypeError, AttributeError):  # bfloat16, float8: numpy has no such dtype, torch reads them
            from safetensors.torch import load_file as load_torch

            return load_torch(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModscopeError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, by name; pickled object arrays are refused."""
    check_file(path)
    check_npz(path, Budget(str(path)))
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:  # numpy's own (nothing of modscope's runs in the try)
        if "pickle" in str(exc).lower():
            raise ModscopeError(f"{path}: refused: the .npz holds pickled objects") from None
        raise ModscopeError(f"{path}: not a readable .npz file ({first_line(exc)})") from None
    except ZIP_ERRORS as exc:
        raise unreadable(path, ".npz file", exc) from None
    for k, v in arrays.items():
        if not isinstance(v, np.ndarray):  # numpy hands back the raw bytes of a member without .npy magic
            raise ModscopeError(f"{path}: member {k} is not a .npy array (truncated or corrupt)")
        if v.dtype.kind not in "biuf":
            raise ModscopeError(f"{path}: array {k} holds {v.dtype} values, not real numbers")
    return arrays


def _is_array(v: Any) -> bool:
    """A numpy array or a torch tensor (torch is only consulted when something imported it:
    without it no tensor can exist)."""
    if isinstance(v, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(v, torch.Tensor)


def unwrap_state_dict(obj: Any, source: str) -> Mapping[str, Any]:
    """The ``{name: tensor}`` mapping of a loaded file: itself, or under a usual key
    (`STATE_DICT_KEYS`), or its tensor entries."""
    if isinstance(obj, Mapping):
        if obj and all(_is_array(v) for v in obj.values()):
            return obj
        for key in STATE_DICT_KEYS:  # under a usual key (its non-tensor entries, such as metadata, left)
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and any(_is_array(v) for v in inner.values()):
                return {k: v for k, v in inner.items() if _is_array(v)}
        tensors = {k: v for k, v in obj.items() if _is_array(v)}
        if tensors:
            return tensors
        raise ModscopeError(
            f"{source}: no state_dict of weight tensors found under the usual keys "
            f"({', '.join(STATE_DICT_KEYS[:6])}, ...); keys seen: {', '.join([str(k) for k in obj][:12])}"
            + (f" ({len(obj)} in all)" if len(obj) > 12 else "")
            + "; save the model's state_dict itself (torch.save(model.state_dict(), path))"
        )
    raise ModscopeError(
        f"{source}: no state_dict of weight tensors found (the file holds a {type(obj).__name__})"
    )


def read_state_dict(path: str | os.PathLike) -> Mapping[str, Any]:
    """The ``{name: tensor}`` mapping of a weights file, by suffix: ``.safetensors`` and ``.npz``
    read without torch's pickle, anything else through `safe_torch_load` (no code run)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return widen_float8(read_safetensors(path))
    if suffix == ".npz":
        return read_npz(path)
    return widen_float8(unwrap_state_dict(safe_torch_load(path), str(path)))


def widen_float8(tensors: Mapping[str, Any]) -> Mapping[str, Any]:
    """8-bit (and narrower) float tensors as float32: numpy has no such dtype, and a weight's
    magnitude is all the graph needs (exact: every float8 value is a float32 value)."""
    narrow = {k for k, v in tensors.items() if re.search("float[48]", str(getattr(v, "dtype", "")))}
    if not narrow:
        return tensors
    return {k: (v.float() if k in narrow else v) for k, v in tensors.items()}


# -- modscope checkpoints ------------------------------------------------------------------------
def is_checkpoint_payload(obj: Any) -> bool:
    """Whether a loaded object is a modscope checkpoint payload."""
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def check_checkpoint_version(obj: Mapping[str, Any], source: str = "checkpoint") -> None:
    """A one-line error unless ``obj`` is a payload of the format version this modscope reads."""
    version = obj.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise ModscopeError(
            f"{source}: modscope checkpoint format version {version!r} is not supported "
            f"(this modscope reads version {CHECKPOINT_FORMAT_VERSION})"
        )


def task_ordered_state_dict(
    state_dict: Mapping[str, Any], permutations: Sequence[Any] | None, n_linear: int
) -> dict[str, Any]:
    """A copy of a modscope MLP's state dict with the input columns of ``layers.0`` and the
    output rows of the last layer put back in task order (``permutations`` as in the payload)."""
    import torch

    sd = {k: v.clone() for k, v in state_dict.items()}
    if not permutations:
        return sd
    inv_in = torch.argsort(permutations[0])  # position of each original input
    inv_out = torch.argsort(permutations[-1])
    sd["layers.0.weight"] = sd["layers.0.weight"][:, inv_in]
    last = f"layers.{n_linear - 1}"
    sd[f"{last}.weight"] = sd[f"{last}.weight"][inv_out]
    sd[f"{last}.bias"] = sd[f"{last}.bias"][inv_out]
    return sd
