"""Reading MNIST-style image datasets from disk: IDX files (optionally gzipped) or one ``.npz``.

IDX layout (LeCun's MNIST page): a 4-byte magic ``0x00 0x00 <dtype code> <ndim>``, then
``ndim`` big-endian uint32 sizes, then the array, big-endian, C order. Nothing here downloads
anything: the files must already be on disk.
"""

from __future__ import annotations

import gzip
import math
import tokenize
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModscopeError
from ..runtime.atomic import write_atomic
from ..runtime.limits import Budget, check_npz, gunzip

__all__ = [
    "GZIP_MAGIC",
    "IDX_DTYPES",
    "ZIP_MAGIC",
    "ImageData",
    "find_idx",
    "load_image_data",
    "map_idx",
    "read_idx",
    "write_idx",
]

# IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModscopeError(f"{path}: no such file") from None
    except OSError as e:
        raise ModscopeError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw[:2] == GZIP_MAGIC:  # bounded: a small .gz can declare gigabytes
        return gunzip(raw, Budget(str(path)), "the gzip data")
    return raw


def _header(path: Path, raw: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, header length)`` of the IDX header at the start of ``raw`` (the file's
    first bytes: all of a header fits in its first 1024), or a one-line error saying what is wrong."""
    if len(raw) < 4:
        raise ModscopeError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    zero0, zero1, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero0 != 0 or zero1 != 0 or code not in IDX_DTYPES:
        raise ModscopeError(
            f"{path}: not an IDX file (magic {raw[:4].hex()}; expected 0000 + dtype code "
            f"{'/'.join(f'{c:02x}' for c in IDX_DTYPES)} + ndim)"
        )
    if ndim == 0:
        raise ModscopeError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ModscopeError(f"{path}: truncated IDX header ({len(raw)} of {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    return IDX_DTYPES[code], dims, header


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (plain or gzipped) into a native-endian array of its stored shape."""
    path = Path(path)
    raw = _read_bytes(path)
    dtype, dims, header = _header(path, raw)
    need = math.prod(dims) * dtype.itemsize  # exact: a product of 32-bit sizes can pass int64
    have = len(raw) - header
    if have < need:
        raise ModscopeError(f"{path}: truncated IDX data: shape {dims} needs {need} bytes, file has {have}")
    if have > need:
        raise ModscopeError(f"{path}: {have - need} bytes after the IDX data of shape {dims} (corrupt file?)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def map_idx(path: str | Path) -> np.ndarray:
    """An IDX file as an array read from disk only where indexed: a read-only ``np.memmap`` for a
    plain file (a gzipped one cannot be mapped and is read whole by `read_idx`)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4 + 4 * 255)
    except FileNotFoundError:
        raise ModscopeError(f"{path}: no such file") from None
    if head[:2] == GZIP_MAGIC:  # gzipped: read whole
        return read_idx(path)
    dtype, dims, header = _header(path, head)
    if path.stat().st_size != header + math.prod(dims) * dtype.itemsize:
        return read_idx(path)  # its one-line error says how the data is cut short or too long
    return np.memmap(path, dtype=dtype, mode="r", offset=header, shape=dims)


def write_idx(path: str | Path, arr: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``arr`` as an IDX file (gzipped when ``compress`` or the name ends in ``.gz``).

    The inverse of [`read_idx()`][modscope.data.idx.read_idx]; handy for exporting a subset or writing test
    fixtures.
    """
    path = Path(path)
    arr = np.asarray(arr)
    big = arr.dtype.newbyteorder(">")
    code = next((c for c, dt in IDX_DTYPES.items() if dt == big), None)
    if code is None:
        raise ModscopeError(f"IDX cannot store dtype {arr.dtype}")
    if not 1 <= arr.ndim <= 255:
        raise ModscopeError(f"IDX needs 1..255 dimensions, got {arr.ndim}")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(arr, dtype=big).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    write_atomic(path, lambda fh: fh.write(payload))


@dataclass
class ImageData:
    """Images scaled to [0, 1] and integer labels of a train/test split.

    ``x_*``: ``(N, H, W)`` float32 (``(N, D)`` when the source was flat); ``y_*``: ``(N,)`` int64.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


# File names looked for in a data directory, per array: IDX names with either separator.
_IDX_STEMS = {
    "x_train": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "y_train": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "x_test": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "y_test": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def find_idx(directory: Path, key: str) -> Path:
    """The IDX file (optionally ``.gz``) of ``key`` (``x_train``, ``y_test``, ...) in ``directory``."""
    for stem in _IDX_STEMS[key]:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    want = _IDX_STEMS[key][0]
    raise ModscopeError(f"{directory}: missing {want} (or {want}.gz)")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            if fh.read(4) != ZIP_MAGIC:
                raise ModscopeError(
                    f"{path}: not a readable .npz file (expected a zip archive of .npy arrays)"
                )
        check_npz(path, Budget(str(path)))
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _IDX_STEMS if k not in z.files]
            if missing:
                raise ModscopeError(
                    f"{path}: missing arrays {', '.join(missing)} "
                    f"(an .npz needs x_train, y_train, x_test, y_test; has {', '.join(z.files)})"
                )
            return {k: z[k] for k in _IDX_STEMS}
    except FileNotFoundError:
        raise ModscopeError(f"{path}: no such file") from None
    except ModscopeError:
        raise
    except ValueError:  # object arrays need pickle, which we refuse
        raise ModscopeError(
            f"{path}: unreadable .npz: it holds pickled object arrays (refused for safety)"
        ) from None
    except (OSError, EOFError, zlib.error, tokenize.TokenError, SyntaxError) as e:  # a mangled .npy header
        raise ModscopeError(f"{path}: not a readable .npz file ({e})") from None


def _scale_images(x: np.ndarray, where: str) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise ModscopeError(f"{where}: integer pixels must lie in [0, 255]")
        return (x.astype(np.float32) / 255.0).astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or (x.size and (x.min() < 0 or x.max() > 1)):
            raise ModscopeError(f"{where}: float pixels must be finite and lie in [0, 1]")
        return x.astype(np.float32)
    raise ModscopeError(f"{where}: images have unsupported dtype {x.dtype}")


def load_image_data(data: str | Path, *, n_classes: int = 10) -> ImageData:
    """Load an MNIST-format dataset from a directory of IDX files or from one ``.npz``.

    A directory must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``); an
    ``.npz`` must hold ``x_train, y_train, x_test, y_test`` and is read without pickle.
    Integer pixels are divided by 255; float pixels must already be in [0, 1]. Labels
    must be integers in ``[0, n_classes)``.
    """
    path = Path(data).expanduser()
    if path.is_dir():
        arrays = {k: read_idx(find_idx(path, k)) for k in _IDX_STEMS}
    elif path.is_file():
        arrays = _read_npz(path)
    else:
        raise ModscopeError(f"{path}: no such file or directory")
    out = {}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        where = f"{path} ({split})"
        if x.ndim not in (2, 3):
            raise ModscopeError(f"{where}: images must be (N, H, W) or (N, D), got {x.shape}")
        if y.ndim != 1:
            raise ModscopeError(f"{where}: labels must be one-dimensional, got {y.shape}")
        if len(x) != len(y):
            raise ModscopeError(f"{where}: {len(x)} images but {len(y)} labels")
        if len(x) == 0:
            raise ModscopeError(f"{where}: no examples")
        if not np.issubdtype(y.dtype, np.integer):
            raise ModscopeError(f"{where}: labels must be integers, got {y.dtype}")
        if y.min() < 0 or y.max() >= n_classes:
            raise ModscopeError(f"{where}: labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}")
        out[f"x_{split}"] = _scale_images(x, where)
        out[f"y_{split}"] = y.astype(np.int64)
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        raise ModscopeError(
            f"{path}: train images are {out['x_train'].shape[1:]} but test images {out['x_test'].shape[1:]}"
        )
    return ImageData(**out)
