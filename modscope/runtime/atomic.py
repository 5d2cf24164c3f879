"""Safe output writes: atomic for regular files, and never destroying anything else.

- a regular file (or a new name) is written to a temp file in its folder, fsynced and renamed
  into place: an interrupt leaves either the old file or the new one, never half of one;
- a symbolic link is followed (every level) and its *target* is written that way, so the link
  stays a link and its target is not left stale;
- a character device (``/dev/null``, a terminal, ``/dev/stdout``) or a FIFO is opened and written
  directly: it cannot be renamed over (that would replace the device node or pipe with a regular
  file), so such a write is *not* atomic;
- ``-`` writes to standard output;
- a directory, socket or block device is refused in one line.

`check_output` makes the same decisions up front, so a command refuses a bad ``--json`` /
``--out`` path before it starts its work, and `check_distinct` refuses one file named for two
outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ..errors import ModscopeError

__all__ = [
    "STDOUT",
    "check_distinct",
    "check_output",
    "output_kind",
    "write_atomic",
    "write_json",
    "write_text",
]

STDOUT = "-"
OutputKind = Literal["stdout", "file", "stream"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _resolve(path: str | os.PathLike) -> Path:
    """The path symlinks lead to (a dangling link: the file it names)."""
    return Path(os.path.realpath(os.fspath(path)))


def _mode(target: Path) -> int:
    """``st_mode`` of ``target`` (a function of its own so tests can stand in device nodes)."""
    return os.stat(target).st_mode


def output_kind(path: str | os.PathLike, what: str = "output") -> tuple[OutputKind, Path]:
    """How ``path`` is written: ``("stdout", -)``, ``("file", target)`` (atomic rename) or
    ``("stream", target)`` (a character device or FIFO, written in place); one-line refusal of
    directories and other special files."""
    if os.fspath(path) == STDOUT:
        return "stdout", Path(STDOUT)
    try:
        mode = _mode(Path(path))  # through symlinks
    except FileNotFoundError:  # a new name, or a dangling link: the file it names is made
        return "file", _resolve(path)
    except OSError as exc:
        raise ModscopeError(f"{what} {path}: cannot be written ({exc.strerror or exc})") from None
    if stat.S_ISREG(mode):
        return "file", _resolve(path)
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        # opened by the name given: /dev/stdout -> /proc/self/fd/1 -> "pipe:[…]" has no path
        return "stream", Path(path)
    if stat.S_ISDIR(mode):
        raise ModscopeError(f"{what} {path}: is a directory; name a file to write")
    raise ModscopeError(
        f"{what} {path}: a socket or block device is not written (name a regular file, a "
        "character device or a FIFO)"
    )


def check_output(
    path: str | os.PathLike | None,
    what: str = "output",
    *,
    directory: bool = False,
    stdout: bool = True,
) -> None:
    """Refuse now, in one line, an output path the command could not write when it is done: a
    directory where a file goes (or a file where a folder goes), a missing or unwritable parent
    folder, a special file, ``-`` where standard output is not allowed. ``None``: nothing to check.
    Writes nothing."""
    if path is None:
        return
    if os.fspath(path) == STDOUT:
        if directory or not stdout:
            raise ModscopeError(f"{what} -: standard output cannot take this output; name a file")
        return
    if not os.fspath(path):
        raise ModscopeError(f"{what}: an empty path")
    target = _resolve(path)
    if directory:
        if target.exists():
            if not target.is_dir():
                raise ModscopeError(f"{what} {path}: is not a directory")
            if not os.access(target, os.W_OK | os.X_OK):
                raise ModscopeError(f"{what} {path}: the directory is not writable")
            return
    else:
        kind, target = output_kind(path, what)
        if kind == "stream":
            if not os.access(target, os.W_OK):
                raise ModscopeError(f"{what} {path}: not writable")
            return
        if target.exists() and not os.access(target, os.W_OK):
            raise ModscopeError(f"{what} {path}: the file is not writable")
    parent = target.parent  # of the folder to make, or of the file's target
    if not parent.exists():
        raise ModscopeError(f"{what} {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise ModscopeError(f"{what} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ModscopeError(f"{what} {path}: the folder {parent} is not writable")


def check_distinct(outputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse one file named for two outputs (``train --out m.json --json m.json``): the second
    would overwrite the first. ``{flag: path}``; ``None`` and ``-`` are ignored."""
    seen: dict[Path, str] = {}
    for flag, path in outputs.items():
        if path is None or os.fspath(path) == STDOUT:
            continue
        target = _resolve(path)
        if target in seen:
            raise ModscopeError(f"{seen[target]} and {flag} name the same file {path}; give each its own")
        seen[target] = flag


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(fh)`` on a temp file beside ``path``'s target and rename it into place; a
    device or FIFO is written directly, ``-`` is standard output (see the module docstring)."""
    kind, target = output_kind(path)
    if kind != "file":  # standard output, or a device or FIFO: written in place, not atomically
        if kind == "stdout":
            sys.stdout.flush()  # text printed before goes first
        with open(target, "wb") if kind == "stream" else contextlib.nullcontext(sys.stdout.buffer) as fh:
            write(fh)
            fh.flush()
        return Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON, atomically (byte-identical for equal input)."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) like `write_atomic`."""
    return write_atomic(path, lambda fh: fh.write(text.encode()))
