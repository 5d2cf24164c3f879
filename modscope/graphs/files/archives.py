"""torch's zip archives read without running their code: ``.pt2`` (``torch.export.save``) and
TorchScript (``torch.jit.save``).

``torch.export.load`` and ``torch.jit.load`` are not safe for files from elsewhere: the first
unpickles every weight the archive marks ``use_pickle`` (``weights_only=False``), unpickles opaque
constants and ``exec``s the archive's ``guards_code`` when the program is turned into a module; the
second compiles and runs the archive's TorchScript (a ``__setstate__`` runs at load time). So:

- `read_pt2` reads ``models/<name>.json`` and ``data/weights/<name>_weights_config.json`` with
  ``json``, each raw weight file with numpy (``frombuffer`` + its sizes and strides, bounds
  checked), refuses pickled weights and constants, checks every node's target is an ATen op or an
  operator, every symbolic size sympy arithmetic on symbols (torch parses them with ``eval``),
  every value name an identifier (FX turns them into code), drops ``guards_code`` and the node
  metadata the tracer does not read, and only then hands the JSON and the tensors to torch's own
  deserializer (which, given tensors instead of bytes, unpickles nothing; no sample inputs);
- `read_torchscript` unpickles ``data.pkl`` with an unpickler that knows tensors, storages,
  ``OrderedDict``, TorchScript's list tags and ``__torch__.*`` classes as inert containers, and
  nothing else; the code in the archive is never read.

Errors are one line (`ModscopeError`).
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ...errors import ModscopeError, first_line
from ...runtime.limits import ZIP_ERRORS, Budget
from .formats import MAX_FILE_BYTES, check_file, refusing, unreadable

__all__ = ["Entries", "archive_kind", "open_zip", "read_pt2", "read_torchscript"]

# torch/_export/serde/schema.py ScalarType -> numpy dtype (bfloat16 is read as its 16 bits)
_PT2_DTYPES = {
    1: "u1", 2: "i1", 3: "<i2", 4: "<i4", 5: "<i8", 6: "<f2", 7: "<f4", 8: "<f8", 12: "?", 13: "<u2"
}
_BFLOAT16 = 13
# TorchScript storage classes -> numpy dtype
_TS_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
# node targets a program may call: ATen ops and Python's operator / math functions on sizes
_TARGET = re.compile(r"^(torch\.ops\.aten\.\w+\.\w+|_operator\.\w+|math\.\w+|torch\.sym_\w+)$")
# a symbolic size as sympy's srepr writes it: numbers, quoted symbol names or numbers, arithmetic,
# and the names of sympy's (and torch's sympy) classes and assumptions, nothing else
_EXPR_TOKEN = re.compile(
    r"\s*(?:(\d+\.\d+(?:e[-+]?\d+)?|\d+)|'([^'\\]{0,40})'|([A-Za-z_]\w*)|(\*\*|//|==|!=|<=|>=|[-+*/%(),<>=!&|~]))"
)
_EXPR_NAMES = frozenset(
    """
    FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt CeilDiv LShift RShift
    PowByNatural FloatPow FloatTrueDiv IntTrueDiv IsNonOverlappingAndDenseIndicator TruncToFloat
    TruncToInt RoundToInt RoundDecimal ToFloat Identity Max Min Abs Eq Ne Lt Le Gt Ge And Or Not
    True False oo floor ceiling Integer Rational Float Symbol Add Mul Pow Infinity NegativeInfinity
    StrictLessThan StrictGreaterThan LessThan GreaterThan Equality Unequality BooleanTrue BooleanFalse
    Piecewise ExprCondPair Half One Zero NegativeOne
    positive negative integer nonnegative nonpositive real finite infinite commutative zero nonzero
    even odd rational precision
    """.split()
)
# a symbol's name or a number; symbol indices have at most 5 digits (torch loops up to the index:
# `u999999999999999` would hang it)
_QUOTED = re.compile(r"[a-z]+\d{1,5}|[-+]?\d{1,30}(\.\d*)?(e[-+]?\d+)?")
_SYMBOL = re.compile(r"^[a-z]+\d{1,5}$")
# the names of values, nodes and arguments (torch writes Python identifiers; FX turns them into code)
_NAME = re.compile(r"[A-Za-z_][\w.]*")
_VALUE_TABLES = (
    "tensor_values", "sym_int_values", "sym_bool_values", "sym_float_values", "custom_obj_values"
)
# the node metadata torch's deserializer resolves by name; the tracer reads only the module stack
_KEEP_METADATA = ("nn_module_stack", "stack_trace")
ArchiveKind = Literal["pt2", "torchscript"]


# -- zip archives ------------------------------------------------------------------------------------
def open_zip(path: Path, what: str) -> zipfile.ZipFile:
    """``path`` as a zip archive (a ``what``), checked first, with one-line errors."""
    check_file(path, limit=True)
    with refusing(ZIP_ERRORS, lambda exc: unreadable(path, what, exc)):
        return zipfile.ZipFile(path)


def _root(z: zipfile.ZipFile) -> str:
    """The one folder every entry of a torch archive sits in ('' if not so)."""
    tops = {name.split("/", 1)[0] for name in z.namelist() if "/" in name}
    return next(iter(tops)) if len(tops) == 1 else ""


def archive_kind(path: str | Path) -> ArchiveKind | None:
    """``"pt2"`` for a ``torch.export`` archive, ``"torchscript"`` for a ``torch.jit.save`` one
    (its ``<root>/constants.pkl``), None for anything else (a ``torch.save`` zip, not a zip)."""
    with contextlib.suppress(*ZIP_ERRORS), zipfile.ZipFile(path) as z:  # not a zip, or a corrupt one: None
        root = _root(z)
        names = set(z.namelist())
        fmt = f"{root}/archive_format"
        if fmt in names and z.getinfo(fmt).file_size < 64 and z.read(fmt).strip() == b"pt2":
            return "pt2"
        if f"{root}/constants.pkl" in names:
            return "torchscript"
    return None


class Entries:
    """Reads entries of an archive (``prefix``: the folder they sit in, with its ``/``) with
    one-line errors, never more than the size limit."""

    def __init__(self, path: Path, z: zipfile.ZipFile, prefix: str, what: str) -> None:
        self.path, self.z, self.prefix, self.what = path, z, prefix, what
        self.names = set(z.namelist())
        # one budget for the archive: every entry's decompressed length and every tensor copied
        # out of a storage (zip bombs, stride-0 tensors) are added before they are allocated
        self.budget = Budget(str(path))

    def has(self, name: str) -> bool:
        return self.prefix + name in self.names

    def read(self, name: str) -> bytes:
        full = self.prefix + name
        if full not in self.names:
            raise ModscopeError(f"{self.path}: not a readable {self.what}: it has no {name}")
        if self.z.getinfo(full).file_size > MAX_FILE_BYTES:
            raise ModscopeError(f"{self.path}: {name} is above the {MAX_FILE_BYTES:,}-byte limit")
        self.budget.take(self.z.getinfo(full).file_size, f"entry {name} (decompressed)")
        with refusing(ZIP_ERRORS, lambda exc: unreadable(self.path, self.what, exc)):
            return self.z.read(full)

    def json(self, name: str) -> Any:
        raw = self.read(name)  # its refusals are ValueErrors too: read before the try
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:  # bad bytes or syntax, an integer of 4,300+ digits
            raise ModscopeError(f"{self.path}: {name} is not valid JSON ({first_line(exc)})") from None


def _strided(
    buf: np.ndarray, sizes: list[int], strides: list[int], offset: int, where: str, budget: Budget
) -> np.ndarray:
    """``buf`` (a flat storage) viewed with torch's sizes / strides / offset (in elements), copied;
    refused unless every element it views lies inside the storage and the copy fits ``budget``
    (a stride-0 tensor of a small storage can declare terabytes)."""
    if len(sizes) != len(strides) or any(
        not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in (*sizes, *strides, offset)
    ):
        raise ModscopeError(f"{where}: invalid sizes, strides or offset")
    if 0 not in sizes:
        last = offset + sum((n - 1) * s for n, s in zip(sizes, strides, strict=True))
        if last >= buf.size:
            raise ModscopeError(f"{where}: its sizes and strides reach past the end of its storage")
    elif offset > buf.size:
        raise ModscopeError(f"{where}: its offset lies past the end of its storage")
    budget.shape(sizes, buf.itemsize, f"{where.removeprefix(budget.source + ': ')} of shape {tuple(sizes)}")
    base = buf[offset:] if 0 not in sizes else buf[:0]
    byte_strides = tuple(s * buf.itemsize for s in strides)
    return np.array(np.lib.stride_tricks.as_strided(base, tuple(sizes), byte_strides, writeable=False))


# -- .pt2 --------------------------------------------------------------------------------------------
def _sym_ints(values: Any, where: str) -> list[int]:
    if not isinstance(values, list) or not all(isinstance(v, dict) and "as_int" in v for v in values):
        raise ModscopeError(f"{where}: a stored tensor with a symbolic size or stride")
    return [v["as_int"] for v in values]


def _pt2_tensor(entries: Entries, folder: str, fqn: str, meta: Any, cache: dict) -> Any:
    """One stored tensor of a ``.pt2`` payload config entry, as a torch tensor."""
    import torch

    where = f"{entries.path}: {fqn}"
    if not isinstance(meta, dict):
        raise ModscopeError(f"{where}: malformed payload entry")
    if meta.get("use_pickle"):
        raise ModscopeError(
            f"{where} is pickled in the archive (use_pickle): refused, unpickling it could run code "
            "(a tensor subclass or a custom object; save the program with plain tensors)"
        )
    tm, file = meta.get("tensor_meta"), meta.get("path_name")
    if not isinstance(tm, dict) or not isinstance(file, str) or not re.fullmatch(r"[\w.-]+", file):
        raise ModscopeError(f"{where}: malformed payload entry")
    code = tm.get("dtype")
    if isinstance(code, list | dict) or code not in _PT2_DTYPES:  # (a JSON list or object is unhashable)
        raise ModscopeError(f"{where}: unsupported tensor dtype (code {code!r})")
    if tm.get("layout", 7) != 7:
        raise ModscopeError(f"{where}: a sparse or other non-strided tensor is not supported")
    key = (folder, file, code)
    if key not in cache:
        raw = entries.read(f"{folder}{file}")
        dtype = np.dtype(_PT2_DTYPES[code])
        if len(raw) % dtype.itemsize:
            raise ModscopeError(f"{where}: its storage is not a whole number of elements (truncated?)")
        cache[key] = np.frombuffer(raw, dtype=dtype)
    start = tm.get("storage_offset", {})
    offset = start.get("as_int") if isinstance(start, dict) else None
    sizes, strides = _sym_ints(tm.get("sizes"), where), _sym_ints(tm.get("strides"), where)
    t = torch.from_numpy(_strided(cache[key], sizes, strides, offset, where, entries.budget))
    if code == _BFLOAT16:
        t = t.view(torch.bfloat16)
    return torch.nn.Parameter(t, requires_grad=False) if meta.get("is_param") else t


def _payload(entries: Entries, folder: str, config: str, constants: bool) -> dict[str, Any]:
    """Every tensor a ``.pt2`` payload config lists, by fully qualified name."""
    cfg = entries.json(config) if entries.has(config) else {"config": {}}
    table = cfg.get("config") if isinstance(cfg, dict) else None
    if not isinstance(table, dict):
        raise ModscopeError(f"{entries.path}: {config} is malformed")
    cache: dict = {}
    out = {}
    for fqn, meta in table.items():
        path_name = meta.get("path_name", "") if isinstance(meta, dict) else ""
        if constants and not str(path_name).startswith("tensor_"):
            raise ModscopeError(
                f"{entries.path}: constant {fqn} is a pickled Python or TorchScript object: refused, "
                "unpickling it could run code"
            )
        out[fqn] = _pt2_tensor(entries, folder, fqn, meta, cache)
    return out


def _check_expr(text: Any, where: str) -> None:
    """A symbolic size torch parses with sympy (an ``eval``): sympy's constructors of arithmetic on
    symbols and numbers only (``Mul(Integer(2), Symbol('s0', integer=True))``)."""
    if not isinstance(text, str) or len(text) > 4000:
        raise ModscopeError(f"{where}: malformed symbolic expression")
    pos, end = 0, len(text.rstrip())  # token by token, up to the trailing whitespace
    while pos < end:
        m = _EXPR_TOKEN.match(text, pos)
        if m is None:
            raise ModscopeError(f"{where}: refused symbolic expression {text[:60]!r}")
        quoted, name = m.group(2, 3)
        if (quoted is not None and not _QUOTED.fullmatch(quoted)) or (
            name is not None and name not in _EXPR_NAMES and not _SYMBOL.match(name)
        ):
            raise ModscopeError(f"{where}: refused symbolic expression {text[:60]!r}")
        pos = m.end()


def _vet(obj: Any, where: str) -> None:
    """Walk the program's JSON: refuse calls that are not ATen ops, symbolic expressions that are
    not arithmetic, names that are not identifiers; drop node metadata torch would resolve by name
    (source functions, origins)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if "expr_str" in item:
                _check_expr(item["expr_str"], where)
            name = item.get("name")
            if isinstance(name, str) and not _NAME.fullmatch(name):
                raise ModscopeError(f"{where}: refused value name {name[:60]!r} (not an identifier)")
            for key in _VALUE_TABLES:
                table = item.get(key)
                if isinstance(table, dict) and not all(_NAME.fullmatch(str(k)) for k in table):
                    raise ModscopeError(f"{where}: refused value names in {key} (not identifiers)")
            if "target" in item and "inputs" in item and "outputs" in item:  # a node
                target = item["target"]
                if not isinstance(target, str) or not _TARGET.match(target):
                    raise ModscopeError(
                        f"{where}: calls {str(target)[:80]!r}, not an ATen op: refused (custom and "
                        "higher-order ops, e.g. control flow, are not read)"
                    )
                meta = item.get("metadata")
                if isinstance(meta, dict):
                    item["metadata"] = {k: v for k, v in meta.items() if k in _KEEP_METADATA}
            stack.extend(item.values())


