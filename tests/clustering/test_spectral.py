import itertools

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

from modscope import cluster
from modscope.clustering.embedding import spectral_embedding
from modscope.clustering.kmeans import kmeans_restarts
from modscope.clustering.ncut import ncut, ncut_batch
from modscope.clustering.spectral import SklearnClusterer, SpectralClusterer, cluster_qr
from modscope.errors import ModscopeError
from modscope.graphs.weight_graph import WeightGraph
from tests.conftest import planted_weights


def brute_force_ncut(A: np.ndarray, labels: np.ndarray) -> float:
    """sum_c cut(c)/vol(c) straight from the definition, with Python loops."""
    total = 0.0
    for c in set(labels.tolist()) - {-1}:
        inside = [i for i in range(len(labels)) if labels[i] == c]
        outside = [j for j in range(len(labels)) if labels[j] != c]
        cut = sum(A[i, j] for i in inside for j in outside)
        vol = sum(A[i, j] for i in inside for j in range(len(labels)))
        total += cut / vol if vol > 0 else 0.0
    return total


def small_graph(seed=0, widths=(5, 4, 6, 3), density=0.7):
    rng = np.random.default_rng(seed)
    ws = [
        rng.normal(size=(b, a)) * (rng.random((b, a)) < density)
        for a, b in zip(widths[:-1], widths[1:], strict=False)
    ]
    return WeightGraph.from_weights(ws)


@pytest.mark.parametrize("seed", range(5))
def test_ncut_k2_equals_networkx(seed):
    g = small_graph(seed)
    labels = np.random.default_rng(seed).integers(0, 2, g.n_nodes)
    G = g.to_networkx()
    S = [i for i in range(g.n_nodes) if labels[i] == 0]
    assert ncut(g, labels) == pytest.approx(nx.normalized_cut_size(G, S, weight="weight"), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6))
def test_ncut_equals_brute_force(seed, k):
    g = small_graph(seed)
    labels = np.random.default_rng(seed).integers(0, k, g.n_nodes)
    labels[np.random.default_rng(seed + 1).random(g.n_nodes) < 0.1] = -1
    A = g.adjacency.toarray()
    expected = brute_force_ncut(A, labels)
    assert ncut(g, labels) == pytest.approx(expected, abs=1e-10)
    # the sparse-matrix path agrees with the layered (GEMM) path
    assert ncut(g.adjacency, labels) == pytest.approx(expected, abs=1e-10)


def test_ncut_batch_matches_single():
    g = small_graph(3)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, (7, g.n_nodes))
    cuts, terms = ncut_batch(g, labels)
    for r in range(7):
        assert cuts[r] == pytest.approx(ncut(g, labels[r]))
        assert terms[r].sum() == pytest.approx(cuts[r])


def test_ncut_range():
    g = small_graph(1)
    assert ncut(g, np.zeros(g.n_nodes, int)) == pytest.approx(0.0, abs=1e-12)
    labels = np.arange(g.n_nodes)  # every node alone: every edge is cut
    assert ncut(g, labels) == pytest.approx(np.count_nonzero(g.active))


def test_bipartite_embedding_equals_plain_definition():
    rng = np.random.default_rng(7)
    g = WeightGraph.from_weights([rng.random((30, 20)), rng.random((25, 30)), rng.random((10, 25))])
    fast, ev_fast, nodes = spectral_embedding(g, 6, "bipartite")
    plain, ev_plain, nodes2 = spectral_embedding(g, 6, "dense")
    np.testing.assert_array_equal(nodes, nodes2)
    np.testing.assert_allclose(ev_fast, ev_plain, atol=1e-10)
    # same invariant subspace (eigenvectors are unique up to sign when eigenvalues differ)
    np.testing.assert_allclose(np.abs(fast), np.abs(plain), atol=1e-8)
    # the definition itself: L v = lambda v for v = D^{1/2} * embedding column
    A = g.adjacency.toarray()
    d = A.sum(1)
    L = np.eye(len(d)) - A / np.sqrt(np.outer(d, d))
    v = fast * np.sqrt(d)[:, None]
    np.testing.assert_allclose(L @ v, v * ev_fast, atol=1e-9)
    assert ev_fast[0] == pytest.approx(0.0, abs=1e-12)


