"""The batched k-means of 0.4.0 (issue 26: one product over all live restarts, the 0/1 sum matrix
kept between steps) against a frozen copy of the 0.3.0 restarts it replaced: the same seeds give
the same labels and inertia on planted graphs and on unstructured points. The reference below
is that code, cut to what the comparison needs; it is not used anywhere else."""

import numpy as np
import pytest

from modscope import WeightGraph
from modscope.clustering.embedding import spectral_embedding
from modscope.clustering.kmeans import kmeans_restarts
from modscope.clustering.spectral import SpectralClusterer
from tests.conftest import planted_weights


class _RefPoints:
    def __init__(self, X, k):
        self.bits = max(1, int(k - 1).bit_length())
        self.dtype, self.itype = (np.float32, np.int32) if self.bits <= 6 else (np.float64, np.int64)
        self.low = self.itype((1 << self.bits) - 1)
        self.X = X.astype(self.dtype)
        sq = np.einsum("nd,nd->n", X, X)
        self.aug = np.ascontiguousarray(np.vstack([X.T, np.ones(X.shape[0]), sq]), dtype=self.dtype)

    def sq_dist(self, centers, clamp=True):
        norms = np.einsum("rcd,rcd->rc", centers, centers)[:, :, None]
        caug = np.concatenate([-2.0 * centers, norms, np.ones_like(norms)], axis=2).astype(self.dtype)
        d2 = np.matmul(caug, self.aug)
        return np.maximum(d2, 0.0, out=d2) if clamp else d2

    def nearest(self, centers):
        R, k, _ = centers.shape
        packed = self.sq_dist(centers, clamp=False).view(self.itype)
        packed &= ~self.low
        packed |= np.broadcast_to(np.arange(k, dtype=self.itype)[None, :, None], packed.shape)
        best = packed.min(axis=1)
        return packed, best, best & self.low


def _ref_plus_plus(P, k, n_init, rng):
    X = P.X
    n, d = X.shape
    trials = 2 + int(np.log(k))
    rows = np.arange(n_init)
    centers = np.empty((n_init, k, d))
    centers[:, 0] = X[rng.integers(n, size=n_init)]
    closest = P.sq_dist(centers[:, :1])[:, 0]
    for c in range(1, k):
        total = closest.sum(axis=1)
        cum = np.cumsum(closest, axis=1)
        target = rng.random((n_init, trials)) * total[:, None]
        picks = np.minimum(np.sum(cum[:, None, :] < target[:, :, None], axis=2), n - 1)
        flat = total <= 0
        if flat.any():
            picks[flat] = rng.integers(n, size=(int(flat.sum()), trials))
        cand = X[picks]
        pot = np.minimum(P.sq_dist(cand), closest[:, None, :])
        best = pot.sum(axis=2).argmin(axis=1)
        centers[:, c] = cand[rows, best]
        closest = pot[rows, best]
    return centers


def _ref_lloyd(P, centers, max_iter, shift_tol):
    X = P.X
    R, k, _ = centers.shape
    centers = centers.copy()
    labels = np.full((R, X.shape[0]), -1, dtype=np.int64)
    live = np.arange(R)
    settled = np.zeros(R, dtype=bool)
    for _ in range(max_iter + 1):
        packed, best, new = P.nearest(centers[live])
        moved = (new != labels[live]).any(axis=1) & ~settled[live]
        labels[live] = new
        live = live[moved]
        if live.size == 0:
            break
        if not moved.all():
            packed, best, lab = packed[moved], best[moved], new[moved]
        else:
            lab = new
        onehot = np.equal(packed, best[:, None, :], out=np.empty(packed.shape, P.dtype), casting="unsafe")
        counts = np.bincount((lab + k * np.arange(len(live))[:, None]).ravel(), minlength=len(live) * k)
        counts = counts.reshape(len(live), k)
        new_centers = np.matmul(onehot, X) / np.maximum(counts, 1)[:, :, None]
        for r in np.unique(np.nonzero(counts == 0)[0]):
            dist = (best[r] & ~P.low).view(P.dtype).astype(np.float64)
            for c in np.flatnonzero(counts[r] == 0):
                far = int(dist.argmax())
                new_centers[r, c] = X[far]
                dist[far] = -1.0
        shift = ((new_centers - centers[live]) ** 2).sum(axis=(1, 2))
        settled[live] = shift <= shift_tol
        centers[live] = new_centers
    diff = X[None, :, :] - np.take_along_axis(centers, labels[:, :, None], axis=1)
    return labels, np.einsum("rnd,rnd->r", diff, diff)