def _check_ranges(program: dict, where: str) -> None:
    """``range_constraints``: ``{symbol: {"min_val": int | None, "max_val": int | None}}`` with
    symbol names torch makes (``s0``, ``u12``); anything else refused before torch reads it."""
    ranges = program.get("range_constraints", {})
    if not isinstance(ranges, dict) or len(ranges) > 10_000:
        raise ModscopeError(f"{where}: malformed range_constraints")
    for name, bounds in ranges.items():
        if not _SYMBOL.match(str(name)):
            raise ModscopeError(f"{where}: refused range_constraints symbol {str(name)[:40]!r}")
        if not isinstance(bounds, dict) or not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**63)
            for v in bounds.values()
        ):
            raise ModscopeError(f"{where}: malformed range_constraints entry for {name}")


def read_pt2(path: str | Path) -> Any:
    """The ``torch.export.ExportedProgram`` of a ``.pt2`` archive, read without running its code.

    Refused in one line: archives holding several programs (unless one is named ``model``), weights
    or constants stored pickled, the legacy single-pickle weights file, custom / higher-order ops,
    symbolic sizes other than sympy arithmetic on symbols, value names that are not identifiers,
    and a schema version torch cannot read. The archive's sample inputs (a pickle) are never read;
    its ``guards_code`` is dropped. Symbolic sizes (a dynamic batch) are kept.
    """
    import torch
    from torch._export.serde import serialize as serde

    path = Path(path)
    what = "torch.export archive (.pt2)"
    with open_zip(path, what) as z:
        root = _root(z)
        entries = Entries(path, z, f"{root}/", what)
        if not entries.has("archive_format") or entries.read("archive_format").strip() != b"pt2":
            raise ModscopeError(f"{path}: not a torch.export archive (no archive_format 'pt2')")
        if entries.has("byteorder") and entries.read("byteorder").strip() not in (b"", b"little"):
            raise ModscopeError(f"{path}: a big-endian archive is not supported")
        folder = f"{root}/models/"
        found = [n for n in entries.names if n.startswith(folder) and n.endswith(".json")]
        models = sorted(n[len(folder) : -len(".json")] for n in found if n.count("/") == 2)
        if not models:
            raise ModscopeError(f"{path}: the archive holds no exported program (models/*.json)")
        if len(models) > 1 and "model" not in models:
            raise ModscopeError(f"{path}: the archive holds {len(models)} programs ({', '.join(models)})")
        name = "model" if "model" in models else models[0]
        if entries.has(f"data/weights/{name}.pt") or entries.has(f"data/constants/{name}.pt"):
            raise ModscopeError(
                f"{path}: weights in torch's legacy pickled form: refused, unpickling them could run "
                "code (save the program again with torch.export.save)"
            )
        program = entries.json(f"models/{name}.json")
        if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
            raise ModscopeError(f"{path}: models/{name}.json is not an exported program")
        _check_ranges(program, str(path))
        _vet(program, str(path))
        program["guards_code"] = []  # torch would exec these when the program becomes a module
        state = _payload(entries, "data/weights/", f"data/weights/{name}_weights_config.json", False)
        constants = _payload(entries, "data/constants/", f"data/constants/{name}_constants_config.json", True)
    artifact = serde.SerializedArtifact(json.dumps(program).encode(), state, constants, b"")
    try:
        return serde.deserialize(artifact)
    except Exception as exc:  # torch's deserializer raises many types on a malformed program
        raise ModscopeError(
            f"{path}: cannot rebuild the exported program (torch {torch.__version__}: "
            f"{type(exc).__name__}: {first_line(exc)})"
        ) from None


