"""A split of a dataset (train or test) read in batches: never the whole of it in memory at once.

Every split answers three questions: how many examples (``len``), the examples at some indices
(``rows``, in the order asked), and its labels (``labels``, one pass; labels are small). Batches
come from ``batches(batch_size, index)``. Three kinds:

- `ArraySplit`: arrays or tensors, in memory or memory-mapped (``np.memmap`` rows are read from
  disk only when asked for);
- `DatasetSplit`: any indexable ``torch.utils.data.Dataset`` giving ``(x, y)`` pairs;
- `LoaderSplit`: a ``torch.utils.data.DataLoader`` (or any iterable of ``(x, y)`` batches), read
  in its own order; rows by index are picked out of its batches as they pass.

Inputs ``x`` come back as float32 tensors (integer inputs, token ids, stay int64); labels ``y``
as int64 ``(B, n_groups)`` for classification (a 1-D label vector becomes one column) or float32
``(B, n_outputs)`` for regression.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from ..errors import ModscopeError

__all__ = ["ArraySplit", "DatasetSplit", "LoaderSplit", "Split", "as_batch", "check_examples"]


def _native(a: Any) -> Any:
    """A numpy array in native byte order (IDX files are big-endian; torch reads native only)."""
    if isinstance(a, np.ndarray):
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        # a memory map: torch wants memory it may own
        return np.array(a) if not a.flags.writeable else np.ascontiguousarray(a)
    return a


def as_batch(x: Any, y: Any, regression: bool, scale_uint8: bool = False) -> tuple[Any, Any]:
    """``(x, y)`` as tensors of the kinds modscope computes with (see the module docstring);
    ``scale_uint8``: 8-bit inputs divided by 255."""
    import torch

    x, y = _native(x), _native(y)
    scale = isinstance(x, np.ndarray) and x.dtype == np.uint8 and scale_uint8
    x = torch.as_tensor(x)
    y = torch.as_tensor(y)
    if scale:  # 8-bit pixels, as modscope's image tasks read them: [0, 1]
        x = x.float() / 255.0
    x = x.long() if x.dtype in (torch.int64, torch.int32) else x.float()  # uint8 pixels: float too
    if not regression and y.is_floating_point() and not bool(torch.all(y == y.round())):
        raise ModscopeError("classification labels must be whole numbers (got fractional values)")
    y = y.float() if regression else y.long()
    return x, y[:, None] if y.ndim == 1 else y


class Split(Protocol):
    """What every split offers (see the module docstring)."""

    regression: bool

    def __len__(self) -> int: ...

    def rows(self, index: np.ndarray) -> tuple[Any, Any]: ...

    def labels(self) -> Any: ...

    def batches(
        self, batch_size: int, index: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, Any, Any]]: ...


def _chunks(n: int, batch_size: int, index: np.ndarray | None) -> Iterator[np.ndarray]:
    if batch_size < 1:
        raise ModscopeError(f"batch size must be >= 1, got {batch_size}")
    idx = np.arange(n) if index is None else np.asarray(index, dtype=np.int64)
    for start in range(0, idx.size, batch_size):
        yield idx[start : start + batch_size]


# a torch dtype's name -> numpy's dtype kind (the first word it holds; else "i", an integer)
_KINDS = (("uint", "u"), ("complex", "c"), ("float", "f"), ("bool", "b"))


def _kind_of(a: Any) -> tuple[str, int]:
    """(numpy dtype kind, ndim) of an array or tensor; ``("O", 0)`` for anything else."""
    if isinstance(a, np.ndarray):
        return a.dtype.kind, a.ndim
    dtype, ndim = getattr(a, "dtype", None), getattr(a, "ndim", None)
    if dtype is None or ndim is None:
        return "O", 0
    return next((k for word, k in _KINDS if word in str(dtype)), "i"), int(ndim)


def check_examples(a: Any, what: str, chunk_bytes: int = 2**26) -> None:
    """One-line refusal of examples modscope would read wrongly: not an array (strings, objects),
    0-d, complex, or floating point with NaN or infinity (checked in chunks, never copied whole)."""
    if not isinstance(a, np.ndarray) and not hasattr(a, "dtype"):
        return  # a sequence the caller made (not a file's array): read as before
    kind, ndim = _kind_of(a)
    if kind not in ("b", "i", "u", "f"):
        dtype = getattr(a, "dtype", type(a).__name__)
        why = "complex numbers" if kind == "c" else "not numbers"
        raise ModscopeError(f"the {what} are {dtype} ({why}); pass integers, floats or booleans")
    if ndim == 0:
        raise ModscopeError(f"the {what} are a 0-d array (one number); pass one row per example")
    if kind != "f":
        return
    itemsize = a.element_size() if hasattr(a, "element_size") else a.itemsize
    step = max(1, chunk_bytes // max(1, itemsize * math.prod(a.shape[1:])))
    for start in range(0, len(a), step):
        part = a[start : start + step]
        finite = part.isfinite().all() if hasattr(part, "isfinite") else np.isfinite(part).all()
        if not bool(finite):
            raise ModscopeError(
                f"the {what} hold NaN or infinite values (from example {start} on); clean them first"
            )


class ArraySplit:
    """Examples held as arrays or tensors ``x`` ``(N, ...)`` and ``y`` ``(N, ...)`` (numpy arrays,
    memory maps or torch tensors); nothing is copied until a batch is asked for."""

    def __init__(self, x: Any, y: Any, regression: bool = False, scale_uint8: bool = False) -> None:
        check_examples(x, "inputs")
        check_examples(y, "labels")
        if len(x) != len(y):
            raise ModscopeError(f"{len(x)} inputs but {len(y)} labels")
        self.x, self.y, self.regression, self.scale_uint8 = x, y, bool(regression), bool(scale_uint8)

    def __len__(self) -> int:
        return len(self.x)

    def rows(self, index: np.ndarray) -> tuple[Any, Any]:
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise ModscopeError(f"example index out of range (the split has {len(self)} examples)")
        if isinstance(self.x, np.ndarray):
            # a memory map reads rows in file order fastest: each row once, sorted, then put back in order
            rows, back = np.unique(index, return_inverse=True)
            xs, ys = self.x[rows][back], np.asarray(self.y)[rows][back]
            return as_batch(xs, ys, self.regression, self.scale_uint8)
        import torch

        t = torch.from_numpy(index)
        y = self.y[t] if not isinstance(self.y, np.ndarray) else self.y[index]
        return as_batch(self.x[t], y, self.regression)

    def labels(self) -> Any:
        return as_batch(np.zeros((len(self), 0), np.float32), self.y, self.regression)[1]

    def batches(
        self, batch_size: int, index: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, Any, Any]]:
        for idx in _chunks(len(self), batch_size, index):
            if index is None and not isinstance(self.x, np.ndarray):  # a slice of a tensor: a view
                x, y = as_batch(self.x[idx[0] : idx[-1] + 1], self.y[idx[0] : idx[-1] + 1], self.regression)
            else:
                x, y = self.rows(idx)
            yield idx, x, y


class DatasetSplit:
    """Any indexable ``torch.utils.data.Dataset`` whose items are ``(x, y)``."""

    def __init__(self, dataset: Any, regression: bool = False) -> None:
        try:
            self.n = len(dataset)
        except TypeError:
            raise ModscopeError(
                f"a {type(dataset).__name__} has no length: pass a DataLoader for an iterable dataset"
            ) from None
        self.dataset, self.regression = dataset, bool(regression)
        self._labels: Any = None

    def __len__(self) -> int:
        return self.n

    def _item(self, i: int) -> tuple[Any, Any]:
        item = self.dataset[int(i)]
        if not isinstance(item, tuple | list) or len(item) < 2:
            raise ModscopeError(f"dataset item {i} is not an (x, y) pair")
        return item[0], item[1]

    def rows(self, index: np.ndarray) -> tuple[Any, Any]:
        import torch

        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= self.n):
            raise ModscopeError(f"example index out of range (the dataset has {self.n} examples)")
        items = [self._item(i) for i in index]
        xs = torch.stack([torch.as_tensor(np.asarray(x) if not hasattr(x, "shape") else x) for x, _ in items])
        return as_batch(xs, torch.stack([torch.as_tensor(y) for _, y in items]), self.regression)

    def labels(self) -> Any:
        if self._labels is None:
            import torch

            ys = torch.stack([torch.as_tensor(self._item(i)[1]) for i in range(self.n)])
            self._labels = as_batch(torch.zeros(self.n, 0), ys, self.regression)[1]
        return self._labels

    def batches(
        self, batch_size: int, index: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, Any, Any]]:
        for idx in _chunks(self.n, batch_size, index):
            yield idx, *self.rows(idx)


class LoaderSplit:
    """A ``DataLoader`` (or any re-iterable of ``(x, y)`` batches) read in its own order. Rows by
    index are picked out of its batches as they pass, so every request is one pass over it; keep
    its ``shuffle`` off, or the example indices mean nothing."""

    def __init__(self, loader: Iterable, regression: bool = False) -> None:
        if getattr(getattr(loader, "sampler", None), "__class__", type(None)).__name__ == "RandomSampler":
            raise ModscopeError(
                "the DataLoader shuffles: pass one with shuffle=False (indices must be stable)"
            )
        self.loader, self.regression = loader, bool(regression)
        self._n: int | None = None
        self._labels: Any = None

    def _pass(self) -> Iterator[tuple[np.ndarray, Any, Any]]:
        start = 0
        for item in self.loader:
            if not isinstance(item, tuple | list) or len(item) < 2:
                raise ModscopeError("a DataLoader batch is not an (x, y) pair")
            x, y = as_batch(item[0], item[1], self.regression)
            yield np.arange(start, start + len(x)), x, y
            start += len(x)
        self._n = start

    def __len__(self) -> int:
        if self._n is None:
            for _ in self._pass():
                pass
        return int(self._n or 0)

    def labels(self) -> Any:
        if self._labels is None:
            import torch

            self._labels = torch.cat([y for _, _, y in self._pass()])
        return self._labels

    def rows(self, index: np.ndarray) -> tuple[Any, Any]:
        import torch

        index = np.asarray(index, dtype=np.int64)
        found: dict[int, tuple[Any, Any]] = {}  # example index -> its (x, y)
        wanted = set(index.tolist())
        for idx, x, y in self._pass():
            for j in np.flatnonzero(np.isin(idx, index)):
                found[int(idx[j])] = x[j], y[j]
            if len(found) == len(wanted):
                break
        missing = wanted - set(found)
        if missing:
            raise ModscopeError(f"example index {min(missing)} out of range (the loader has fewer examples)")
        pairs = [found[i] for i in index.tolist()]
        return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])

    def batches(
        self, batch_size: int, index: np.ndarray | None = None
    ) -> Iterator[tuple[np.ndarray, Any, Any]]:
        """The loader's own batches (``batch_size`` is the loader's business); with ``index``, only
        the rows of each batch that are in it."""
        keep = None if index is None else np.asarray(index, dtype=np.int64)
        for idx, x, y in self._pass():
            if keep is None:
                yield idx, x, y
                continue
            hit = np.flatnonzero(np.isin(idx, keep))
            if hit.size:
                import torch

                t = torch.from_numpy(hit)
                yield idx[hit], x[t], y[t]
