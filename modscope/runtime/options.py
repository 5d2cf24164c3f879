"""Settings as a config dataclass or as keyword options, never both."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import ModscopeError

__all__ = ["settle"]

C = TypeVar("C")


def settle(cls: type[C], config: C | None, options: dict[str, Any]) -> C:
    """``config`` when given, else ``cls(**options)``: one way in, with one-line errors for both at
    once, for a config of another type and for options ``cls`` does not have."""
    if config is not None:
        if options:
            raise ModscopeError(
                f"give a {cls.__name__} or keyword options ({', '.join(sorted(options))}), not both"
            )
        if not isinstance(config, cls):
            raise ModscopeError(f"expected a {cls.__name__}, got {type(config).__name__}")
        return config
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ModscopeError(
            f"unknown option(s) {', '.join(unknown)}; {cls.__name__} takes {', '.join(sorted(known))}"
        )
    return cls(**options)
