"""The batched k-means: its nearest-centre search against brute force, Lloyd's fixed point."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from modscope.clustering.kmeans import _first_reaching, _Points, kmeans_restarts


def brute_nearest(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``(R, n)`` index of the nearest centre by explicit differences; first index on ties."""
    d2 = ((X[None, :, None, :] - centers[:, None, :, :]) ** 2).sum(axis=3)  # (R, n, k)
    return d2.argmin(axis=2)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    d=st.integers(1, 6),
    k=st.integers(1, 70),
    restarts=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_nearest_matches_brute_force(n, d, k, restarts, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    centers = rng.normal(size=(restarts, k, d))
    # margins well above float32 rounding of |x|^2 - 2 x.c + |c|^2 and the packed index bits,
    # so the brute-force argmin is unambiguous
    d2 = ((X[None, :, None, :] - centers[:, None, :, :]) ** 2).sum(axis=3)
    top2 = np.sort(d2, axis=2)[:, :, :2]
    scale = 1.0 + (X**2).sum(1).max() + (centers**2).sum(2).max()
    assume(k == 1 or not (top2[:, :, 1] - top2[:, :, 0] < 1e-4 * scale).any())
    points = _Points(X, k)
    packed, best, labels = points.nearest(centers)
    np.testing.assert_array_equal(labels, brute_nearest(X, centers))
    # the packed minimum carries the distance itself in its high bits
    np.testing.assert_allclose(points.distance(best), top2[:, :, 0], rtol=1e-4, atol=1e-5 * scale)
    assert packed.shape == (restarts, k, n)


def test_nearest_ties_go_to_the_lower_index():
    X = np.array([[0.0, 0.0], [1.0, 1.0]])
    centers = np.array([[[5.0, 5.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]])  # duplicates
    _, _, labels = _Points(X, 5).nearest(centers)
    assert labels.tolist() == [[2, 1]]


@pytest.mark.parametrize("k", [2, 5, 12])
def test_lloyd_stops_at_a_fixed_point(k):
    # with tol = 0 a restart stops only when no label changes: every point is then nearest to
    # the mean of its own cluster, and the inertia is the sum of those squared distances
    rng = np.random.default_rng(k)
    X = np.concatenate([rng.normal(loc=rng.normal(scale=4, size=3), size=(40, 3)) for _ in range(k)])
    labels, inertia = kmeans_restarts(X, k, 6, np.random.default_rng(0), tol=0.0)
    for row, value in zip(labels, inertia, strict=True):
        ids = np.unique(row)
        means = np.stack([X[row == c].mean(axis=0) for c in ids])
        d2 = ((X[:, None, :] - means[None]) ** 2).sum(axis=2)
        np.testing.assert_array_equal(ids[d2.argmin(axis=1)], row)
        assert value == pytest.approx(d2.min(axis=1).sum(), rel=1e-6)


def test_restarts_are_reproducible_and_independent_of_threads():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    a = kmeans_restarts(X, 6, 8, np.random.default_rng(11))
    b = kmeans_restarts(X, 6, 8, np.random.default_rng(11), threads=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 200, 1818])
def test_first_reaching_is_a_binary_search_per_row(n):
    # sorted float32 rows with runs of equal values (points on a centre add 0), targets in float64
    # below, inside and past each row, exactly at entries too
    rng = np.random.default_rng(n)
    steps = rng.exponential(size=(7, n)).astype(np.float32) * (rng.random((7, n)) < 0.7)
    cum = np.cumsum(steps, axis=1)
    target = rng.random((7, 4)) * cum[:, -1:] * 1.1
    target[:, 0] = cum[:, n // 2]  # ties: side="left" counts the entries strictly below
    target[:, 1] = 0.0
    want = np.stack([np.searchsorted(cum[r], target[r], side="left") for r in range(7)])
    got = _first_reaching(cum, target)
    np.testing.assert_array_equal(np.minimum(got, n - 1), np.minimum(want, n - 1))
    np.testing.assert_array_equal(got < n, want < n)
