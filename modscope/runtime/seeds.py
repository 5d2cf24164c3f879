"""Seeds: one ``seed`` enters at the top and flows down as ``numpy.random.SeedSequence`` children.

Nothing in modscope reads global random state or the clock. A unit of work (one shuffle, one
mask, one lesion set) gets its own child sequence, so its randomness does not depend on how
many other units run, in which order, or where.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["SeedLike", "as_seed_sequence", "child_seed", "int_seed", "stream_seed", "torch_seeds"]

SeedLike = int | np.random.SeedSequence | None


def as_seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """``seed`` as a ``SeedSequence`` (passed through when it already is one)."""
    return seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)


def child_seed(seed: SeedLike, i: int) -> np.random.SeedSequence:
    """The ``i``-th child of ``seed``, the same however often ``spawn`` was called before."""
    ss = as_seed_sequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, i), pool_size=ss.pool_size)


def int_seed(seed: SeedLike) -> int:
    """A 31-bit integer drawn from ``seed``, for libraries that take an int (scikit-learn, networkx)."""
    return int(as_seed_sequence(seed).generate_state(1)[0] % (2**31))


def torch_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent 63-bit seeds for torch generators, one per spawned child of ``seed``."""
    return [
        int(s.generate_state(1, np.uint64)[0] >> np.uint64(1)) for s in np.random.SeedSequence(seed).spawn(n)
    ]


def stream_seed(seed: int, name: str, stream: int) -> int:
    """A 63-bit seed that depends only on ``seed``, a ``name`` and a stream number.

    Keyed by name rather than position: a mask trained alone draws the same batches and noise
    as the same mask trained together with others.
    """
    ss = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()), stream))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))