def test_bipartite_and_dense_paths_give_same_partition():
    ws, planted = planted_weights([40, 30, 30, 20], 3, np.random.default_rng(0))
    g = WeightGraph.from_weights(ws)
    a = SpectralClusterer(3, eigen_solver="bipartite").partition(g, 0)
    b = SpectralClusterer(3, eigen_solver="dense").partition(g, 0)
    assert a.ncut == pytest.approx(b.ncut, abs=1e-9)
    assert adjusted_rand_score(a.labels, b.labels) == 1.0


@pytest.mark.parametrize("assign", ["kmeans", "cluster_qr"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5])
def test_planted_modules_recovered(assign, sparsity):
    ws, planted = planted_weights([60, 48, 48, 24], 4, np.random.default_rng(3), sparsity=sparsity)
    g = WeightGraph.from_weights(ws)
    p = cluster(g, 4, seed=0, assign_labels=assign)
    assert adjusted_rand_score(planted, p.labels) >= 0.95
    assert p.ncut < ncut(g, np.random.default_rng(0).integers(0, 4, g.n_nodes))


def test_isolated_nodes_labelled_minus_one_and_components_kept():
    ws, _ = planted_weights([20, 16, 12], 2, np.random.default_rng(0), leak=0.0)
    ws[0][:, 3] = 0.0  # input 3 loses every edge
    g = WeightGraph.from_weights(ws)
    p = cluster(g, 2, seed=0)
    assert p.labels[3] == -1
    assert (p.labels[np.arange(g.n_nodes) != 3] >= 0).all()
    # two disconnected planted components: the perfect split has n-cut 0
    assert p.ncut == pytest.approx(0.0, abs=1e-12)


def test_same_seed_same_partition_and_seed_flows():
    ws, _ = planted_weights([30, 30, 30], 3, np.random.default_rng(0), leak=0.5)
    g = WeightGraph.from_weights(ws)
    a, b = cluster(g, 5, seed=11), cluster(g, 5, seed=11)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_ncut_selection_never_worse_than_inertia_selection():
    ws, _ = planted_weights([50, 40, 40, 10], 4, np.random.default_rng(5), leak=0.6)
    g = WeightGraph.from_weights(ws)
    for seed in range(3):
        by_cut = SpectralClusterer(6, select="ncut").partition(g, seed)
        by_inertia = SpectralClusterer(6, select="inertia").partition(g, seed)
        assert by_cut.ncut <= by_inertia.ncut + 1e-12


def test_at_least_as_good_as_sklearn():
    ws, _ = planted_weights([60, 40, 40, 10], 5, np.random.default_rng(2), leak=0.5)
    g = WeightGraph.from_weights(ws)
    ours = SpectralClusterer(5, select="ncut").partition(g, 0)
    theirs = SklearnClusterer(5).partition(g, 0)
    assert ours.ncut <= theirs.ncut + 1e-9


@pytest.mark.parametrize("k", [1, 0, 19, 100])
def test_bad_cluster_counts(k):
    g = small_graph(0)  # 18 nodes
    with pytest.raises(ModscopeError):
        cluster(g, k)


def test_kmeans_restarts_find_separated_blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = np.concatenate([c + rng.normal(size=(50, 2)) for c in centers])
    labels, inertia = kmeans_restarts(X, 3, 8, np.random.default_rng(1))
    best = labels[np.argmin(inertia)]
    assert adjusted_rand_score(np.repeat([0, 1, 2], 50), best) == 1.0
    # inertia is what it says
    means = np.stack([X[best == c].mean(0) for c in range(3)])
    assert inertia.min() == pytest.approx(((X - means[best]) ** 2).sum())


def test_kmeans_handles_duplicate_points():
    X = np.zeros((10, 3))
    X[5:] = 1.0
    labels, _ = kmeans_restarts(X, 4, 3, np.random.default_rng(0))
    assert labels.shape == (3, 10)
    for row in labels:  # the two groups are never mixed
        assert len(set(row[:5]) & set(row[5:])) == 0


def test_cluster_qr_on_indicator_embedding():
    emb = np.kron(np.eye(3), np.ones((4, 1))) + 1e-3 * np.random.default_rng(0).normal(size=(12, 3))
    labels = cluster_qr(emb)
    assert adjusted_rand_score(np.repeat([0, 1, 2], 4), labels) == 1.0


