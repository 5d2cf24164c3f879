"""The user's data: a test split (and a train split), what the outputs mean, how they are scored.

One interface for masks, knockouts and activation graphs. `load_data` reads what a researcher
has: arrays or tensors in memory, an ``.npz`` or ``.pt`` file holding ``x_train, y_train,
x_test, y_test`` (or only ``x_test, y_test``; also ``x, y`` = test only), a folder of IDX files
(MNIST layout), any ``torch.utils.data.Dataset`` or ``DataLoader``, or a built-in task. Files are
memory-mapped where the format allows (uncompressed ``.npz`` members, plain IDX files, ``.pt``
files in torch's zip format), so evaluation streams batches and never holds the whole dataset.

Scoring: ``kind="classification"`` (accuracy, every output group right, and accuracy per class),
``"regression"`` (mean squared error), or a user ``metric(out, y) -> (B,)`` tensor of per-example
values, averaged over the examples (with ``higher_is_better``); ``loss`` likewise for training
masks (default cross-entropy / MSE).
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ModscopeError, first_line
from ..runtime.limits import ZIP_ERRORS, Budget, check_npz, check_zip, npy_header
from .functions import Function
from .idx import find_idx, map_idx
from .splits import ArraySplit, DatasetSplit, LoaderSplit, Split

__all__ = ["Data", "Kind", "load_data"]

Kind = Literal["classification", "regression"]


@dataclass
class Data:
    """Test (and train) examples and how a network's outputs on them are scored.

    ``output_groups``: classification outputs split into consecutive groups of logits, one label
    column each (default: one group of all outputs). ``n_classes``: of a one-group classifier
    (default: read off the labels, max + 1). ``functions``: named subsets (`Function`).
    """

    test: Split
    train: Split | None = None
    kind: Kind = "classification"
    output_groups: tuple[int, ...] = ()
    n_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    metric: Callable[[Any, Any], Any] | None = None
    higher_is_better: bool = True
    loss: Callable[[Any, Any], Any] | None = None
    functions: dict[str, Function] = field(default_factory=dict)
    name: str = "data"

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "regression"):
            raise ModscopeError(f"kind must be 'classification' or 'regression', got {self.kind!r}")
        if self.kind == "classification" and self.metric is None and self.n_classes is None:
            labels = self.test.labels()
            if labels.numel() and int(labels.min()) < 0:
                raise ModscopeError("classification labels must be >= 0")
            if len(self.output_groups) <= 1 and labels.shape[1] == 1:
                self.n_classes = int(labels.max()) + 1 if labels.numel() else 0
        names, n = self.class_names, self.n_classes
        if names is not None and n is not None and len(names) != n:
            raise ModscopeError(f"{len(names)} class names for {n} classes")

    @property
    def regression(self) -> bool:
        return self.kind == "regression"

    @property
    def metric_name(self) -> str:
        if self.metric is not None:
            return getattr(self.metric, "__name__", "metric")
        return "accuracy" if self.kind == "classification" else "mse"

    def split(self, which: Literal["train", "test"]) -> Split:
        s = self.test if which == "test" else self.train
        if s is None:
            raise ModscopeError(f"{self.name} has no {which} split")
        return s

    def groups(self, n_outputs: int) -> tuple[int, ...]:
        """The output groups for a model with ``n_outputs`` outputs, checked against the labels."""
        groups = self.output_groups or (n_outputs,)
        if self.kind == "classification" and self.metric is None:
            if sum(groups) != n_outputs:
                raise ModscopeError(
                    f"the model has {n_outputs} outputs but the output groups add up to {sum(groups)}"
                )
            if self.n_classes is not None and len(groups) == 1 and self.n_classes > n_outputs:
                raise ModscopeError(
                    f"the labels go up to class {self.n_classes - 1} but the model has {n_outputs} outputs"
                )
        return tuple(groups)


# -- files ---------------------------------------------------------------------------------------------
_PAIRS = (("x_train", "y_train"), ("x_test", "y_test"))


def _npz_member(path: Path, zf: zipfile.ZipFile, key: str) -> np.ndarray:
    """One array of an ``.npz``: memory-mapped when stored uncompressed, else read whole."""
    info = zf.getinfo(f"{key}.npy")
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            name_len, extra_len = struct.unpack("<HH", fh.read(30)[26:30])  # of the local file header
            fh.seek(info.header_offset + 30 + name_len + extra_len)  # the member's data: its .npy header
            shape, fortran, dtype = npy_header(fh)
            offset = fh.tell()
        if dtype.hasobject:
            raise ModscopeError(f"{path}: refused: {key} holds pickled objects")
        return np.memmap(
            path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
        )
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    check_npz(path, Budget(str(path)))
    try:
        with zipfile.ZipFile(path) as zf:
            keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            return {k: _npz_member(path, zf, k) for k in keys}
    except ModscopeError:
        raise
    except ZIP_ERRORS as exc:
        raise ModscopeError(f"{path}: not a readable .npz file ({first_line(exc, 120)})") from None


def _read_pt(path: Path) -> dict[str, Any]:
    import torch

    check_zip(path, Budget(str(path)), mapped=True)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # torch raises many types on foreign or corrupt files
        raise ModscopeError(f"{path}: not a readable .pt data file ({first_line(exc, 120)})") from None
    if not isinstance(obj, Mapping):
        raise ModscopeError(f"{path}: a .pt data file must hold a dict of tensors (x_test, y_test, ...)")
    budget = Budget(str(path))
    for key, t in obj.items():
        # memory-mapped tensors cost nothing until read; an expanded (stride-0) one declares more
        # than its storage holds, and every batch copies it
        if isinstance(t, torch.Tensor) and t.numel() * t.element_size() > t.untyped_storage().nbytes():
            budget.shape(t.shape, t.element_size(), f"expanded tensor {key} of shape {tuple(t.shape)}")
    return dict(obj)


def _arrays_to_splits(
    arrays: Mapping[str, Any], where: str, regression: bool, scale: bool
) -> tuple[Split, Split | None]:
    """``(test, train or None)`` from a dict of ``x_test, y_test[, x_train, y_train]`` (or ``x, y``)."""
    if "x_test" not in arrays and "x" in arrays:
        arrays = {"x_test": arrays["x"], "y_test": arrays.get("y")}
    splits: dict[str, Split] = {}
    for xk, yk in _PAIRS:
        if xk in arrays or yk in arrays:
            if arrays.get(xk) is None or arrays.get(yk) is None:
                raise ModscopeError(f"{where}: {xk} and {yk} go together")
            try:
                splits[xk[2:]] = ArraySplit(arrays[xk], arrays[yk], regression, scale_uint8=scale)
            except ModscopeError as exc:
                raise ModscopeError(f"{where}: {xk} / {yk}: {exc}") from None
    if "test" not in splits:
        raise ModscopeError(
            f"{where}: no x_test / y_test (nor x / y) arrays; it has {', '.join(arrays) or 'none'}"
        )
    return splits["test"], splits.get("train")


def _read_folder(path: Path) -> dict[str, Any]:
    arrays = {}
    for key in ("x_train", "y_train", "x_test", "y_test"):
        try:
            arrays[key] = map_idx(find_idx(path, key))
        except ModscopeError:
            if key.endswith("test"):
                raise
    if "x_train" in arrays and "y_train" not in arrays:
        arrays.pop("x_train")
    return arrays


def load_data(
    source: Any,
    *,
    kind: Kind = "classification",
    output_groups: tuple[int, ...] = (),
    class_names: tuple[str, ...] | None = None,
    metric: Callable[[Any, Any], Any] | None = None,
    higher_is_better: bool = True,
    loss: Callable[[Any, Any], Any] | None = None,
    train: Any = None,
    name: str | None = None,
) -> Data:
    """`Data` from what a researcher has (see the module docstring).

    ``source``: a path (``.npz``, ``.pt``, a folder of IDX files), a dict of arrays (``x_test,
    y_test[, x_train, y_train]``), a ``(x_test, y_test)`` tuple, a ``Dataset`` or ``DataLoader``
    (the test split; ``train=`` another one for the train split), a built-in task (its
    ``to_data()``), or a `Data` (returned as is). Integer 8-bit images from files are scaled to
    [0, 1], as modscope's image tasks read them.
    """
    if isinstance(source, Data):
        return source
    if callable(getattr(source, "to_data", None)):  # a built-in Task
        return source.to_data()
    regression = kind == "regression"
    options = dict(kind=kind, output_groups=tuple(output_groups), class_names=class_names, metric=metric,
                   higher_is_better=higher_is_better, loss=loss)
    if isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        if path.is_dir():
            arrays, scale = _read_folder(path), True
        elif not path.exists():
            raise ModscopeError(f"{path}: no such file or directory")
        elif path.suffix.lower() == ".npz":
            arrays, scale = _read_npz(path), True
        elif path.suffix.lower() in (".pt", ".pth"):
            arrays, scale = _read_pt(path), False
        else:
            raise ModscopeError(f"{path}: data must be an .npz or .pt file or a folder of IDX files")
        test_train = _arrays_to_splits(arrays, str(path), regression, scale)
        return Data(*test_train, name=name or path.stem, **options)
    if isinstance(source, Mapping):
        return Data(*_arrays_to_splits(source, "data", regression, False), name=name or "data", **options)
    if isinstance(source, tuple) and len(source) == 2:
        test = ArraySplit(source[0], source[1], regression)
        tr = (ArraySplit(train[0], train[1], regression) if isinstance(train, tuple)
              else _torch_split(train, regression))
        return Data(test, tr, name=name or "data", **options)
    split = _torch_split(source, regression)
    if split is None:
        raise ModscopeError(f"cannot read data from a {type(source).__name__}")
    return Data(split, _torch_split(train, regression), name=name or type(source).__name__, **options)


def _torch_split(obj: Any, regression: bool) -> Split | None:
    cls = type(obj).__name__
    if cls == "DataLoader" or (hasattr(obj, "__iter__") and not hasattr(obj, "__getitem__")):
        return LoaderSplit(obj, regression)
    if hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        return DatasetSplit(obj, regression)
    return None  # neither (``None`` too: no split)
