import json

import numpy as np
import pytest

from modscope import load_graph, score
from modscope.clustering.spectral import SpectralClusterer
from modscope.graphs.weight_graph import WeightGraph
from tests.conftest import SCORE_JSON_KEYS, planted_weights, random_mlp

PAPER_RANDOM_INIT = 10.295  # spec §3: Glorot MLP 784-256x4-10, k = 12, 10.295 +- 0.032


@pytest.fixture(scope="module")
def random_784():
    return load_graph(random_mlp([784, 256, 256, 256, 256, 10], seed=0))


@pytest.mark.slow  # a 784-256x4-10 MLP against shuffles
def test_random_init_mlp_matches_paper_with_the_default_reference_procedure(random_784):
    # The default is the reference's: 25 k-means restarts (1818 nodes), lowest inertia kept.
    r = score(random_784, n_clusters=12, n_shuffles=12, seed=0, jobs=2)
    assert r.partition.clustering == {"assign_labels": "kmeans", "restarts": 25, "select": "inertia"}
    assert r.to_dict()["clustering"] == r.partition.clustering
    assert r.ncut == pytest.approx(PAPER_RANDOM_INIT, abs=0.06)
    assert r.null.mean == pytest.approx(PAPER_RANDOM_INIT, abs=0.06)
    assert 0.005 < r.null.std < 0.08
    assert abs(r.null.z) < 3.0  # a random network is not more modular than its shuffles


@pytest.mark.slow  # a 784-256x4-10 MLP
def test_random_init_mlp_ncut_selection(random_784):
    r = score(random_784, measure=SpectralClusterer(12, select="ncut"), n_shuffles=12, seed=0, jobs=2)
    ref = SpectralClusterer(12).partition(random_784, np.random.SeedSequence(0))
    assert r.ncut <= ref.ncut  # the same 25 restarts, chosen by n-cut: never worse
    assert 10.0 < r.ncut < PAPER_RANDOM_INIT + 0.06
    assert abs(r.null.z) < 3.5


def test_planted_network_is_far_more_modular_than_shuffles():
    ws, _ = planted_weights([40, 32, 32, 16], 4, np.random.default_rng(0))
    r = score(WeightGraph.from_weights(ws), n_clusters=4, n_shuffles=10, seed=1)
    assert r.null.z < -10
    assert r.null.p_value == pytest.approx(1 / 11)


def test_result_dict_has_exactly_the_documented_keys():
    ws, _ = planted_weights([12, 8, 6], 2, np.random.default_rng(0))
    r = score(WeightGraph.from_weights(ws), n_clusters=2, n_shuffles=3, seed=7)
    d = r.to_dict()
    assert set(d) == SCORE_JSON_KEYS
    assert set(d["shuffle"]) == {"method", "n", "ncuts", "mean", "std", "z", "p_value"}
    assert len(d["labels"]) == d["n_nodes"] == 26 and d["layer_widths"] == [12, 8, 6]
    json.dumps(d, allow_nan=False)
    assert r.to_frame().shape == (3, 2)
    assert score(WeightGraph.from_weights(ws), n_clusters=2, n_shuffles=0).to_dict()["shuffle"] is None


def test_same_seed_same_result():
    ws, _ = planted_weights([20, 16, 8], 2, np.random.default_rng(0), leak=0.5)
    g = WeightGraph.from_weights(ws)
    a = score(g, n_clusters=3, n_shuffles=4, seed=3).to_dict()
    b = score(g, n_clusters=3, n_shuffles=4, seed=3).to_dict()
    assert a == b


def test_sparse_network_warns_about_a_degenerate_null():
    # two 2-neuron chains: 'layer' shuffles scatter the few weights into disconnected pieces
    w1 = np.zeros((6, 4))
    w1[0, 0] = w1[1, 1] = w1[2, 2] = w1[3, 3] = 1.0
    w2 = np.zeros((2, 6))
    w2[0, 0] = w2[0, 1] = w2[1, 2] = w2[1, 3] = 1.0
    w2[0, 2] = 0.01  # a weak bridge: the trained n-cut is just above 0
    r = score(WeightGraph.from_weights([w1, w2]), n_clusters=2, n_shuffles=8, seed=0)
    assert r.null.samples.min() == 0.0
    assert any("fell apart" in w for w in r.warnings)
    ws, _ = planted_weights([12, 8, 6], 2, np.random.default_rng(0))
    assert score(WeightGraph.from_weights(ws), n_clusters=2, n_shuffles=3).warnings == []


def test_z_floor_and_capped_warning():
    # a disconnected two-module sparse net: n-cut 0, so z sits exactly on its floor -mean/std
    w1 = np.zeros((8, 6))
    w1[:4, :3] = np.random.default_rng(0).uniform(0.5, 1.0, (4, 3))
    w1[4:, 3:] = np.random.default_rng(1).uniform(0.5, 1.0, (4, 3))
    w2 = np.zeros((2, 8))
    w2[0, :4] = 1.0
    w2[1, 4:] = 1.0
    r = score(WeightGraph.from_weights([w1, w2]), n_clusters=2, n_shuffles=20, null="layer_degree", seed=0)
    assert r.ncut == pytest.approx(0.0, abs=1e-12)
    assert r.z_floor == pytest.approx(-r.null.mean / r.null.std)
    assert r.null.z == pytest.approx(r.z_floor)
    assert any("capped near its floor" in w for w in r.warnings)
