"""One memory budget for everything a file declares: sizes, strides, decompressed lengths.

A few kilobytes of crafted file can declare terabytes (a zip or gzip bomb, a stride-0 tensor, an
HDF5 dataset of fill values, a batch of 3e8). Every reader adds what an entry will take to a
`Budget` *before* allocating it, so the total across a file's entries stays under one limit and
the refusal names the entry and its size in one line.

The limit is ``--max-memory`` (`memory_limit`), else the environment variable
``MODSCOPE_MAX_MEMORY`` (so worker processes see the same), else half of the machine's memory.
"""

from __future__ import annotations

import math
import operator
import os
import re
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import BinaryIO

from ..errors import ModscopeError

__all__ = [
    "DEFAULT_FRACTION",
    "ENV_VAR",
    "ZIP_ERRORS",
    "Budget",
    "check_npz",
    "check_zip",
    "declared_bytes",
    "environment_variable",
    "gunzip",
    "format_size",
    "max_memory",
    "memory_limit",
    "npy_header",
    "parse_size",
]

# Share of the machine's physical memory one run may declare by default.
DEFAULT_FRACTION = 0.5
ENV_VAR = "MODSCOPE_MAX_MEMORY"
# what zipfile raises on a corrupt or crafted archive (RuntimeError: encryption, and its subclass
# NotImplementedError: an unknown version or compression; ValueError: also a name's
# UnicodeDecodeError; struct.error: short records)
ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
    RuntimeError, zlib.error, struct.error, KeyError, IndexError,
    # numpy parses an .npy header as Python literals: a mangled one raises these
    tokenize.TokenError, SyntaxError,
)
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """``"512M"``, ``"8G"``, ``"1.5GiB"``, ``"1000000"`` -> bytes (binary units); one-line errors."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = _SIZE.match(str(text))
        if m is None:
            raise ModscopeError(f"--max-memory: expected a size like 512M or 8G, got {text!r}")
        value = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if value < 2**20:
        raise ModscopeError(f"--max-memory: {format_size(value)} is below the 1 MiB minimum")
    return value


def format_size(nbytes: int | float) -> str:
    """Bytes for a person: ``"1.5 GiB"``, ``"312 B"``."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            return f"{int(value)} B" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} PiB"


def _physical() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 16 * 2**30


def max_memory() -> int:
    """The budget in bytes: ``MODSCOPE_MAX_MEMORY`` if set, else `DEFAULT_FRACTION` of RAM."""
    env = os.environ.get(ENV_VAR)
    return parse_size(env) if env else int(_physical() * DEFAULT_FRACTION)


def memory_limit(size: str | int | None) -> AbstractContextManager[None]:
    """Within the block, the budget is ``size`` (``None``: unchanged), in the environment."""
    return environment_variable(ENV_VAR, None if size is None else str(parse_size(size)))


