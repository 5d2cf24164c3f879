"""Shared fixtures: planted-module networks and random MLPs, all seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn


def planted_weights(widths, n_modules, rng, inside=1.0, leak=0.02, sparsity=0.0):
    """Weights whose neurons split into ``n_modules`` blocks per layer, strong within a block.

    Returns (weights out x in, labels per graph node of the planted module).
    """
    labels = [np.arange(w) * n_modules // w for w in widths]
    weights = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        same = labels[1 + len(weights)][:, None] == labels[len(weights)][None, :]
        w = np.where(same, inside, leak) * rng.uniform(0.5, 1.5, (b, a)) * rng.choice([-1, 1], (b, a))
        if sparsity:
            w[rng.random((b, a)) < sparsity] = 0.0
        weights.append(w)
    return weights, np.concatenate(labels)


# issue 2: `score --json` writes exactly these keys
SCORE_JSON_KEYS = {
    "clustering",
    "reading",
    "ncut",
    "labels",
    "n_clusters",
    "layer_widths",
    "n_nodes",
    "n_edges",
    "shuffle",
    "seed",
    "version",
}


def shuffle_ncuts(graph, n, method="layer", clusterer=None, seed=0, jobs=1, cache=None):
    """n-cuts of ``n`` weight shuffles through the engine's `null_values` (``jobs``: a count or an
    executor)."""
    from modscope.nulls import WeightShuffleNull
    from modscope.runtime.executors import LocalExecutor
    from modscope.scoring.engine import null_values
    from modscope.scoring.measures import NcutMeasure

    executor = jobs if hasattr(jobs, "map") else LocalExecutor(jobs)
    return null_values(graph, WeightShuffleNull(method), NcutMeasure(clusterer), n, seed=seed,
                       executor=executor, cache=cache)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_mlp(widths, seed=0) -> nn.Sequential:
    """A Glorot-initialised ReLU MLP built without touching torch's global RNG."""
    g = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        lin = nn.Linear(a, b)
        nn.init.xavier_uniform_(lin.weight, generator=g)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.ReLU()]
    return nn.Sequential(*layers[:-1])
