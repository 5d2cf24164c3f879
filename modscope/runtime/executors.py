"""Where independent units of work run: here, in local worker processes, or on a Dask cluster.

(`modscope.scoring.batched.TorchBatchExecutor` adds a third kind for null baselines: their
eigenproblems solved in batches on a torch device.)

A unit (one shuffle, one sweep row) draws all its randomness from its own
``SeedSequence`` and runs on one BLAS / OpenMP thread, so its result is the same bits on
whichever executor, worker or machine it runs. Executors are interchangeable objects with
one interface:

- ``map(fn, items, *shared)``: ``fn(*shared, item)`` for every item, results in item order
  (a generator: the caller can show progress and persist as results arrive);
- ``as_completed(fn, items, *shared)``: ``(index, result)`` pairs in completion order.

``shared`` arguments (a graph, a clusterer) are sent to each worker once, not once per unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import ModscopeError, first_line

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "check_jobs"]


class Executor(Protocol):
    def map(self, fn: Callable, items: Sequence, *shared) -> Iterator: ...

    def as_completed(self, fn: Callable, items: Sequence, *shared) -> Iterator[tuple[int, Any]]: ...


def _indexed(i: int, item, fn: Callable, shared: Sequence) -> tuple[int, Any]:
    """``(i, fn(*shared, item))``: a unit's result with its index, on whichever worker it ran."""
    return i, fn(*shared, item)


def check_jobs(jobs: int, name: str = "jobs") -> int:
    """``jobs``: a count of workers or threads, or -1 for all cores; a one-line error naming the
    option (``name``) otherwise."""
    if isinstance(jobs, bool) or not isinstance(jobs, int | np.integer) or jobs == 0 or jobs < -1:
        raise ModscopeError(f"{name} must be >= 1 or -1 (all cores), got {jobs!r}")
    return int(jobs)


class LocalExecutor:
    """``jobs`` worker processes on this machine (joblib/loky); ``jobs=1`` runs in this process."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def map(self, fn: Callable, items: Sequence, *shared) -> Iterator:
        return (result for _, result in self._indexed(fn, items, shared, "generator"))

    def as_completed(self, fn: Callable, items: Sequence, *shared) -> Iterator[tuple[int, Any]]:
        return self._indexed(fn, items, shared, "generator_unordered")

    def _indexed(self, fn: Callable, items: Sequence, shared: tuple, order: str) -> Iterator[tuple[int, Any]]:
        """``(index, fn(*shared, item))`` pairs: in item order (``order="generator"``) or as the
        workers finish them (``"generator_unordered"``); here, in order, with one job."""
        check_jobs(self.jobs)
        if self.jobs == 1:
            return ((i, fn(*shared, item)) for i, item in enumerate(items))
        from joblib import Parallel, delayed

        return Parallel(n_jobs=self.jobs, return_as=order)(
            delayed(_indexed)(i, x, fn, shared) for i, x in enumerate(items)
        )


class DaskExecutor:
    """Units as tasks on a running Dask cluster (``pip install 'modscope[distributed]'``).

    ``scheduler`` is the scheduler's address, e.g. ``tcp://10.0.0.5:8786`` (start one with
    ``dask scheduler`` and workers with ``dask worker ADDRESS --nthreads 1``; workers need
    modscope installed). ``timeout`` bounds the connection, in seconds. Use as a context
    manager, or call `close`.
    """

    def __init__(self, scheduler: str, timeout: float = 30.0) -> None:
        self.scheduler = scheduler
        self.timeout = timeout
        self._client = None

    def client(self):
        """The connected ``distributed.Client`` (connects on first use)."""
        if self._client is None:
            try:
                from distributed import Client
            except ImportError:
                raise ModscopeError("--scheduler needs Dask: pip install 'modscope[distributed]'") from None
            try:
                self._client = Client(self.scheduler, timeout=self.timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ModscopeError(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {first_line(exc, None)}") from None
        return self._client

    def _submit(self, fn: Callable, items: Sequence, shared: tuple):
        client = self.client()
        # every worker gets the shared arguments once; tasks then refer to them by key
        handles = [client.scatter(obj, broadcast=True, hash=False) for obj in shared]
        items = list(items)
        return client.map(_indexed, range(len(items)), items, fn=fn, shared=handles, pure=False)

    def map(self, fn: Callable, items: Sequence, *shared) -> Iterator:
        return (f.result()[1] for f in self._submit(fn, items, shared))  # submitted now, read as iterated

    def as_completed(self, fn: Callable, items: Sequence, *shared) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        futures = self._submit(fn, items, shared)
        with self.client().as_current():  # as_completed looks for a current client
            done = as_completed(futures)
        return (f.result() for f in done)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> DaskExecutor:
        self.client()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

