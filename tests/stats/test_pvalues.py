"""One p-value convention everywhere (spec §3): a null draw at least as extreme as the observation
counts against it, ``p = (#{at least as extreme} + 1) / (N + 1)``.

Every path that reports a p-value is tested with an all-equal null and with a partially tied null:
`stats.p_value` itself, the scoring engine (n-cut: lower is extreme; Newman Q: higher is), activation
graphs, the cluster/mask alignment and knockouts.
"""

import numpy as np
import pytest
import torch

from modscope import KnockoutConfig, WeightGraph, alignment, knockout, score
from modscope.data.functions import Function
from modscope.graphs.activations import activation_graph
from modscope.lesions.knockout import categorize
from modscope.stats import compare_to_null, lesion_p_value, p_value
from modscope.tasks.base import Task
from modscope.training.models import MLP
from tests.conftest import random_mlp


class SameGraphNull:
    """A null whose every sample is the scored graph itself: every null value ties."""

    name = "same"

    def check(self, graph):
        pass

    def params(self):
        return {}

    def sample(self, graph, seed):
        return graph.with_weights(graph.weights)


def two_blocks() -> WeightGraph:
    """Two disconnected blocks: every sensible 2-way partition has n-cut exactly 0."""
    rng = np.random.default_rng(0)
    w1 = np.zeros((6, 8))
    w1[:3, :4], w1[3:, 4:] = rng.uniform(0.5, 1.5, (3, 4)), rng.uniform(0.5, 1.5, (3, 4))
    w2 = np.zeros((4, 6))
    w2[:2, :3], w2[2:, 3:] = rng.uniform(0.5, 1.5, (2, 3)), rng.uniform(0.5, 1.5, (2, 3))
    return WeightGraph.from_weights([w1, w2])


# -- the function itself ----------------------------------------------------------------------
@pytest.mark.parametrize("larger", [True, False])
def test_all_equal_null_gives_p_one(larger):
    assert p_value(2.0, [2.0] * 9, larger_is_extreme=larger) == 1.0


def test_partial_ties_count_against_the_observation():
    samples = [1.0, 2.0, 2.0, 2.0, 3.0, 4.0]
    # lower is extreme: 1 below and 3 tied -> (4 + 1) / 7
    assert p_value(2.0, samples, larger_is_extreme=False) == pytest.approx(5 / 7)
    # higher is extreme: 2 above and 3 tied -> (5 + 1) / 7
    assert p_value(2.0, samples, larger_is_extreme=True) == pytest.approx(6 / 7)
    # strictly beyond every sample: the floor
    assert p_value(0.5, samples, larger_is_extreme=False) == pytest.approx(1 / 7)
    assert p_value(5.0, samples, larger_is_extreme=True) == pytest.approx(1 / 7)


def test_tolerance_widens_ties_only():
    assert p_value(1.0, [1.0 + 1e-12, 0.5], larger_is_extreme=True, tol=1e-9) == pytest.approx(2 / 3)
    assert p_value(1.0, [1.0 + 1e-12, 0.5], larger_is_extreme=True) == pytest.approx(2 / 3)
    assert p_value(1.0, [1.0 - 1e-12, 0.5], larger_is_extreme=True) == pytest.approx(1 / 3)
    assert p_value(1.0, [1.0 - 1e-12, 0.5], larger_is_extreme=True, tol=1e-9) == pytest.approx(2 / 3)


@pytest.mark.parametrize("higher", [False, True])
def test_compare_to_null_ties(higher):
    tied = compare_to_null(3.0, [3.0] * 4, higher_is_modular=higher)
    assert tied.p_value == 1.0 and tied.z == 0.0
    partial = compare_to_null(3.0, [3.0, 3.0, 1.0, 5.0], higher_is_modular=higher)
    assert partial.p_value == pytest.approx(4 / 5)  # 2 ties + 1 beyond


# -- the engine: n-cut, Newman Q, activation graphs ------------------------------------------------
def test_ncut_all_tied_null_is_not_significant():
    # layer_nonzero keeps the two blocks apart: every shuffle has n-cut 0, like the network
    r = score(two_blocks(), n_clusters=2, null="layer_nonzero", n_shuffles=6, seed=0)
    assert r.value == 0.0 and np.all(r.null.samples == 0.0)
    assert r.null.p_value == 1.0 and r.null.z == 0.0


def test_ncut_partially_tied_null():
    g = two_blocks()
    tied = score(g, n_clusters=2, null=SameGraphNull(), n_shuffles=5, seed=0)
    assert np.all(tied.null.samples == tied.value) and tied.null.p_value == 1.0
    # four disjoint edges: about half of their shuffles fall apart too (n-cut 0, ties), the rest
    # join some edges (n-cut > 0)
    r = score(WeightGraph.from_weights([np.diag([1.0, 1.2, 1.5, 2.0])]), n_clusters=2, n_shuffles=40, seed=0)
    assert r.value == 0.0
    ties = int(np.count_nonzero(r.null.samples == 0.0))
    assert 5 < ties < 35
    assert r.null.p_value == pytest.approx((ties + 1) / 41)


@pytest.mark.igraph  # Newman's Q by Leiden
def test_modularity_ties_count_against_it():
    r = score(two_blocks(), measure="modularity", null=SameGraphNull(), n_shuffles=4, seed=0)
    assert np.all(r.null.samples == r.value) and r.null.p_value == 1.0


def test_activation_graph_ties():
    g = torch.Generator().manual_seed(0)
    ag = activation_graph(random_mlp([4, 8, 8, 2], seed=1), torch.randn(120, 4, generator=g))
    r = score(ag, n_clusters=2, null=SameGraphNull(), n_shuffles=4, seed=0)
    assert np.all(r.null.samples == r.value) and r.null.p_value == 1.0


# -- alignment --------------------------------------------------------------------------------------
def test_alignment_all_tied_null():
    # one function keeps every weight: each neuron's dominant function is the same, so the AMI
    # of any labelling, true or permuted, is the same value
    masks = {"f": [torch.ones(6, 4, dtype=torch.bool), torch.ones(3, 6, dtype=torch.bool)],
             "g": [torch.zeros(6, 4, dtype=torch.bool), torch.zeros(3, 6, dtype=torch.bool)]}
    labels = np.array([0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 1, 0])
    a = alignment(labels, masks, functions=["f", "g"], n_null=50, seed=0)
    assert a.p_value == 1.0


# -- knockouts --------------------------------------------------------------------------------------
def test_lesion_p_value_ties():
    assert lesion_p_value(0.2, np.full(19, 0.2)) == 1.0
    assert lesion_p_value(0.2, [0.2, 0.2, 0.1, 0.3, 0.0]) == pytest.approx(4 / 6)
    assert lesion_p_value(0.2, [0.1, 0.0]) == pytest.approx(1 / 3)


def test_knockout_where_every_lesion_does_nothing_is_prunable_not_significant():
    # hidden units that feed nothing: true and random lesions all leave the metric unchanged
    net = MLP((4, 6, 2))
    with torch.no_grad():
        net.layers[1].weight.zero_()
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(64, 1, dtype=torch.long)
    task = Task("t", x, y, x, y, "ce", 4, 2, (2,), functions={"all": Function("all")})
    res = knockout(net, task, [np.array([0, 0, 0, 1, 1, 1])], KnockoutConfig(n_random=20))
    for s in res.submodules:
        assert s.damage == 0.0 and s.p_value == 1.0
        assert s.category == categorize(1.0, 0.0, 0.05, 0.01) == "prunable"