@contextmanager
def environment_variable(name: str, value: str | None) -> Iterator[None]:
    """Within the block, the environment variable ``name`` is ``value`` (``None``: unchanged), so
    that worker processes started inside inherit it; restored afterwards."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def declared_bytes(shape: Iterable[object], itemsize: int, where: str) -> int:
    """``prod(shape) * itemsize`` as an exact Python integer (no int64 overflow); refused in one
    line unless every size is a non-negative integer."""
    dims = []
    for d in shape:
        try:
            dims.append(operator.index(d))  # ints and numpy integers; not floats or strings
        except TypeError:
            raise ModscopeError(f"{where}: invalid size {d!r} in its shape") from None
        if dims[-1] < 0:
            raise ModscopeError(f"{where}: negative size {dims[-1]} in its shape")
    return math.prod(dims) * int(itemsize)


class Budget:
    """A running total of declared bytes for one source; `take` refuses past the limit.

    ``Budget(source)`` uses `max_memory`; ``limit`` overrides it (tests).
    """

    def __init__(self, source: str, limit: int | None = None) -> None:
        self.source = source
        self.limit = max_memory() if limit is None else int(limit)
        self.used = 0

    def take(self, nbytes: int, entry: str) -> int:
        """Add ``nbytes`` for ``entry``; a one-line `ModscopeError` if the total passes the limit."""
        nbytes = int(nbytes)
        if nbytes < 0:
            raise ModscopeError(f"{self.source}: {entry} declares a negative size ({nbytes})")
        if self.used + nbytes > self.limit:
            total = "" if self.used < 2**20 else f" ({format_size(self.used + nbytes)} in all)"
            raise ModscopeError(
                f"{self.source}: {entry} declares {format_size(nbytes)}{total}, above the memory budget "
                f"of {format_size(self.limit)} (--max-memory or {ENV_VAR} raises it)"
            )
        self.used += nbytes
        return nbytes

    def shape(self, shape: Iterable[object], itemsize: int, entry: str) -> int:
        """`take` the bytes of an array of ``shape`` and ``itemsize``."""
        return self.take(declared_bytes(shape, itemsize, f"{self.source}: {entry}"), entry)


def check_zip(path: str | os.PathLike, budget: Budget, mapped: bool = False) -> None:
    """Add every entry's declared decompressed length to ``budget`` before anything is
    decompressed (a zip bomb is refused here: ``zipfile`` and torch's reader never produce more
    than an entry declares). ``mapped``: stored (uncompressed) entries are memory-mapped, not
    read, and cost nothing. Not a zip: nothing to check (its reader says what it is)."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except ZIP_ERRORS:
        return
    for info in infos:
        if not (mapped and info.compress_type == zipfile.ZIP_STORED):
            budget.take(info.file_size, f"entry {info.filename[:80]} (decompressed)")


def npy_header(fh: BinaryIO) -> tuple:
    """``(shape, fortran_order, dtype)`` from the ``.npy`` header at ``fh``'s position (format 1.0 or
    2.0), leaving ``fh`` at the data."""
    from numpy.lib import format as fmt

    read = fmt.read_array_header_1_0 if fmt.read_magic(fh) == (1, 0) else fmt.read_array_header_2_0
    return read(fh, max_header_size=10_000)


def check_npz(path: str | os.PathLike, budget: Budget) -> None:
    """Add the bytes each ``.npy`` member of an ``.npz`` declares in its header (shape x dtype)
    to ``budget``, reading only the headers; unreadable headers are left to the reader."""
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                # what numpy reads of a member: its decompressed length, or what its header declares
                budget.take(info.file_size, f"entry {info.filename[:80]} (decompressed)")
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as fh:
                    shape, _, dtype = npy_header(fh)
                name = info.filename[:-4][:80]
                declared = declared_bytes(shape, dtype.itemsize, f"{budget.source}: {name}")
                budget.take(max(0, declared - info.file_size), f"array {name} of shape {shape}")
    except ModscopeError:  # a ValueError too: not to be mistaken for an unreadable header
        raise
    except ZIP_ERRORS:
        return


def gunzip(raw: bytes, budget: Budget, entry: str) -> bytes:
    """``gzip`` data (one or more members) decompressed without ever producing more than the
    budget allows: a gzip bomb stops at the limit and is refused in one line naming ``entry``."""
    room = budget.limit - budget.used
    parts, size = [], 0
    while raw:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(raw, room - size + 1)
        except zlib.error as exc:
            raise ModscopeError(f"{budget.source}: corrupt gzip data ({exc})") from None
        size += len(out)
        if size > room:
            raise ModscopeError(
                f"{budget.source}: {entry} decompresses to more than {format_size(room)}, above the "
                f"memory budget of {format_size(budget.limit)} (--max-memory or {ENV_VAR} raises it)"
            )
        if not d.eof:
            raise ModscopeError(f"{budget.source}: corrupt gzip data (truncated)")
        parts.append(out)
        raw = d.unused_data
    budget.take(size, entry)
    return b"".join(parts)
