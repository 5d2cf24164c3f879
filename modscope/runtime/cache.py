"""A folder of finished pieces of work, so an interrupted run computes only what is missing.

Each piece (one shuffle's n-cut, say) is one small JSON file written atomically. A piece's
file lives in a folder named by the hash of everything that determines its value — the
network's weights, the method and its parameters, the seed, modscope's version — so a
cache made with other settings is never read by mistake. Every file carries a checksum of
its content: a damaged file is detected, removed and its piece recomputed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ModscopeError
from .atomic import write_atomic, write_json
from .hashing import json_digest

__all__ = ["WorkCache"]


class WorkCache:
    """Finished pieces of one computation (null samples, lesions), stored under ``root``.

    ``key`` is a JSON-able dict of everything the pieces' values depend on; pieces are
    indexed by integers.
    """

    def __init__(self, root: str | os.PathLike, key: dict[str, Any]) -> None:
        self.root = Path(root)
        self.key = {**key, "modscope_version": __version__}
        self.digest = json_digest(self.key)
        self.dir = self.root / self.digest[:32]

    def _open(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModscopeError(f"cannot use cache folder {self.root}: {exc.strerror}") from None
        manifest = self.dir / "key.json"
        if not manifest.exists():  # for people looking into the cache; never trusted for lookups
            write_json(manifest, self.key)

    def _path(self, i: int) -> Path:
        return self.dir / f"unit-{i:08d}.json"

    def get(self, i: int) -> Any | None:
        """The stored value of piece ``i``, or None when missing or damaged (then removed)."""
        path = self._path(i)
        try:
            record = json.loads(path.read_text())
            value = record["value"]
            if record["key"] != self.digest or record["check"] != json_digest([self.digest, i, value]):
                raise ValueError("checksum mismatch")
            return value
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            return None

    def put(self, i: int, value: Any) -> None:
        self._open()
        write_json(
            self._path(i),
            {"key": self.digest, "unit": i, "value": value, "check": json_digest([self.digest, i, value])},
        )

    def get_payload(self, name: str) -> Any | None:
        """A stored tensor payload (``torch.load(weights_only=True)``), or None if missing/damaged."""
        import torch

        path = self.dir / f"{name}.pt"
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(record, dict) or record.get("key") != self.digest:
                raise ValueError("not this cache's entry")
            return record["value"]
        except FileNotFoundError:
            return None
        except Exception:  # truncated, corrupt or foreign: recompute
            path.unlink(missing_ok=True)
            return None

    def put_payload(self, name: str, value: Any) -> None:
        """Store plain containers of tensors / numbers / strings atomically as ``name``."""
        import torch

        self._open()
        write_atomic(self.dir / f"{name}.pt", lambda fh: torch.save({"key": self.digest, "value": value}, fh))

    def missing(self, n: int) -> tuple[dict[int, Any], list[int]]:
        """``(found {i: value}, missing [i])`` for pieces ``0 .. n-1``."""
        found = {i: v for i in range(n) if (v := self.get(i)) is not None}
        return found, [i for i in range(n) if i not in found]
