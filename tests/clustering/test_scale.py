"""Large-graph path: Lanczos on the weight-matrix operator, components, memory checks."""

import networkx as nx
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from modscope.clustering import embedding as spectral
from modscope.clustering import memory
from modscope.clustering.embedding import components, spectral_embedding
from modscope.clustering.memory import check_memory, memory_estimate
from modscope.clustering.spectral import SpectralClusterer
from modscope.errors import ModscopeError
from modscope.graphs.weight_graph import WeightGraph
from tests.conftest import planted_weights


def _planted(widths=(40, 30, 30, 20), modules=3, seed=0, **kw):
    ws, planted = planted_weights(list(widths), modules, np.random.default_rng(seed), **kw)
    return WeightGraph.from_weights(ws), planted


def test_iterative_equals_gram_path():
    g, _ = _planted(leak=0.3)
    fast, ev_fast, nodes = spectral_embedding(g, 5, "iterative", seed=0)
    gram, ev_gram, nodes2 = spectral_embedding(g, 5, "bipartite", seed=0)
    np.testing.assert_array_equal(nodes, nodes2)
    np.testing.assert_allclose(ev_fast, ev_gram, atol=1e-10)
    np.testing.assert_allclose(fast, gram, atol=1e-8)  # signs fixed the same way
    a = SpectralClusterer(5, eigen_solver="iterative").partition(g, 3)
    b = SpectralClusterer(5, eigen_solver="bipartite").partition(g, 3)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.ncut == pytest.approx(b.ncut, rel=1e-12)


def test_auto_switches_to_iterative_above_the_threshold(monkeypatch):
    g, planted = _planted((60, 48, 48, 24), 4, seed=3)
    small = SpectralClusterer(4).partition(g, 0)
    monkeypatch.setattr(spectral, "ITERATIVE_SIDE", 10)
    called = []
    real = spectral._operator_singular
    monkeypatch.setattr(spectral, "_operator_singular", lambda *a: called.append(1) or real(*a))
    large = SpectralClusterer(4).partition(g, 0)
    assert called
    assert adjusted_rand_score(planted, large.labels) >= 0.95
    assert large.ncut == pytest.approx(small.ncut, rel=1e-10)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_disconnected_components_repeated_singular_values(k):
    # three planted modules with no edges between them: eigenvalue 0 three times
    g, planted = _planted((30, 24, 24, 18), 3, seed=1, leak=0.0)
    n, comp = components(g)
    assert n == 3
    assert adjusted_rand_score(planted, comp) == 1.0
    it, ev_it, _ = spectral_embedding(g, k, "iterative", seed=0)
    dn, ev_dn, _ = spectral_embedding(g, k, "dense", seed=0)
    np.testing.assert_allclose(ev_it, ev_dn, atol=1e-10)
    assert np.sum(np.abs(ev_it) < 1e-12) == min(k, 3)
    if k == 3:  # exactly the null space: the same span (any basis of it is right)
        q, _ = np.linalg.qr(dn)
        np.testing.assert_allclose(q @ (q.T @ it), it, atol=1e-8)
    a = SpectralClusterer(k, eigen_solver="iterative").partition(g, 0)
    b = SpectralClusterer(k, eigen_solver="dense").partition(g, 0)
    assert a.ncut == pytest.approx(b.ncut, abs=1e-9)
    if k == 3:
        assert a.ncut == pytest.approx(0.0, abs=1e-12)


def test_iterative_with_isolated_nodes_on_both_sides():
    rng = np.random.default_rng(4)
    ws = [rng.random((12, 10)), rng.random((9, 12)), rng.random((7, 9))]
    ws[0][:, 2] = 0.0
    ws[0][5, :] = 0.0
    ws[1][:, 5] = 0.0
    g = WeightGraph.from_weights(ws)
    fast, ev_fast, nodes = spectral_embedding(g, 4, "iterative", seed=0)
    plain, ev_plain, _ = spectral_embedding(g, 4, "dense")
    assert 2 not in nodes and 10 + 5 not in nodes
    np.testing.assert_allclose(ev_fast, ev_plain, atol=1e-10)
    np.testing.assert_allclose(np.abs(fast), np.abs(plain), atol=1e-8)


def test_components_match_networkx():
    rng = np.random.default_rng(7)
    ws = [rng.normal(size=(8, 9)) * (rng.random((8, 9)) < 0.12), rng.normal(size=(6, 8))]
    ws[1][:, :3] = 0.0
    g = WeightGraph.from_weights(ws)
    n, lab = components(g)
    G = g.to_networkx()
    G.remove_nodes_from([i for i in range(g.n_nodes) if not g.active[i]])
    expected = list(nx.connected_components(G))
    assert n == len(expected)
    assert (lab[~g.active] == -1).all()
    for comp in expected:
        assert len({int(lab[i]) for i in comp}) == 1


def test_memory_check_refuses_too_big_networks(monkeypatch):
    with pytest.raises(ModscopeError, match="GiB"):
        check_memory([784, 200_000, 200_000, 10])
    check_memory([784, 256, 256, 10])  # small: fine
    assert memory_estimate([784, 1024, 1024, 10], jobs=4) > memory_estimate([784, 1024, 1024, 10], jobs=1)
    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    with pytest.raises(ModscopeError, match="available"):
        check_memory([784, 256, 10])
