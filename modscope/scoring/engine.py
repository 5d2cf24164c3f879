"""The one scoring engine: any measure on any graph against any null, on any executor.

``score`` evaluates a measure on the network (seeded with ``SeedSequence(seed)``) and on
``n_shuffles`` samples of a null. Sample ``i`` draws its graph with
``child_seed(SeedSequence(seed).spawn(n)[i], 0)`` and is measured with its child 1, on one
BLAS / OpenMP thread, so sample ``i`` is the same bits for any ``n``, any executor, any number
of workers and any order of execution; the first 50 of 200 samples are the 50 of a 50-sample
run. With ``cache`` each finished sample is stored as it completes and a rerun computes only
the missing ones.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import ModscopeError
from ..graphs.activations import ActivationGraph
from ..graphs.load import Source, load_graph
from ..graphs.weight_graph import WeightGraph
from ..nulls import Null, get_null
from ..runtime.cache import WorkCache
from ..runtime.executors import Executor, LocalExecutor
from ..stats import compare_to_null
from ..stats.flags import companion_null, is_sparse, zero_fraction
from .measures import Measure, get_measure
from .result import ScoreResult
from .sample import null_value

__all__ = ["null_value", "null_values", "score"]


def _cache_key(graph: WeightGraph, null: Null, measure: Measure, seed: int) -> dict[str, Any]:
    """Everything a null sample's value depends on."""
    return {"unit": "null_value", "graph": graph.fingerprint(), "null": [null.name, null.params()],
            "measure": [measure.name, measure.params()], "seed": seed}


def null_values(
    graph: WeightGraph,
    null: Null,
    measure: Measure,
    n: int,
    *,
    seed: int = 0,
    executor: Executor | None = None,
    progress: bool = False,
    cache: str | os.PathLike | None = None,
) -> np.ndarray:
    """``(n,)`` values of ``measure`` on ``n`` samples of ``null`` drawn from ``graph``, in order.

    ``executor``: where the samples run (default: here); an executor with a
    ``null_values(graph, null, measure, seeds)`` method (`TorchBatchExecutor`) computes them its
    own way. ``cache``: a folder of finished samples (`modscope.runtime.cache`).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ModscopeError(f"the number of null samples must be an integer >= 1, got {n!r}")
    executor = executor if executor is not None else LocalExecutor(1)
    seeds = np.random.SeedSequence(seed).spawn(n)
    store = None if cache is None else WorkCache(cache, _cache_key(graph, null, measure, seed))
    found, todo = store.missing(n) if store is not None else ({}, list(range(n)))
    out = np.empty(n)
    out[list(found)] = list(found.values())  # the samples read back from the cache
    units = [seeds[i] for i in todo]
    batched = getattr(executor, "null_values", None)
    results = (
        batched(graph, null, measure, units)
        if batched
        else executor.map(null_value, units, graph, null, measure)
    )
    from tqdm.auto import tqdm

    with tqdm(total=n, initial=len(found), desc=f"{null.name} null", unit="sample", disable=not progress,
              leave=False) as bar:
        for i, value in zip(todo, results, strict=True):
            out[i] = value
            if store is not None:
                store.put(i, float(value))
            bar.update()
    return out


def score(
    source: WeightGraph | Source,
    *,
    measure: Any = "ncut",
    n_clusters: int | None = None,
    null: Any = None,
    n_shuffles: int = 50,
    seed: int = 0,
    jobs: int = 1,
    executor: Executor | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = False,
    device: str | None = None,
    compare_nulls: bool | None = None,
) -> ScoreResult:
    """Score a network's modularity against a null ([spec §2][spec-2]–[§3][spec-3]).

    ``source``: a `Network`, a `WeightGraph` (an `ActivationGraph` too) or anything `load_graph` reads.
    ``measure``: ``"ncut"`` (default), ``"modularity"``, ``"local"``, a clusterer, or a `Measure`;
    ``n_clusters`` (default 12) goes with a measure's name. ``null``: a shuffle method name
    (``"layer"``, the default for weight graphs, ``"layer_nonzero"``, ``"layer_degree"``, ...),
    ``"units"`` (the default for activation graphs), or a `Null`. ``n_shuffles=0`` skips the
    null. ``jobs``: worker processes (-1 for all cores), or ``executor``: a
    `modscope.runtime.executors` executor (a Dask cluster) or a `TorchBatchExecutor`; results do
    not depend on either. ``cache``: a folder where finished samples are kept for a resume.
    ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``: the spectral path (the network's own
    clustering and its null) as batched torch tensor ops there (`TorchBatchExecutor`); samples
    are the same as without it, up to the float tolerances the tests state.
    ``compare_nulls``: also score against the other kind of weight null (``layer_nonzero``
    beside ``layer``, ``layer`` beside a null that keeps the sparsity pattern), with the same
    samples count and seed, into ``result.other_nulls``; default: for sparse networks (at least
    half of the weights zero, `modscope.stats.flags`), whose two nulls ask different questions.
    """
    graph = source if isinstance(source, WeightGraph) else load_graph(source)
    the_measure = get_measure(measure, n_clusters)
    if null is None:
        null = "units" if isinstance(graph, ActivationGraph) and graph.ranks else "layer"
    the_null = get_null(null)
    the_null.check(graph)
    executor = _score_executor(jobs, executor, device)
    if isinstance(n_shuffles, bool) or not isinstance(n_shuffles, int | np.integer) or n_shuffles < 0:
        raise ModscopeError(f"the number of shuffles must be an integer >= 0, got {n_shuffles!r}")
    own = getattr(executor, "evaluate", None)  # an executor that clusters the network itself
    ss = np.random.SeedSequence(seed)
    value, partition = own(graph, the_measure, ss) if own is not None else the_measure.evaluate(graph, ss)

    def against(a_null: Null):
        samples = null_values(
            graph, a_null, the_measure, int(n_shuffles), seed=seed, progress=progress, cache=cache,
            executor=executor if executor is not None else LocalExecutor(jobs),
        )
        return compare_to_null(value, samples, the_measure.higher_is_modular)

    comparison = against(the_null) if n_shuffles else None
    other = companion_null(the_null.name) if isinstance(null, str) else None
    if compare_nulls is None:
        weights_null = other is not None and not isinstance(graph, ActivationGraph)
        compare_nulls = weights_null and is_sparse(zero_fraction(graph.weights))
    # the other kind of null too: asked for (or a sparse network's default) and there is one
    also_other = compare_nulls and comparison is not None and other is not None
    return ScoreResult(
        graph=graph, measure=the_measure.name, higher_is_modular=the_measure.higher_is_modular,
        value=float(value), partition=partition, null_name=the_null.name if n_shuffles else None,
        null=comparison, seed=int(seed), other_nulls={other: against(get_null(other))} if also_other else {},
    )


def _score_executor(jobs: int, executor: Executor | None, device: str | None) -> Executor | None:
    """The executor ``score`` runs on: the one given, a `TorchBatchExecutor` on ``device``, or
    None (``jobs`` local processes); two of them at once are refused."""
    if executor is not None and jobs != 1:
        raise ModscopeError("give jobs or an executor, not both")
    if device is None:
        return executor
    if executor is not None or jobs != 1:
        raise ModscopeError("give a device, jobs or an executor, not two of them")
    from .batched import TorchBatchExecutor

    return TorchBatchExecutor(device)