# -- TorchScript -------------------------------------------------------------------------------------
class ScriptObject:
    """An inert stand-in for a ``__torch__.*`` object of a TorchScript archive: it keeps the state
    the pickle gives it and does nothing else (no code of the archive is ever compiled or run)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _same(value: Any, *args: Any) -> Any:
    return value  # TorchScript's list / dict type tags: the plain value


class _ScriptUnpickler(pickle.Unpickler):
    """``data.pkl`` of a TorchScript archive: tensors, storages, OrderedDict, type tags and inert
    ``__torch__`` objects; any other global is refused."""

    def __init__(self, data: bytes, entries: Entries) -> None:
        super().__init__(io.BytesIO(data))
        self.entries = entries
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return self.rebuild_tensor
        if module == "torch" and name in _TS_DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch.jit._pickle" and (name == "restore_type_tag" or name.startswith("build_")):
            return _same
        if module == "__torch__" or module.startswith("__torch__."):  # every class of the archive's code
            return ScriptObject
        raise ModscopeError(
            f"{self.entries.path}: refused global {module}.{name} in the TorchScript archive: only tensors "
            "and module objects are read"
        )

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unknown persistent id")
        _, kind, key, _, numel = pid
        if kind not in _TS_DTYPES:
            raise pickle.UnpicklingError(f"unsupported storage type {kind!r}")
        if not isinstance(key, str) or not re.fullmatch(r"\w+", key):
            raise pickle.UnpicklingError(
                f"refused storage key {str(key)[:60]!r} (a path outside the archive's data/ folder?)"
            )
        if key not in self.storages:
            dtype = np.dtype(_TS_DTYPES[kind])
            raw = self.entries.read(f"data/{key}")
            if not isinstance(numel, int) or numel < 0 or numel * dtype.itemsize > len(raw):
                raise pickle.UnpicklingError(f"storage {key} is shorter than it says (truncated?)")
            array = np.frombuffer(raw, dtype=dtype, count=numel)
            if kind == "BFloat16Storage":  # numpy has no bfloat16: its 16 bits are float32's top half
                self.entries.budget.take(4 * numel, f"storage {key} widened to float32")
                array = (array.astype(np.uint32) << 16).view(np.float32)
            self.storages[key] = array
        return self.storages[key]

    def rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> np.ndarray:
        if not isinstance(storage, np.ndarray):
            raise pickle.UnpicklingError("a tensor without storage")
        try:
            size, stride = list(size), list(stride)
        except TypeError:
            raise pickle.UnpicklingError("a tensor with malformed sizes or strides") from None
        return _strided(storage, size, stride, offset, "a tensor", self.entries.budget)


def _named_tensors(obj: Any) -> dict[str, np.ndarray]:
    """``{dotted name: array}`` of a module tree: tensors held in each object's attribute dict,
    children walked; lists (an LSTM's ``_flat_weights`` repeats its named weights) skipped. In the
    tree's attribute order (the state dict's order): each tensor's place is the attribute indices on
    its path."""
    out: dict[str, tuple[tuple, np.ndarray]] = {}
    todo, seen = [("", (), obj)], set()
    while todo:
        prefix, place, node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        state = node.state if isinstance(node, ScriptObject) else None
        if not isinstance(state, dict):
            continue
        for i, (key, value) in enumerate(state.items()):
            if not isinstance(key, str):
                continue
            if isinstance(value, np.ndarray):
                out[prefix + key] = ((*place, i), value)
            elif isinstance(value, ScriptObject):
                todo.append((f"{prefix}{key}.", (*place, i), value))
    return {name: array for name, (_, array) in sorted(out.items(), key=lambda kv: kv[1][0])}


def check_memo_indices(data: bytes, where: str) -> None:
    """Refuse a pickle whose memo indices (``PUT`` / ``GET`` and their binary forms) exceed its own
    length, before an unpickler sees it: C ``pickle`` grows its memo array to the index asked for,
    so a 1 KB pickle naming index 2**31 allocates gigabytes. A real pickler numbers its memo
    entries 0, 1, 2, ... one opcode at a time, so no valid index reaches the number of bytes."""
    import pickletools

    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _MEMO_OPS and isinstance(arg, int) and not 0 <= arg < len(data):
                raise ModscopeError(
                    f"{where}: memo index {arg} of a {len(data)}-byte pickle: corrupt or crafted"
                )
    except ModscopeError:
        raise
    except Exception:  # a malformed stream: the unpickler itself says what is wrong with it
        return


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def read_torchscript(path: str | Path) -> dict[str, np.ndarray]:
    """The named tensors (parameters and buffers, state-dict names) of a TorchScript archive,
    read from ``data.pkl`` and the raw storages without compiling or running its code."""
    path = Path(path)
    what = "TorchScript archive"
    with open_zip(path, what) as z:
        entries = Entries(path, z, f"{_root(z)}/", what)
        data = entries.read("data.pkl")
        check_memo_indices(data, f"{path}: data.pkl of the {what}")
        try:
            obj = _ScriptUnpickler(data, entries).load()
        except ModscopeError:
            raise
        except pickle.UnpicklingError as exc:
            raise ModscopeError(f"{path}: not a readable {what} ({first_line(exc)})") from None
        except Exception as exc:  # corrupt pickles raise many types
            raise unreadable(path, what, exc) from None
    tensors = _named_tensors(obj)
    if not tensors:
        raise ModscopeError(
            f"{path}: no named tensors found in the TorchScript archive (a module with a custom "
            "__getstate__ keeps its weights unnamed): save its state_dict"
        )
    return tensors
