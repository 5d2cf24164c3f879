"""The degree-preserving null `layer_degree` (curveball rewiring of each weight matrix)."""

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from modscope import score
from modscope.clustering.spectral import SpectralClusterer
from modscope.graphs.weight_graph import WeightGraph
from modscope.nulls import SHUFFLE_METHODS, LayerDegreeShuffle, get_shuffle
from tests.conftest import shuffle_ncuts


@st.composite
def sparse_matrices(draw):
    """Random sparse matrices, 1xN and Nx1 included, some rows / columns forced empty or full."""
    m, n = draw(st.integers(1, 14)), draw(st.integers(1, 14))
    seed = draw(st.integers(0, 2**32 - 1))
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 0.5, 0.9, 1.0]))
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (m, n)) * (rng.random((m, n)) < density)
    w[rng.random(m) < 0.15] = 0.0  # empty rows
    w[:, rng.random(n) < 0.15] = 0.0  # empty columns
    full = rng.random(m) < 0.15
    w[full] = rng.normal(0, 1, (int(full.sum()), n))  # full rows
    return w


def row_value_multisets(w):
    return [sorted(row[row != 0].tolist()) for row in w]


@settings(max_examples=150, deadline=None)
@given(w=sparse_matrices(), seed=st.integers(0, 2**32 - 1))
def test_keeps_degrees_and_row_values(w, seed):
    out = get_shuffle("layer_degree").shuffle(w, np.random.default_rng(seed))
    assert out.shape == w.shape and out.dtype == w.dtype
    np.testing.assert_array_equal(np.count_nonzero(out, axis=1), np.count_nonzero(w, axis=1))
    np.testing.assert_array_equal(np.count_nonzero(out, axis=0), np.count_nonzero(w, axis=0))
    assert row_value_multisets(out) == row_value_multisets(w)


def test_dense_matrix_permutes_within_rows():
    w = np.random.default_rng(0).normal(size=(7, 5))
    out = get_shuffle("layer_degree").shuffle(w, np.random.default_rng(1))
    assert np.count_nonzero(out) == w.size
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(w, axis=1))
    assert not np.array_equal(out, w)


def test_zero_rounds_keeps_pattern():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(30, 40)) * (rng.random((30, 40)) < 0.2)
    out = LayerDegreeShuffle(rounds=0).shuffle(w, np.random.default_rng(1))
    np.testing.assert_array_equal(out != 0, w != 0)
    # the default chain does move the pattern
    moved = get_shuffle("layer_degree").shuffle(w, np.random.default_rng(1))
    assert not np.array_equal(moved != 0, w != 0)


def test_seeded():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(20, 30)) * (rng.random((20, 30)) < 0.2)
    s = get_shuffle("layer_degree")
    a = s.shuffle(w, np.random.default_rng(5))
    np.testing.assert_array_equal(a, s.shuffle(w, np.random.default_rng(5)))
    assert not np.array_equal(a, s.shuffle(w, np.random.default_rng(6)))


@pytest.mark.slow  # thousands of rewirings for a chi-square test
def test_uniform_over_patterns_with_the_margins():
    """A 3x3 pattern with margins (2, 1, 1) / (2, 1, 1): every such pattern equally often."""
    p0 = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    patterns = [
        p for bits in itertools.product([0, 1], repeat=9)
        if ((p := np.array(bits).reshape(3, 3)).sum(1) == (2, 1, 1)).all() and (p.sum(0) == (2, 1, 1)).all()
    ]
    assert len(patterns) == 5
    s, rng, n = LayerDegreeShuffle(), np.random.default_rng(0), 2000
    counts = Counter((s.shuffle(p0, rng) != 0).astype(int).tobytes() for _ in range(n))
    assert set(counts) == {p.astype(int).tobytes() for p in patterns}
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3


def block_pattern(m, n, k, density, rng):
    same = (np.arange(m)[:, None] * k // m) == (np.arange(n)[None, :] * k // n)
    return (rng.random((m, n)) < density) & same, ~same


@pytest.mark.parametrize("shape", [(40, 60), (120, 12)])
def test_mixes_a_block_diagonal_pattern(shape):
    """After the default chain, edge overlap with P and the fraction of edges crossing the
    planted blocks match a 20x longer chain (and the crossing fraction its k-1/k)."""
    p, cross = block_pattern(*shape, 2, 0.3, np.random.default_rng(0))
    w = p.astype(float)
    assert not (p & cross).any()

    def stats_of(rounds, seeds):
        outs = [LayerDegreeShuffle(rounds).shuffle(w, np.random.default_rng(s)) != 0 for s in seeds]
        return (np.mean([(o & p).sum() / p.sum() for o in outs]),
                np.mean([(o & cross).sum() / p.sum() for o in outs]))

    overlap, crossing = stats_of(20, range(40))
    long_overlap, long_crossing = stats_of(400, range(100, 110))
    assert crossing == pytest.approx(long_crossing, abs=0.04)
    assert crossing == pytest.approx(0.5, abs=0.05)
    assert overlap == pytest.approx(long_overlap, abs=0.04)
    # one round is not enough: the test can tell a chain that has not mixed
    assert stats_of(1, range(40))[1] < long_crossing - 0.1


def test_identical_for_any_jobs():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=s) * (rng.random(s) < 0.3) for s in [(20, 30), (20, 20), (8, 20)]]
    g = WeightGraph.from_weights(ws)
    clusterer = SpectralClusterer(3)
    one = shuffle_ncuts(g, 6, "layer_degree", clusterer, seed=5, jobs=1)
    two = shuffle_ncuts(g, 6, "layer_degree", clusterer, seed=5, jobs=2)
    np.testing.assert_array_equal(one, two)
    assert "layer_degree" in SHUFFLE_METHODS


def planted_sparse_modules(widths, active, density, rng, bridge=0.01):
    """Like a BIMT net: the first ``active[l]`` neurons of each layer form two modules (block-
    diagonal, sparse), every other neuron is dead; one weak edge bridges the modules."""
    ws = []
    for l, (a, b) in enumerate(itertools.pairwise(widths)):
        ma = np.where(np.arange(a) < active[l], np.arange(a) * 2 // active[l], -1)
        mb = np.where(np.arange(b) < active[l + 1], np.arange(b) * 2 // active[l + 1], -2)
        keep = (mb[:, None] == ma[None, :]) & (rng.random((b, a)) < density)
        ws.append(rng.uniform(0.5, 1.5, (b, a)) * rng.choice([-1, 1], (b, a)) * keep)
    ws[1][0, active[1] - 1] = bridge
    return ws


def test_sparse_modules_stand_out_only_against_the_degree_null():
    ws = planted_sparse_modules([8, 30, 30, 4], [8, 12, 12, 4], 0.6, np.random.default_rng(0))
    g = WeightGraph.from_weights(ws)
    assert g.n_edges / sum(w.size for w in ws) < 0.1  # > 90 % zeros
    deg = score(g, n_clusters=2, n_shuffles=20, null="layer_degree")
    assert deg.ncut < 1e-3
    assert deg.null.z < -8
    assert deg.null.p_value == pytest.approx(1 / 21)
    assert deg.null.samples.min() > 0.2  # the rewired nets stay connected
    assert not any("fell apart" in w for w in deg.warnings)
    # `layer` scatters the few weights: many shuffled nets fall apart (n-cut 0), z is meaningless
    lay = score(g, n_clusters=2, n_shuffles=20, null="layer")
    assert np.count_nonzero(lay.null.samples <= 1e-12) >= 4
    assert lay.warnings and "fell apart" in lay.warnings[0]
    assert lay.null.z > -3
