import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modscope.clustering.spectral import SpectralClusterer
from modscope.errors import ModscopeError
from modscope.graphs.weight_graph import WeightGraph
from modscope.nulls import SHUFFLE_METHODS, get_shuffle, shuffle_graph
from tests.conftest import planted_weights, shuffle_ncuts


def sparse_matrix(seed, shape=(12, 9), density=0.4):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.3, shape) * (rng.random(shape) < density)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_layer_permutes_all_entries(seed):
    w = sparse_matrix(seed)
    out = get_shuffle("layer").shuffle(w, np.random.default_rng(seed))
    assert out.shape == w.shape
    np.testing.assert_array_equal(np.sort(out.ravel()), np.sort(w.ravel()))  # same multiset


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_layer_nonzero_keeps_pattern_and_values(seed):
    w = sparse_matrix(seed)
    out = get_shuffle("layer_nonzero").shuffle(w, np.random.default_rng(seed))
    np.testing.assert_array_equal(out != 0, w != 0)
    np.testing.assert_array_equal(np.sort(out[out != 0]), np.sort(w[w != 0]))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_nonzero_distribution_keeps_pattern_and_draws_near_values(seed):
    w = sparse_matrix(seed)
    out = get_shuffle("layer_nonzero_distribution").shuffle(w, np.random.default_rng(seed))
    np.testing.assert_array_equal(out != 0, w != 0)
    # every draw is a data point plus N(0, 0.01^2) noise: within 6 bandwidths of some value
    vals = w[w != 0]
    if vals.size:
        gap = np.abs(out[out != 0][:, None] - vals[None, :]).min(axis=1)
        assert gap.max() < 0.06


def test_all_distribution_scatters_pattern_keeps_count():
    w = sparse_matrix(0, (40, 30))
    rng = np.random.default_rng(0)
    out = get_shuffle("layer_all_distribution").shuffle(w, rng)
    assert np.count_nonzero(out) == np.count_nonzero(w)
    assert not np.array_equal(out != 0, w != 0)


def _kde_noise_check(shuffler) -> None:
    """A layer of weights on two atoms (+-0.5): each redraw is an atom plus N(0, 0.01^2) noise
    (spec §3's bandwidth), so the distance to the nearest atom has std 0.01 and mean 0."""
    rng = np.random.default_rng(3)
    w = rng.choice([-0.5, 0.5], size=(200, 200))
    out = shuffler.shuffle(w, np.random.default_rng(4))
    noise = out - np.where(out > 0, 0.5, -0.5)
    assert abs(noise.mean()) < 2e-4
    assert noise.std() == pytest.approx(0.01, rel=0.03)
    assert np.mean(out > 0) == pytest.approx(0.5, abs=0.01)  # atoms drawn in proportion


def test_kde_bandwidth_is_the_specs():
    _kde_noise_check(get_shuffle("layer_nonzero_distribution"))
    _kde_noise_check(get_shuffle("layer_all_distribution"))


@pytest.mark.parametrize("bandwidth", [0.0, 0.03, 0.05])
def test_kde_check_catches_a_wrong_bandwidth(bandwidth):
    from modscope.nulls.shuffles import LayerNonzeroDistribution

    with pytest.raises(AssertionError):
        _kde_noise_check(LayerNonzeroDistribution(bandwidth))


def test_kde_redraw_matches_distribution_moments():
    rng = np.random.default_rng(0)
    w = rng.normal(0.0, 0.5, (200, 200))
    out = get_shuffle("layer_nonzero_distribution").shuffle(w, np.random.default_rng(1))
    assert out.mean() == pytest.approx(w.mean(), abs=0.01)
    # KDE variance = data variance + bandwidth^2
    assert out.var() == pytest.approx(w.var() + 0.01**2, rel=0.02)


def test_unknown_method():
    with pytest.raises(ModscopeError, match="unknown shuffle method"):
        get_shuffle("columns")
    assert set(SHUFFLE_METHODS) == {
        "layer",
        "layer_nonzero",
        "layer_nonzero_distribution",
        "layer_degree",
        "layer_all_distribution",
    }


def test_shuffle_graph_is_seeded():
    ws, _ = planted_weights([10, 8, 6], 2, np.random.default_rng(0))
    g = WeightGraph.from_weights(ws)
    a = shuffle_graph(g, "layer", np.random.SeedSequence(3))
    b = shuffle_graph(g, "layer", np.random.SeedSequence(3))
    c = shuffle_graph(g, "layer", np.random.SeedSequence(4))
    assert all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.weights, c.weights, strict=True))


def test_shuffles_destroy_planted_modularity():
    ws, _ = planted_weights([40, 30, 30, 10], 3, np.random.default_rng(0))
    g = WeightGraph.from_weights(ws)
    clusterer = SpectralClusterer(3)
    trained = clusterer.partition(g, 0).ncut
    null = shuffle_ncuts(g, 5, "layer", clusterer, seed=0)
    assert trained < null.min()


def test_identical_for_any_jobs_and_prefix_stable():
    ws, _ = planted_weights([30, 20, 20, 8], 2, np.random.default_rng(0), leak=0.4, sparsity=0.3)
    g = WeightGraph.from_weights(ws)
    clusterer = SpectralClusterer(3)
    for method in SHUFFLE_METHODS:
        one = shuffle_ncuts(g, 6, method, clusterer, seed=5, jobs=1)
        two = shuffle_ncuts(g, 6, method, clusterer, seed=5, jobs=2)
        np.testing.assert_array_equal(one, two)  # bit-identical
    # shuffle i does not depend on how many shuffles were asked for
    first3 = shuffle_ncuts(g, 3, "layer", clusterer, seed=5)
    np.testing.assert_array_equal(first3, shuffle_ncuts(g, 6, "layer", clusterer, seed=5)[:3])


@pytest.mark.parametrize("n", [0, -1])
def test_bad_shuffle_counts(n):
    g = WeightGraph.from_weights([np.ones((3, 4)), np.ones((2, 3))])
    with pytest.raises(ModscopeError):
        shuffle_ncuts(g, n)
