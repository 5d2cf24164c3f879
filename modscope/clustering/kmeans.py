"""k-means with all restarts run together: ``(restarts, k, n)`` arrays instead of a Python loop.

Spectral clustering embeds a graph in a few dimensions and runs k-means many times
(25 restarts in the reference). Each restart is tiny, so the per-call overhead of a
library k-means dominates; here every Lloyd iteration of every restart is one batched
matrix product. k-means++ seeding, Lloyd iterations, empty clusters re-seeded at the
point farthest from its centre (as scikit-learn does). Deterministic for a given
``numpy.random.Generator``.

Layout: distances are ``(R, k, n)`` so every reduction over the few centres runs along a
middle axis, which numpy vectorises over the ``n`` points. An argmin along a short last
axis costs a function call per point and was most of the time. The nearest centre comes
from a plain ``min`` instead: non-negative floats order like their integer bit patterns, so
the centre's index is written into the lowest mantissa bits and the minimum carries it
(ties go to the lower index, as with argmin). Distances are float32 for ``k <= 64`` (the
index takes at most 6 of 24 mantissa bits) and float64 above.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..runtime.threads import single_thread

__all__ = ["kmeans_restarts"]


class _Points:
    """The points ``X`` ``(n, d)`` once, in the forms every distance computation needs.

    Distances are float32 (int32 packing) for ``k <= 64``: the index then takes at most 6 of
    the 24 mantissa bits, finer than float32's own rounding of ``|x|^2 - 2 x.c + |c|^2``.
    Larger ``k`` packs float64 into int64.
    """

    def __init__(self, X: np.ndarray, k: int) -> None:
        self.bits = max(1, int(k - 1).bit_length())
        self.dtype, self.itype = (np.float32, np.int32) if self.bits <= 6 else (np.float64, np.int64)
        self.low = self.itype((1 << self.bits) - 1)
        self.X = X.astype(self.dtype)
        sq = np.einsum("nd,nd->n", X, X)
        # [X^T; 1; |x|^2] (d + 2, n): one matrix product then gives |x - c|^2 in full
        self.aug = np.ascontiguousarray(np.vstack([X.T, np.ones(X.shape[0]), sq]), dtype=self.dtype)
        # each centre's index at every point, (1, k, n): broadcast over the restarts only (a (1, k, 1)
        # operand is slower)
        index = np.arange(k, dtype=self.itype)[None, :, None]
        self._index = np.broadcast_to(index, (1, k, X.shape[0])).copy()
        # clamping against a row of zeros: numpy's maximum with a broadcast scalar runs about 4x slower
        self._zeros = np.zeros(X.shape[0], dtype=self.dtype)

    def sq_dist(self, centers: np.ndarray, clamp: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """``(R, c, n)`` squared distances from ``centers`` ``(R, c, d)`` to every point.

        Rounding can leave values a few ulps below zero for points on a centre; ``clamp``
        sets them to 0 (``nearest`` needs no clamp: a negative float's bits are a negative
        integer, below every positive distance, and such ties are within rounding anyway).
        One 2-D product ``(R c, d + 2) x (d + 2, n)`` for all restarts: a 3-D ``matmul`` calls
        BLAS once per restart, and repacks the points each time. ``out``: a buffer of at least
        ``R c n`` entries of the distance dtype to write into.
        """
        R, c, d = centers.shape
        norms = np.einsum("rcd,rcd->rc", centers, centers)[:, :, None]
        caug = np.concatenate([-2.0 * centers, norms, np.ones_like(norms)], axis=2).astype(self.dtype)
        n = self.aug.shape[1]
        if out is not None:
            out = out.reshape(-1)[: R * c * n].reshape(R * c, n)
        d2 = np.matmul(caug.reshape(R * c, d + 2), self.aug, out=out).reshape(R, c, n)
        return np.maximum(d2, self._zeros, out=d2) if clamp else d2

    def nearest(
        self, centers: np.ndarray, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(packed, best, labels)`` for ``centers`` ``(R, k, d)``: ``packed`` ``(R, k, n)`` the
        distances as integers with the centre index in the low bits, ``best`` ``(R, n)`` their
        minimum over the centres, ``labels`` ``(R, n)`` the nearest centre. ``out``: a buffer
        for ``packed`` as `sq_dist` takes it."""
        packed = self.sq_dist(centers, clamp=False, out=out).view(self.itype)
        packed &= ~self.low
        packed |= self._index
        best = packed.min(axis=1)
        return packed, best, best & self.low

    def distance(self, packed: np.ndarray) -> np.ndarray:
        """The squared distance a packed value carries (its low bits cleared)."""
        return (packed & ~self.low).view(self.dtype)


