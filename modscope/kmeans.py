"""k-means with all restarts run together: ``(restarts, n, k)`` arrays instead of a Python loop.

Spectral clustering embeds a graph in a few dimensions and runs k-means many times
(25 restarts in the reference). Each restart is tiny, so the per-call overhead of a
library k-means dominates; here every Lloyd iteration of every restart is one batched
matrix product. k-means++ seeding, Lloyd iterations, empty clusters re-seeded at the
point farthest from its centre (as scikit-learn does). Deterministic for a given
``numpy.random.Generator``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._threads import single_thread


def _sq_dist(X: np.ndarray, x_sq: np.ndarray | None, centers: np.ndarray) -> np.ndarray:
    """``(R, n, k)`` squared distances from the ``n`` points to each restart's ``k`` centres.

    With ``x_sq=None`` the per-point constant ``|x|^2`` is left out: the argmin is the same.
    """
    d2 = np.matmul(X[None], centers.transpose(0, 2, 1))
    d2 *= -2.0
    d2 += np.einsum("rkd,rkd->rk", centers, centers)[:, None, :]
    if x_sq is None:
        return d2
    d2 += x_sq[None, :, None]
    return np.maximum(d2, 0.0, out=d2)


def _plus_plus(X: np.ndarray, x_sq: np.ndarray, k: int, n_init: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding for ``n_init`` restarts at once: ``(R, k, d)`` centres.

    Each new centre is the best (lowest total potential) of ``2 + log k`` candidates drawn
    with probability proportional to the squared distance to the nearest chosen centre,
    as in Arthur & Vassilvitskii's greedy variant (scikit-learn's default).
    """
    n, d = X.shape
    trials = 2 + int(np.log(k))
    rows = np.arange(n_init)
    centers = np.empty((n_init, k, d), dtype=X.dtype)
    centers[:, 0] = X[rng.integers(n, size=n_init)]
    closest = _sq_dist(X, x_sq, centers[:, :1])[:, :, 0]  # (R, n)
    for c in range(1, k):
        total = closest.sum(axis=1)
        cum = np.cumsum(closest, axis=1)
        target = rng.random((n_init, trials)) * total[:, None]
        picks = np.minimum(np.sum(cum[:, None, :] < target[:, :, None], axis=2), n - 1)  # (R, t)
        flat = total <= 0  # every point sits on a centre (duplicates): any point will do
        if flat.any():
            picks[flat] = rng.integers(n, size=(int(flat.sum()), trials))
        cand = X[picks]  # (R, t, d)
        d_cand = _sq_dist(X, x_sq, cand)  # (R, n, t)
        pot = np.minimum(closest[:, :, None], d_cand)  # (R, n, t)
        best = pot.sum(axis=1).argmin(axis=1)  # (R,)
        centers[:, c] = cand[rows, best]
        closest = pot[rows, :, best]
    return centers


def _lloyd(
    X: np.ndarray, x_sq: np.ndarray, centers: np.ndarray, max_iter: int, shift_tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations for a batch of restarts from ``centers`` ``(R, k, d)``: ``(labels, inertia)``."""
    R, k, _ = centers.shape
    centers = centers.copy()
    labels = np.full((R, X.shape[0]), -1, dtype=np.int64)
    live = np.arange(R)  # restarts still moving
    settled = np.zeros(R, dtype=bool)  # centres stopped moving: one last assignment
    for _ in range(max_iter + 1):
        new = _sq_dist(X, None, centers[live]).argmin(axis=2)
        moved = (new != labels[live]).any(axis=1) & ~settled[live]
        labels[live] = new
        live = live[moved]
        if live.size == 0:
            break
        lab = new[moved]
        onehot = (lab[:, None, :] == np.arange(k)[None, :, None]).astype(X.dtype)  # (R, k, n)
        counts = onehot.sum(axis=2)
        new_centers = np.matmul(onehot, X) / np.maximum(counts, 1.0)[:, :, None]
        for r in np.unique(np.nonzero(counts == 0)[0]):  # rare: re-seed empty clusters at far points
            dist = ((X - centers[live[r]][lab[r]]) ** 2).sum(axis=1)
            for c in np.flatnonzero(counts[r] == 0):
                far = int(dist.argmax())
                new_centers[r, c] = X[far]
                dist[far] = -1.0
        shift = ((new_centers - centers[live]) ** 2).sum(axis=(1, 2))
        settled[live] = shift <= shift_tol
        centers[live] = new_centers
    # a stopped restart's centres are the ones its final labels were assigned with
    diff = X[None, :, :] - np.take_along_axis(centers, labels[:, :, None], axis=1)
    return labels, np.einsum("rnd,rnd->r", diff, diff)


def kmeans_restarts(
    X: np.ndarray,
    k: int,
    n_init: int,
    rng: np.random.Generator,
    max_iter: int = 300,
    tol: float = 1e-4,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n_init`` k-means restarts on ``X`` ``(n, d)``.

    Returns ``labels`` ``(n_init, n)`` and ``inertia`` ``(n_init,)`` (sum of squared
    distances to the assigned centre). A restart stops when its labels stop changing or
    its centres move less than ``tol`` x the mean per-feature variance of ``X`` (squared
    shift summed over centres, scikit-learn's criterion); its labels are then those of
    its final centres. ``threads > 1`` runs groups of restarts on threads: every restart's
    arithmetic is the same whichever group it is in, so the result does not change.
    """
    # k-means is unchanged by rescaling its input: bring X to O(1) (the spectral embedding
    # scales with 1/sqrt(degree)), then float32 halves the memory traffic of every iteration.
    X = np.asarray(X, dtype=np.float64)
    peak = float(np.abs(X).max()) if X.size else 0.0
    X = np.ascontiguousarray(X / peak if peak > 0 else X, dtype=np.float32)
    x_sq = np.einsum("nd,nd->n", X, X)
    centers = _plus_plus(X, x_sq, k, n_init, rng)
    shift_tol = tol * float(np.mean(np.var(X, axis=0)))
    groups = np.array_split(np.arange(n_init), max(1, min(threads, n_init)))
    if len(groups) == 1:
        labels, inertia = _lloyd(X, x_sq, centers, max_iter, shift_tol)
    else:
        # numpy releases the GIL inside these array operations, so threads run in parallel;
        # one BLAS thread each keeps them from oversubscribing the cores.
        with single_thread(), ThreadPoolExecutor(len(groups)) as pool:
            parts = list(pool.map(lambda g: _lloyd(X, x_sq, centers[g], max_iter, shift_tol), groups))
        labels, inertia = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return labels, inertia.astype(np.float64) * (peak * peak if peak > 0 else 1.0)  # in X's units
