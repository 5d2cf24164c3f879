"""A *function* of a network: a piece of its job, defined by data (spec §5).

A function is a subset of the examples and/or a subset of the output groups. Masks learn one
subnetwork per function; knockouts score every function separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CONTROL", "Function"]

# The control mask's function: all of the data, every output.
CONTROL = "control"


@dataclass(frozen=True)
class Function:
    """One function of a task.

    ``train_index`` / ``test_index``: LongTensors of example indices (``None`` = all).
    ``groups``: which output groups the function asks for (``None`` = all); for MSE tasks the
    groups are single output columns.
    """

    name: str
    train_index: Any = None
    test_index: Any = None
    groups: tuple[int, ...] | None = None