def _first_reaching(cum: np.ndarray, target: np.ndarray, step: int = 64) -> np.ndarray:
    """``(R, t)``: per row of ``cum`` ``(R, n)``, how many entries lie below each ``target`` ``(R, t)``,
    i.e. the first entry that reaches it (``searchsorted(side="left")`` row by row).

    The rows are sorted (cumulative sums of distances clamped at 0), so the count is the number of
    whole blocks of ``step`` entries whose last entry is below the target, plus the count inside
    the next block: two small vectorised comparisons instead of a binary search per row (a Python
    call each). Positions past the end repeat the last entry, so they count only where it is below
    the target: then the result is ``n`` or more, past the end as searchsorted's ``n``, and the
    caller caps both at ``n - 1``.
    """
    R, n = cum.shape
    ends = cum[:, step - 1 :: step]  # (R, whole blocks) their last entries
    start = (ends[:, None, :] < target[:, :, None]).sum(axis=2) * step  # (R, t)
    at = np.minimum(start[:, :, None] + np.arange(step), n - 1)  # (R, t, step)
    inside = (cum[np.arange(R)[:, None, None], at] < target[:, :, None]).sum(axis=2)
    return start + inside


def _plus_plus(P: _Points, k: int, n_init: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding for ``n_init`` restarts at once: ``(R, k, d)`` centres.

    Each new centre is the best (lowest total potential) of ``2 + log k`` candidates drawn
    with probability proportional to the squared distance to the nearest chosen centre,
    as in Arthur & Vassilvitskii's greedy variant (scikit-learn's default).
    """
    X = P.X
    n, d = X.shape
    trials = 2 + int(np.log(k))
    rows = np.arange(n_init)
    centers = np.empty((n_init, k, d))
    centers[:, 0] = X[rng.integers(n, size=n_init)]
    closest = P.sq_dist(centers[:, :1])[:, 0]  # (R, n)
    buf = np.empty(n_init * trials * n, P.dtype)
    for c in range(1, k):
        total = closest.sum(axis=1)
        cum = np.cumsum(closest, axis=1)
        target = rng.random((n_init, trials)) * total[:, None]
        picks = _first_reaching(cum, target)
        np.minimum(picks, n - 1, out=picks)  # (R, t)
        flat = total <= 0  # every point sits on a centre (duplicates): any point will do
        if flat.any():
            picks[flat] = rng.integers(n, size=(int(flat.sum()), trials))
        cand = X[picks]  # (R, t, d)
        pot = P.sq_dist(cand, out=buf)
        np.minimum(pot, closest[:, None, :], out=pot)  # (R, t, n)
        best = pot.sum(axis=2).argmin(axis=1)  # (R,)
        centers[:, c] = cand[rows, best]
        closest = pot[rows, best]
    return centers


def _lloyd(P: _Points, centers: np.ndarray, max_iter: int, shift_tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations for a batch of restarts from ``centers`` ``(R, k, d)``: ``(labels, inertia)``.

    The restarts still moving are kept packed at the front of every array (centres, labels,
    the 0/1 matrix, counts), so a step touches only them; a restart's labels go to the result
    when it stops. The 0/1 matrix of the cluster sums and the cluster sizes are kept from step
    to step and changed only at the points that changed cluster (after the first few steps,
    few do), instead of rebuilt from the packed distances: the same matrix, so the same sums.
    """
    X = P.X
    R, k, _ = centers.shape
    n = X.shape[0]
    result = np.empty((R, n), dtype=np.int64)
    centers = centers.copy()
    ids = np.arange(R)  # the restarts still moving, by their index in the batch
    cen = centers.copy()  # (m, k, d) their centres
    labels = np.full((R, n), -1, dtype=P.itype)  # (m, n) their labels
    onehot = np.zeros((R, k, n), dtype=P.dtype)  # (slots, k, n) 1 where a point is in a cluster
    slots = np.arange(R)  # (m,) each restart's slot in ``onehot``
    counts = np.zeros((R, k), dtype=np.int64)  # (m, k) cluster sizes
    settled = np.zeros(R, dtype=bool)  # centres stopped moving: one last assignment
    dist_buf = np.empty(R * k * n, P.dtype)
    first = True
    for _ in range(max_iter + 1):
        _, best, new = P.nearest(cen, out=dist_buf)
        change = new != labels  # (m, n)
        moved = change.any(axis=1) & ~settled
        if not moved.all():  # these restarts stop here, with the labels of their last centres
            result[ids[~moved]] = new[~moved]
            if not moved.any():
                break
            ids, cen, settled, best, new = ids[moved], cen[moved], settled[moved], best[moved], new[moved]
            labels, change, counts, slots = labels[moved], change[moved], counts[moved], slots[moved]
            if 4 * slots.size < 3 * onehot.shape[0]:  # a quarter of the slots idle: compact
                onehot, slots = onehot[slots], np.arange(slots.size)
        m = ids.size
        at = np.flatnonzero(change)  # the points that changed cluster
        r_at, p_at = np.divmod(at, n)
        flat = onehot.reshape(-1)
        if not first:
            old = labels.reshape(-1)[at]
            flat[(slots[r_at] * k + old) * n + p_at] = 0.0
            counts -= np.bincount(r_at * k + old, minlength=m * k).reshape(m, k)
        now = new.reshape(-1)[at]
        flat[(slots[r_at] * k + now) * n + p_at] = 1.0
        counts += np.bincount(r_at * k + now, minlength=m * k).reshape(m, k)
        labels, first = new, False
        # cluster sums: one (slots k, n) x (n, d) product with the 0/1 matrix (idle slots too:
        # cheaper than compacting at every stop)
        sums = np.matmul(onehot.reshape(-1, n), X).reshape(-1, k, X.shape[1])
        if slots.size != onehot.shape[0]:
            sums = sums[slots]
        new_centers = sums / np.maximum(counts, 1)[:, :, None]
        empty = counts == 0
        if empty.any():  # rare: re-seed empty clusters at far points
            for r in np.flatnonzero(empty.any(axis=1)):
                dist = P.distance(best[r]).astype(np.float64)  # distance to the own centre
                for c in np.flatnonzero(empty[r]):
                    far = int(dist.argmax())
                    new_centers[r, c] = X[far]
                    dist[far] = -1.0
        shift = ((new_centers - cen) ** 2).sum(axis=(1, 2))
        settled = shift <= shift_tol
        cen = new_centers
        centers[ids] = cen
    else:  # max_iter reached: the restarts still moving keep their last labels
        result[ids] = labels
    # a stopped restart's centres are the ones its final labels were assigned with; one restart at
    # a time, so the (n, d) difference stays in cache (an (R, n, d) gather was 8 % of the time)
    inertia, diff = np.empty(R), np.empty(X.shape)
    for r in range(R):
        np.subtract(X, centers[r].take(result[r], axis=0), out=diff)
        inertia[r] = np.einsum("nd,nd->", diff, diff)
    return result, inertia


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
    its final centres. ``threads > 1`` splits the restarts into one share per thread. Each step's
    products cover all restarts of a share at once; BLAS may round an entry of a product of fewer
    rows an ulp differently, which can move only a point within float32 rounding of two centres
    (tests: the same labels and inertia for 1 and several threads, and as 0.3.0's per-restart
    products gave, on planted graphs and on noise).
    """
    # k-means is unchanged by rescaling its input: bring X to O(1) (the spectral embedding
    # scales with 1/sqrt(degree)) so the squared distances stay far from under- and overflow.
    X = np.asarray(X, dtype=np.float64)
    peak = float(np.abs(X).max()) if X.size else 0.0
    X = np.ascontiguousarray(X / peak if peak > 0 else X)
    P = _Points(X, k)
    centers = _plus_plus(P, k, n_init, rng)
    shift_tol = tol * float(np.mean(np.var(X, axis=0)))
    shares = np.array_split(np.arange(n_init), max(1, min(threads, n_init)))  # restarts per thread
    if len(shares) == 1:
        labels, inertia = _lloyd(P, centers, max_iter, shift_tol)
    else:
        # numpy releases the GIL inside these array operations, so threads run in parallel;
        # one BLAS thread each keeps them from oversubscribing the cores.
        with single_thread(), ThreadPoolExecutor(len(shares)) as pool:
            parts = list(pool.map(lambda share: _lloyd(P, centers[share], max_iter, shift_tol), shares))
        labels, inertia = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return labels, inertia * (peak * peak if peak > 0 else 1.0)  # in X's units
