"""From files to results: the runs behind the ``knockout``, ``masks`` and ``score --graph
activations`` commands on a modscope checkpoint (load the network and its task, then call the
analysis). The checkpoint file is only read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..clustering.spectral import cluster
from ..errors import ModscopeError
from ..graphs.activations import ActivationGraph, activation_graph
from ..graphs.network import network
from ..lesions.knockout import knockout
from ..lesions.results import KnockoutResult
from ..masks.fit import train_masks
from ..masks.result import MaskResult, load_masks
from ..runtime.cache import WorkCache
from ..runtime.hashing import fingerprint_arrays
from ..tasks import class_functions
from ..training.checkpoint import load_checkpoint, task_for_checkpoint

__all__ = ["checkpoint_activation_graph", "knockout_checkpoint", "masks_checkpoint"]


def checkpoint_activation_graph(
    path: str | os.PathLike,
    task: str | None = None,
    data: str | None = None,
    split: str = "test",
    max_examples: int | None = None,
) -> ActivationGraph:
    """The correlation graph of a modscope checkpoint on its task's ``split`` examples
    (``task``, default the one it was trained on; ``data`` for file-backed tasks)."""
    if split not in ("train", "test"):
        raise ModscopeError(f"split must be 'train' or 'test', got {split!r}")
    ckpt = load_checkpoint(path)
    the_task = task_for_checkpoint(ckpt, task, data)
    return activation_graph(
        ckpt.model(), the_task.x_test if split == "test" else the_task.x_train, max_examples
    )


def knockout_checkpoint(
    path: str,
    *,
    task: str | None = None,
    data: str | None = None,
    n_clusters: int = 12,
    masks: str | None = None,
    **kwargs: Any,
) -> KnockoutResult:
    """Load a modscope checkpoint, cluster its weight graph, and run
    [`knockout()`][modscope.lesions.knockout.knockout].

    The checkpoint is read once (`modscope.network`: inputs and outputs in task order), its graph
    clustered with [`modscope.cluster()`][modscope.clustering.spectral.cluster] (``n_clusters``, the same
    ``seed`` as the lesions). ``masks``: a file from ``modscope masks --save`` for lesions by function.
    ``kwargs`` go to [`knockout()`][modscope.lesions.knockout.knockout]. The file is only read.
    """
    ckpt = load_checkpoint(path)
    net = network(ckpt)  # read once: its graph, and its module built from it
    the_task = task_for_checkpoint(ckpt, task, data)
    seed = int(kwargs.get("seed", 0))
    partition = cluster(net, n_clusters, seed=seed)
    # per layer: the weight graph lists an embedding's inputs per token, the traced graph per dimension
    per_layer = np.split(np.asarray(partition.labels), net.graph.offsets[1:-1])
    result = knockout(net, the_task, per_layer, masks=None if masks is None else load_masks(masks), **kwargs)
    result.clustering = {"n_clusters": int(n_clusters), "seed": seed, **partition.clustering}
    result.labels = np.asarray(partition.labels)
    # a layer graph's groups are its numbered layers ([spec §1]): the output names none, as in 0.3.0
    result.group_names = result.group_labels = None
    return result


def masks_checkpoint(
    path: str | os.PathLike,
    *,
    task: str | None = None,
    data: str | None = None,
    functions: Sequence[str] | None = None,
    classes: bool = False,
    cache: str | os.PathLike | None = None,
    **kwargs: Any,
) -> MaskResult:
    """Load a modscope checkpoint and run [`train_masks()`][modscope.masks.fit.train_masks] on its task (or
    ``task``).

    ``functions``: names of the task's functions (default all); ``classes``: one ``not-<c>``
    mask per class instead, with the per-class accuracy drop. ``kwargs`` go to
    [`train_masks()`][modscope.masks.fit.train_masks]. The file is only read. ``cache``: a folder where the
    finished run (all its masks, trained together as one unit) is kept, keyed by the weights, the task and
    every setting; a rerun with the same inputs reads it instead of training again.
    """
    if classes and functions:
        raise ModscopeError("give either functions or classes, not both")
    ckpt = load_checkpoint(path)
    the_task = task_for_checkpoint(ckpt, task, data)
    fns = class_functions(the_task) if classes else functions
    store = None
    if cache is not None:
        # how the run is spread over the machine does not change its result
        settings = {k: v for k, v in kwargs.items() if k not in ("progress", "device", "threads")}
        weights = fingerprint_arrays([t.numpy() for t in ckpt.state_dict.values()])
        key = {"unit": "masks", "weights": weights, "task": [the_task.name, the_task.params],
               "functions": functions, "classes": classes, "settings": settings}
        store = WorkCache(cache, key)
        found = store.get_payload("result")
        if found is not None:
            return MaskResult.from_payload(found)
    result = train_masks(ckpt.model(), the_task, fns, class_removal=classes, **kwargs)
    if store is not None:
        store.put_payload("result", result.to_payload())
    return result