def reference_restarts(X, k, n_init, rng, max_iter=300, tol=1e-4):
    """The 0.3.0 `kmeans_restarts` (one thread)."""
    X = np.asarray(X, dtype=np.float64)
    peak = float(np.abs(X).max()) if X.size else 0.0
    X = np.ascontiguousarray(X / peak if peak > 0 else X)
    P = _RefPoints(X, k)
    centers = _ref_plus_plus(P, k, n_init, rng)
    labels, inertia = _ref_lloyd(P, centers, max_iter, tol * float(np.mean(np.var(X, axis=0))))
    return labels, inertia * (peak * peak if peak > 0 else 1.0)


def _planted_graph(widths, modules, seed, leak):
    weights, _ = planted_weights(widths, modules, np.random.default_rng(seed), leak=leak)
    return WeightGraph.from_weights(weights)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("widths", "modules", "leak"), [((24, 30, 30, 12), 3, 0.02), ((40, 48, 48, 48, 16), 4, 0.3)]
)
def test_restarts_equal_the_0_3_reference_on_planted_graphs(seed, widths, modules, leak):
    # the spectral embedding of a planted graph, clustered with k = modules and k = modules + 3
    # (extra clusters split the modules: many restarts, many Lloyd steps, distinct optima)
    graph = _planted_graph(widths, modules, seed, leak)
    for k in (modules, modules + 3):
        emb, _, _ = spectral_embedding(graph, k)
        labels, inertia = kmeans_restarts(emb, k, 25, np.random.default_rng(seed))
        ref_labels, ref_inertia = reference_restarts(emb, k, 25, np.random.default_rng(seed))
        np.testing.assert_array_equal(labels, ref_labels)
        np.testing.assert_allclose(inertia, ref_inertia, rtol=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_restarts_equal_the_reference_on_unstructured_points(seed):
    # Gaussian noise in 12 dimensions at k 12, the shape of a shuffled network's embedding: long
    # runs of Lloyd steps, restarts stopping one by one (the idle slots, the packed live set)
    X = np.random.default_rng(100 + seed).normal(size=(400, 12))
    labels, inertia = kmeans_restarts(X, 12, 25, np.random.default_rng(seed))
    ref_labels, ref_inertia = reference_restarts(X, 12, 25, np.random.default_rng(seed))
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(inertia, ref_inertia, rtol=1e-9)


def test_max_iter_and_empty_clusters_follow_the_reference():
    # a cap of 2 Lloyd steps (restarts still moving keep their last labels) and duplicated points
    # (clusters go empty and are re-seeded at far points)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    for args in ((X, 8, 6), (rng.normal(size=(6, 3))[rng.integers(6, size=80)], 9, 5)):
        for max_iter in (2, 300):
            got = kmeans_restarts(*args, np.random.default_rng(1), max_iter=max_iter)
            ref = reference_restarts(*args, np.random.default_rng(1), max_iter=max_iter)
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, atol=1e-12)


def test_the_reference_clustering_of_a_planted_graph_is_unchanged():
    # the whole reference procedure (25 restarts, lowest inertia) finds the planted modules
    graph = _planted_graph((24, 30, 30, 12), 3, 0, 0.02)
    _, planted = planted_weights((24, 30, 30, 12), 3, np.random.default_rng(0))
    labels = SpectralClusterer(3).partition(graph, seed=0).labels
    # the same partition up to the names of the clusters
    pairs = set(zip(labels.tolist(), planted.tolist(), strict=True))
    assert len(pairs) == 3
