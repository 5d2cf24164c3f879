"""Knockout (lesion) experiments: do the modules found matter for what the network does? ([spec §4][spec-4])

A *sub-module* is the set of neurons of one hidden layer that carry one cluster label. A
*lesion* silences neurons: they output zero. Each true lesion is compared with ``N`` random
lesions of the same size in the same layer (the layer's labels permuted), which answers
"does removing *this* group hurt more than removing any group of its size?".

Conventions used throughout:

* "Layers" are the unit groups of the traced graph, numbered as in the weight graph for an MLP
  ([spec §1][spec-1]): 0 is the input layer, ``1 .. L-1`` the hidden layers (hidden layer ``l`` is
  the output of ``model.layers[l - 1]`` after the activation), ``L`` the output layer. Only groups
  that a layer writes and another reads are lesioned: never the network's inputs and outputs.
* Neurons labelled ``-1`` (degree-0 nodes removed before clustering) belong to no
  sub-module, and the random lesions are drawn among the layer's *labelled* neurons only
  (a dead neuron cannot be in a true module, so it may not dilute a random one either).
* The task metric is accuracy for classification and mean squared error for regression.
  ``delta = metric(lesioned) - metric(intact)``. The *damage* of a lesion is the accuracy
  drop ``intact - lesioned`` for classification and the MSE rise ``lesioned - intact`` for
  regression, so larger damage is always worse.
* p-value (left-tailed: "is the true lesion worse than random ones?"), with the ``+1``
  convention of [spec §3][spec-3]: ``p = (#{random damage >= true damage} + 1) / (N + 1)``. Ties count
  against significance, so a lesion that changes nothing while random lesions change
  nothing either gets ``p = 1``. The floor is ``1 / (N + 1)``.
* ``z = (metric(true) - mean(metric(random))) / std(metric(random))`` with ``ddof = 0``;
  for accuracy a negative z means worse than random, for MSE a positive one. ``None``
  when the random lesions all score the same.
* Categories, with ``min_effect`` in metric units (default 0.01 = one accuracy point;
  for MSE tasks pass a threshold in MSE units):

  - ``important``: ``p < alpha`` and ``damage >= min_effect``;
  - ``sig-but-small``: ``p < alpha`` and ``damage < min_effect``;
  - ``prunable``: ``p == 1`` (every random lesion did at least as much damage) and
    ``damage < min_effect``;
  - ``not-significant``: everything else.

* Fisher's method combines the sub-modules' p-values (``scipy.stats.combine_pvalues``).
  The p-values share one network, so they are not independent: read ``fisher_p`` as a
  summary, not an exact test.
* Pair interaction: ``D_ij - (D_ii + D_jj)`` with ``D_ij`` the damage of the joint lesion
  of sub-modules i and j and ``D_ii`` the damage of the single lesion of i. Positive: the
  pair hurts more than the sum of its parts (they back each other up); negative: less
  (serial roles, e.g. the same pathway in two layers, or the metric saturating at chance).
  A pair's random counterpart is a random set of the same size in each of its layers (for
  two sub-modules of one layer: one random set of their combined size).
* Randomness: ``SeedSequence(seed)`` spawns one stream per sub-module and one per pair,
  so a sub-module's random lesions do not depend on which others are evaluated.

Every network runs one path: it is traced (`modscope.graphs.tracing`; a modscope MLP like any
module, its hidden layers its unit groups 1 .. L-1), a built-in `Task` becomes `modscope.data.Data`
at the entry, and the lesions are scored by [`UnitEvaluator`][modscope.lesions.evaluator.UnitEvaluator]:
the true lesion and its ``N`` random ones as copies of each batch in one forward, the intact part
before the first lesioned reader replayed, and that reader, where it is an ``nn.Linear`` (an MLP's
next layer), updated by a low-rank correction. ``method="loop"`` (one plain forward per lesion) is
the oracle the batched path is tested against. The model is never modified.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

import numpy as np
import torch
from scipy import stats
from torch import nn

from ..errors import ModscopeError
from ..graphs.network import Network
from ..runtime.cache import WorkCache
from ..runtime.hashing import fingerprint_arrays
from ..runtime.jsonable import decode_exact, encode_exact
from ..runtime.modules import device_errors, eval_mode, model_device, on_device
from ..runtime.options import settle
from ..stats import lesion_p_value
from .evaluator import Scores, Split, UnitEvaluator, _placed
from .functions import function_knockout
from .lesioner import Ablation, UnitLesioner, unit_means
from .results import Category, KnockoutResult, PairResult, SubmoduleResult
from .submodules import Submodule, group_labels, group_submodules

__all__ = ["KnockoutConfig", "categorize", "knockout"]


def _damage(metric: np.ndarray | float, intact: float, kind: str) -> np.ndarray:
    m = np.asarray(metric, dtype=np.float64)
    return m - intact if kind == "mse" else intact - m


def categorize(p_value: float, damage: float, alpha: float, min_effect: float) -> Category:
    """The taxonomy of the module docstring (``p == 1``: every random lesion tied or beat it)."""
    if p_value < alpha:
        return "important" if damage >= min_effect else "sig-but-small"
    if p_value >= 1.0 and damage < min_effect:
        return "prunable"
    return "not-significant"


def _by_layer(parts: Sequence[Submodule]) -> dict[int, np.ndarray]:
    """``{layer: the sorted units the parts silence there}``, by layer."""
    by_layer: dict[int, list[int]] = {}
    for s in parts:
        by_layer.setdefault(s.layer, []).extend(s.neurons)
    return {layer: np.unique(np.asarray(by_layer[layer], dtype=np.int64)) for layer in sorted(by_layer)}


def _whole_groups(parts: Sequence[Submodule], labelled: Mapping[int, np.ndarray]) -> bool:
    """Whether the lesion silences every labelled unit of each layer it touches: then each random
    lesion of its size is the same set, and "p = 1" would say nothing about the units."""
    return all(units.size == labelled[layer].size for layer, units in _by_layer(parts).items())


def _layer_lesions(rng: np.random.Generator, parts: Sequence[Submodule], run: _Run, n_random: int) -> dict:
    """Keep-masks ``{layer: (n_random + 1, width)}``: row 0 the true (joint) lesion, then N random.

    Sub-modules in the same layer are silenced together; their random counterpart is one
    random set of the combined size (disjoint random sets of the parts' sizes, pooled).
    """
    keep = {}
    for layer, true in _by_layer(parts).items():
        pool = run.labelled[layer]
        # n_random uniformly random subsets of the labelled units, of the true lesion's size: the same
        # distribution as "permute the layer's labels and take one cluster's units", vectorised: one
        # row of random keys per draw, argsorted
        rand = pool[np.argsort(rng.random((n_random, pool.size)), axis=1)[:, : true.size]]
        removed = np.concatenate([true[None], rand])  # (n, k) units to silence -> (n, width) keep-mask
        mask = np.ones((removed.shape[0], run.labels[layer].size), dtype=bool)  # the group's width
        mask[np.arange(removed.shape[0])[:, None], removed] = False
        keep[layer] = torch.from_numpy(mask)
    return keep


def _lesion_stats(scores: Scores, run: _Run, cfg: KnockoutConfig, size: int) -> dict[str, Any]:
    """Row 0 of ``scores`` is the true lesion, rows 1.. the random ones."""
    base, kind = float(run.intact.metric[0]), run.kind
    true_metric, rand_metric = float(scores.metric[0]), scores.metric[1:]
    damage = float(_damage(true_metric, base, kind))
    rand_damage = _damage(rand_metric, base, kind)
    # ties in float arithmetic: accuracies are exact ratios, MSEs need a little slack
    tol = 0.0 if kind == "ce" else 1e-9 * max(abs(base), float(np.max(np.abs(rand_metric))), 1e-12)
    p = lesion_p_value(damage, rand_damage, tol)
    mean, sd = float(np.mean(rand_metric)), float(np.std(rand_metric))
    z = (true_metric - mean) / sd if sd != 0.0 and np.isfinite(sd) else None  # None: all random ones alike
    return {
        "size": size, "accuracy": true_metric,
        "per_class": None if scores.per_class is None else scores.per_class[0],
        "per_function": {f: float(scores.per_function[0, i]) for i, f in enumerate(run.functions)},
        "delta": true_metric - base, "damage": damage, "p_value": p, "z": z,
        "category": categorize(p, damage, cfg.alpha, cfg.min_effect),
        "random_mean": mean, "random_std": sd,
        "random_metric": rand_metric.copy(),
    }


@dataclass(frozen=True)
class KnockoutConfig:
    """What a knockout run does ([spec §4][spec-4]), keyword-only.

    ``n_random``: random same-size lesions per true lesion (needs ``1 / (n_random + 1) <
    alpha``). ``pairs``: also every pair of sub-modules, jointly. ``seed``: the random lesions
    come from ``SeedSequence(seed)``, one child stream per sub-module and per pair, so results do
    not depend on evaluation order. ``alpha`` / ``min_effect``: the categories' significance level
    and smallest damage that counts (metric units). ``split``: the data lesions are scored on.
    ``device``: where the lesions run (``"cpu"``, ``"cuda"``, ``"cuda:1"``; ``None``: where the model
    is); the model is moved there for the run and back after it, the data follows batch by batch.
    It does not change a result beyond float rounding, so it is not part of the cache key.
    """

    n_random: int = 100
    pairs: bool = False
    seed: int = 0
    alpha: float = 0.05
    min_effect: float = 0.01
    split: Split = "test"
    device: Any = None

    def __post_init__(self) -> None:
        if int(self.n_random) != self.n_random or self.n_random < 1:
            raise ModscopeError(f"need at least one random lesion, got {self.n_random}")
        if not 0.0 < self.alpha <= 1.0:
            raise ModscopeError(f"alpha must be in (0, 1], got {self.alpha}")
        if 1.0 / (self.n_random + 1) >= self.alpha:
            raise ModscopeError(
                f"with {self.n_random} random lesions the smallest p-value is 1/{self.n_random + 1}, "
                f"not below alpha = {self.alpha}; use at least {math.floor(1 / self.alpha)} random lesions"
            )
        if self.split not in ("train", "test"):
            raise ModscopeError(f"split must be 'train' or 'test', got {self.split!r}")
        object.__setattr__(self, "n_random", int(self.n_random))
        if self.device is not None and not isinstance(self.device, str | torch.device):
            raise ModscopeError(f"device must be a name like 'cpu' or 'cuda:0', got {self.device!r}")


def knockout(
    model: nn.Module,
    task: Any,
    labels: Any,
    config: KnockoutConfig | None = None,
    *,
    masks: Mapping[str, Any] | None = None,
    method: Literal["batched", "loop"] = "batched",
    max_elements: int | None = None,
    progress: bool = False,
    cache: str | os.PathLike | None = None,
    example_input: Any = None,
    ablation: Ablation = "zero",
    output: int | Callable[[Any], Any] | None = None,
    batch_size: int = 256,
    precision: str = "fp32",
    **options: Any,
) -> KnockoutResult:
    """Lesion every (unit group, cluster) sub-module and compare with random same-size lesions.

    Any ``nn.Module`` (a modscope MLP too) is traced (`modscope.graphs.tracing`) on ``example_input``
    (default: the first example of the data), and every group of units that a layer writes and
    another reads (hidden neurons, conv channels, residual streams, attention value dimensions,
    recurrent hidden units) is lesioned per cluster where its units are read
    (`modscope.lesions.lesioner`): ``ablation="zero"`` or ``"mean"`` (each unit's mean over the data,
    as each reader sees it). ``labels``: one cluster label per node of the unit graph (the graph
    `modscope.score` clusters for the same module, e.g. its ``partition``; for an MLP with token
    embeddings the weight graph's inputs are accepted too), or one array per unit group (an MLP's
    hidden layers, as [`hidden_layer_labels()`][modscope.lesions.submodules.hidden_layer_labels] takes
    them). ``task``: a built-in `Task`, a `modscope.data.Data` or anything `modscope.data.load_data`
    reads, streamed in batches of ``batch_size``; ``output``: which head to score when the model
    returns several.

    ``config``: a `KnockoutConfig`, or its fields as keyword ``options``, not both. ``masks``:
    ``{function: mask}`` (see [`weight_masks()`][modscope.lesions.inplace.weight_masks]) to also run
    [`function_knockout()`][modscope.lesions.functions.function_knockout]. ``method="loop"`` uses the
    plain one-forward-per-lesion oracle; ``max_elements`` bounds the batched path's memory (input
    elements per forward; on a GPU its free memory decides too). Neither changes a result. The model
    is not changed. ``cache``: a folder where each finished sub-module and pair is kept, so an
    interrupted run recomputes only what is missing.

    At scale: the intact part of each batch's forward, up to the first module that reads a lesioned
    unit, runs once and is replayed for every lesion of that call (`modscope.lesions.prefix`; a note
    on stderr with ``progress`` where the model does not allow it), that module, where it is an
    ``nn.Linear``, is computed from the silenced units alone (`modscope.lesions.evaluator`), and a
    GPU takes as many lesions per forward as its memory holds. ``precision="bf16"`` or ``"fp16"``
    runs those forwards under autocast (opt-in, not the default: rounding can move a metric at a
    tie; it joins the cache key). Running out of device memory is one line saying what to lower.
    """
    if isinstance(model, Network):  # one network object: its module and what it was traced on
        example_input = model.example_input if example_input is None else example_input
        model = model.torch_module()
    cfg = settle(KnockoutConfig, config, options)
    if method not in ("batched", "loop"):
        raise ModscopeError(f"method must be 'batched' or 'loop', got {method!r}")
    from ..data.dataset import load_data

    # the one boundary: a built-in Task becomes Data here (its parameters kept for the cache key)
    data_key = [getattr(task, "params", None), cfg.split, ablation]
    data = load_data(task)
    traced = _read(model, data, cfg.split, example_input)
    with on_device(model, cfg.device), device_errors("batch_size (--batch-size) or max_elements"):
        run = _setup(
            model, data, labels, traced, ablation, output, batch_size,
            max_elements if method == "batched" else 1, precision, cfg.split, method == "batched",
        )
        store = None if cache is None else _store(cache, model, run, cfg, [data.name, *data_key], precision)
        singles, pairs = _lesion_all(run, cfg, store, progress)
        fn_result = (
            function_knockout(model, data, masks, split=cfg.split, batch_size=batch_size, output=output)
            if masks
            else None
        )
    return _result(run, cfg, singles, pairs, fn_result, data.metric_name, traced.graph)


def _result(run, cfg, singles, pairs, fn_result, metric: str, graph: Any) -> KnockoutResult:
    intact = run.intact
    return KnockoutResult(
        metric=metric, intact_accuracy=float(intact.metric[0]),
        intact_per_class=None if intact.per_class is None else intact.per_class[0],
        intact_per_function={f: float(intact.per_function[0, i]) for i, f in enumerate(run.functions)},
        submodules=singles, pairs=pairs,
        fisher_p=float(stats.combine_pvalues([s.p_value for s in singles], method="fisher").pvalue),
        n_random=cfg.n_random, seed=int(cfg.seed), alpha=float(cfg.alpha), min_effect=float(cfg.min_effect),
        functions=fn_result, group_names=list(graph.group_names),
        group_labels=[graph.group_label(g) for g in range(len(graph.sizes))],
    )


def _read(model: nn.Module, data: Any, split: str, example_input: Any) -> Any:
    """The traced network: modscope's MLP read from its layers (no ``torch.export``), any other
    module traced on ``example_input`` (default: the data's first example) where it is now, before
    any move (the trace depends on its structure only)."""
    from ..graphs.stacks import mlp_trace
    from ..graphs.tracing import trace_network

    traced = mlp_trace(model)
    if traced is not None:
        return traced
    if example_input is None:  # the data's first example as a batch of one, floats in the model's dtype
        _, x, _ = next(iter(data.split(split).batches(1)), (None, None, None))
        if x is None:
            raise ModscopeError(f"{data.name} has no {split} examples")
        example_input = x.to(_placed(model)[0]) if x.is_floating_point() else x
    if isinstance(example_input, torch.Tensor):  # to the one device the model is on (other inputs as given)
        example_input = example_input.to(model_device(model))
    return trace_network(model, example_input)


@dataclass
class _Run:
    """What one knockout run lesions and how it scores them."""

    evaluator: UnitEvaluator
    subs: list[Submodule]
    labels: list[np.ndarray]  # per unit group
    labelled: dict[int, np.ndarray]  # per lesioned group: its labelled units
    kind: str
    functions: list[str]
    intact: Scores


def _setup(
    model, data, labels, traced, ablation, output, batch_size, max_elements, precision, split, low_rank
) -> _Run:
    """The evaluator and sub-modules of a traced network (see `knockout`)."""
    graph = traced.graph
    read = np.zeros(graph.n_nodes, dtype=bool)
    for site in traced.sites:
        read[site.nodes[site.nodes >= 0]] = True
    written = {d for _, d in graph.links}
    offsets = graph.offsets
    # the network's inputs and outputs are not lesioned
    lesioned = [g for g in range(len(graph.sizes)) if g in written and read[offsets[g]:offsets[g + 1]].any()]
    # how the input's reader sees it: a weight graph of the same network may count inputs that way
    seen = [s.nodes.size for s in traced.sites if s.nodes.size and (s.nodes >= 0).all() and
            (s.nodes < graph.sizes[0]).all()]
    input_width = seen[0] if seen and 0 not in written else None
    per_group = group_labels(labels, graph.sizes, lesioned, input_width)
    subs = group_submodules(per_group, lesioned)
    if not subs:
        raise ModscopeError("no sub-modules: every unit that could be lesioned is unlabelled (-1)")
    means = None
    if ablation == "mean":
        examples, dtype = data.split(split), _placed(model)[0]
        batches = (x.to(dtype) if x.is_floating_point() else x for _, x, _ in examples.batches(batch_size))
        with eval_mode(model, no_grad=True):
            means = unit_means(model, traced, batches, model_device(model))
    evaluator = UnitEvaluator(
        model, traced, data, split=split, functions=list(data.functions.values()),
        lesioner=UnitLesioner(model, traced, ablation, means),
        batch_size=batch_size, max_elements=None if max_elements is None else max(1, max_elements) * 4,
        output=output, precision=precision, low_rank=low_rank,
    )
    return _Run(
        evaluator, subs, per_group, {g: np.flatnonzero(per_group[g] >= 0) for g in lesioned},
        "mse" if data.kind == "regression" else "ce", [f.name for f in evaluator.functions],
        evaluator.intact(),
    )


def _store(
    cache: Any, model: nn.Module, run: _Run, cfg: KnockoutConfig, data_key: list, precision: str
) -> WorkCache:
    """The cache of one run's finished lesions, keyed by everything that decides them."""
    return WorkCache(cache, {"unit": "knockout_lesion", "weights": fingerprint_arrays(
        [t.detach().cpu().numpy() for t in model.state_dict().values()]),
        "task": data_key, "labels": [h.tolist() for h in run.labels],
        "n_random": cfg.n_random, "seed": int(cfg.seed), "alpha": cfg.alpha, "min_effect": cfg.min_effect,
        **({} if precision == "fp32" else {"precision": precision})})


def _lesion_all(
    run: _Run, cfg: KnockoutConfig, store: WorkCache | None, progress: bool
) -> tuple[list[SubmoduleResult], list[PairResult] | None]:
    """Every sub-module (and with ``cfg.pairs`` every pair) against its random lesions."""
    subs = run.subs
    pair_list = list(combinations(range(len(subs)), 2)) if cfg.pairs else []
    single_ss, pair_ss = np.random.SeedSequence(cfg.seed).spawn(2)
    single_seeds, pair_seeds = single_ss.spawn(len(subs)), pair_ss.spawn(len(pair_list))
    from tqdm.auto import tqdm

    def unit(idx: int, lesioned: list, ss) -> dict[str, Any]:
        """Stats of one true lesion against its random ones, from the cache when there."""
        found = store.get(idx) if store is not None else None
        if found is not None:
            st = decode_exact(found)
        else:
            keep = _layer_lesions(np.random.default_rng(ss), lesioned, run, cfg.n_random)
            st = _lesion_stats(run.evaluator.evaluate(keep), run, cfg, sum(x.size for x in lesioned))
        if _whole_groups(lesioned, run.labelled):  # also a cache of an earlier version: said the same way
            st["category"] = "whole-group"
        if found is None and store is not None:
            store.put(idx, encode_exact(st))
        return st

    with tqdm(total=len(subs) + len(pair_list), desc="knockout", disable=not progress,
              file=sys.stderr, leave=False) as bar:
        singles: list[SubmoduleResult] = []
        for idx, (s, ss) in enumerate(zip(subs, single_seeds, strict=True)):
            singles.append(SubmoduleResult(**unit(idx, [s], ss), layer=s.layer, cluster=s.cluster))
            bar.update()
        pairs: list[PairResult] | None = [] if cfg.pairs else None
        for idx, ((i, j), ss) in enumerate(zip(pair_list, pair_seeds, strict=True), start=len(subs)):
            a, b = subs[i], subs[j]
            st = unit(idx, [a, b], ss)
            pairs.append(PairResult(**st, layer_a=a.layer, cluster_a=a.cluster, layer_b=b.layer,
                                    cluster_b=b.cluster,
                                    interaction=st["damage"] - (singles[i].damage + singles[j].damage)))
            bar.update()
    note = getattr(run.evaluator, "note", None)
    if progress and note:  # slower, not wrong: said once
        print(f"knockout: {note}", file=sys.stderr)
    return singles, pairs