def test_partition_sizes_and_frame():
    ws, _ = planted_weights([12, 8, 4], 2, np.random.default_rng(0))
    g = WeightGraph.from_weights(ws)
    p = cluster(g, 2, seed=0)
    sizes = p.sizes(g)
    assert sizes.shape == (3, 2) and sizes.sum(1).tolist() == [12, 8, 4]
    frame = p.to_frame(g)
    assert list(frame.columns) == ["layer", "index", "cluster"] and len(frame) == g.n_nodes
    assert set(itertools.chain(p.to_dict())) >= {"ncut", "labels", "n_clusters"}


def test_threaded_restarts_give_identical_partitions():
    ws, _ = planted_weights([40, 30, 30, 10], 4, np.random.default_rng(9), leak=0.7)
    g = WeightGraph.from_weights(ws)
    one = SpectralClusterer(5, threads=1).partition(g, 3)
    three = SpectralClusterer(5, threads=3).partition(g, 3)
    np.testing.assert_array_equal(one.labels, three.labels)
    assert one.ncut == three.ncut


def test_kmeans_reseeds_empty_clusters():
    # 50 copies of one point and three singletons: k = 4 must find all four groups
    X = np.repeat(np.eye(4), [50, 1, 1, 1], axis=0)
    labels, inertia = kmeans_restarts(X, 4, 6, np.random.default_rng(0))
    assert all(len(set(row)) == 4 for row in labels)
    np.testing.assert_allclose(inertia, 0.0, atol=1e-12)


def test_layered_gram_path_handles_isolated_nodes_on_both_sides():
    rng = np.random.default_rng(4)
    ws = [rng.random((12, 10)), rng.random((9, 12)), rng.random((7, 9))]
    ws[0][:, 2] = 0.0  # input 2 isolated (even side)
    ws[0][5, :] = 0.0
    ws[1][:, 5] = 0.0  # hidden-1 neuron 5 isolated (odd side)
    g = WeightGraph.from_weights(ws)
    fast, ev_fast, nodes = spectral_embedding(g, 4, "bipartite")
    plain, ev_plain, _ = spectral_embedding(g, 4, "dense")
    assert 2 not in nodes and 10 + 5 not in nodes
    np.testing.assert_allclose(ev_fast, ev_plain, atol=1e-10)
    np.testing.assert_allclose(np.abs(fast), np.abs(plain), atol=1e-8)


def test_reference_restarts_25_or_100_above_2000_active_nodes():
    small = SpectralClusterer(3).settings(2000)
    large = SpectralClusterer(3).settings(2001)
    assert small == {"assign_labels": "kmeans", "restarts": 25, "select": "inertia"}
    assert large["restarts"] == 100
    assert SpectralClusterer(3, restarts=7, select="ncut").settings(5000) == {
        "assign_labels": "kmeans", "restarts": 7, "select": "ncut"}
    assert SpectralClusterer(3, assign_labels="cluster_qr").settings(10)["restarts"] is None
    g = WeightGraph.from_weights([np.abs(np.random.default_rng(0).normal(size=(40, 30))) + 0.1])
    assert SpectralClusterer(3).partition(g, 0).clustering["restarts"] == 25
    with pytest.raises(ModscopeError, match="restarts"):
        SpectralClusterer(3, restarts=0).partition(g, 0)


def test_restart_choice_is_blind_to_rounding():
    """Restarts that reach one partition under other label numbers differ in inertia by an ulp or
    two, which a BLAS or thread count decides: the first of them is kept, wherever the ulps fall."""
    from modscope.clustering.spectral import kept_restart

    a = np.array([0, 0, 1, 1, 2, 2])
    other = np.array([0, 1, 0, 1, 2, 2])  # another partition
    candidates = np.stack([a, other, (a + 1) % 3, a, (a + 2) % 3])
    base = 0.0623866745675365
    inertia = np.array([base * (1 + 3e-16), 0.0641, base * (1 + 1e-16), base, base])
    assert kept_restart(candidates, inertia) == 0  # argmin says 3: the same partition as 0
    inertia[1] = base / 2  # a lower partition is kept, whatever comes first
    assert kept_restart(candidates, inertia) == 1
    # a partition with fewer clusters (one merged) is another partition
    merged = np.stack([np.array([0, 0, 1, 1, 1, 1]), a])
    assert kept_restart(merged, np.array([1.0, 0.5])) == 1
    assert kept_restart(merged[::-1], np.array([0.5, 1.0])) == 0
