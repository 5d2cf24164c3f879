"""`kmeans_restarts` as torch tensor ops: every restart of every graph of a batch at once.

The same procedure as `modscope.clustering.kmeans` (greedy k-means++ seeding, Lloyd's
iterations with the same stopping rule, empty clusters re-seeded at the farthest point, the
nearest centre found from float32 distances with the centre's index packed into the low mantissa
bits) over a ``(graphs, restarts, k, n)`` distance tensor, so a GPU runs hundreds of restarts in
one kernel per step. The random numbers are drawn on the host from each graph's own
``numpy.random.Generator`` in the order the numpy path draws them, so the same seeds give the
same seeding; labels then agree with the numpy path wherever no point sits within rounding of
two centres (a different summation order in a matrix product moves distances by an ulp).

Two rare cases draw numbers that depend on the data (k-means++ when every point already sits on
a centre): a graph that meets one is redone by the numpy path from a copy of its generator, so
its result is exactly the numpy path's.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence

import numpy as np

from .kmeans import kmeans_restarts

__all__ = ["kmeans_restarts_torch"]


class _Batch:
    """Points ``(G, n, d)`` of ``G`` graphs on a device, in the forms the distances need."""

    def __init__(self, X, k: int) -> None:
        import torch

        self.bits = max(1, int(k - 1).bit_length())  # the index bits and distance dtypes of the numpy path
        self.dtype = torch.float32 if self.bits <= 6 else torch.float64
        self.itype = torch.int32 if self.bits <= 6 else torch.int64
        self.low = (1 << self.bits) - 1
        self.X = X.to(self.dtype)  # (G, n, d)
        sq = (X * X).sum(dim=2)  # float64, as the numpy path
        ones = torch.ones_like(sq)
        self.aug = torch.cat([X.mT, ones[:, None], sq[:, None]], dim=1).to(self.dtype)  # (G, d+2, n)
        self.index = torch.arange(k, dtype=self.itype, device=X.device)[None, None, :, None]

    def sq_dist(self, centers, clamp: bool = True):
        """``(G, R, c, n)`` squared distances from ``centers`` ``(G, R, c, d)``; their norms are
        summed in the centres' own dtype, as the numpy path does."""
        import torch

        G, R, c, d = centers.shape
        norms = (centers * centers).sum(dim=3, keepdim=True)
        caug = torch.cat([-2.0 * centers, norms, torch.ones_like(norms)], dim=3).to(self.dtype)
        d2 = torch.matmul(caug.reshape(G, R * c, d + 2), self.aug).reshape(G, R, c, -1)
        return d2.clamp_(min=0.0) if clamp else d2

    def nearest(self, centers):
        """``(packed, best, labels)`` as `kmeans._Points.nearest`, with a leading graph axis."""
        packed = self.sq_dist(centers, clamp=False).view(self.itype)
        packed &= ~self.low
        packed |= self.index
        best = packed.amin(dim=2)
        return packed, best, (best & self.low).long()

    def distance(self, packed):
        return (packed & ~self.low).view(self.dtype)


@contextlib.contextmanager
def _ieee_float32():
    """float32 products in full precision inside (no TF32 on a GPU that has it), restored after:
    the distances must round as the numpy path's do, not to TF32's 10 mantissa bits."""
    import torch

    try:
        old = bool(torch.backends.cuda.matmul.allow_tf32)
    except RuntimeError:  # a mixed setting of torch's newer precision switches: leave them alone
        old = False
    if not old:  # the default: nothing to change
        yield
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _gather_points(X, idx):
    """``X[g, idx[g, ...]]`` for ``X`` ``(G, n, d)`` and ``idx`` ``(G, ...)``: ``(G, ..., d)``."""
    flat = idx.reshape(X.shape[0], -1, 1)  # take_along_dim broadcasts it over the d coordinates
    return X.take_along_dim(flat, dim=1).reshape(*idx.shape, X.shape[2])


def _plus_plus(P: _Batch, k: int, first, uniforms):
    """Greedy k-means++ for every restart of every graph: ``(centers (G, R, k, d), flat (G,))``.

    ``first`` ``(G, R)`` the first centres' indices, ``uniforms`` ``(G, k - 1, R, trials)`` the
    draws the numpy path makes; ``flat[g]`` is set where graph ``g`` met a step at which every
    point sat on a centre (the numpy path then draws more numbers: the caller redoes it).
    """
    import torch

    X = P.X
    G, n, d = X.shape
    R = first.shape[1]
    centers = torch.zeros((G, R, k, d), dtype=torch.float64, device=X.device)
    centers[:, :, 0] = _gather_points(X, first).double()
    closest = P.sq_dist(centers[:, :, :1])[:, :, 0]  # (G, R, n)
    flat = torch.zeros(G, dtype=torch.bool, device=X.device)
    for c in range(1, k):
        total = closest.sum(dim=2)
        cum = torch.cumsum(closest, dim=2).double()
        target = uniforms[:, c - 1] * total.double()[:, :, None]  # (G, R, t)
        picks = torch.searchsorted(cum.contiguous(), target.contiguous()).clamp_(max=n - 1)
        flat |= (total <= 0).any(dim=1)
        cand = _gather_points(X, picks)  # (G, R, t, d) in the points' dtype, as the numpy path
        pot = torch.minimum(P.sq_dist(cand), closest[:, :, None, :])  # (G, R, t, n)
        best = pot.sum(dim=3).argmin(dim=2)  # (G, R)
        centers[:, :, c] = cand.gather(2, best[:, :, None, None].expand(-1, -1, 1, d))[:, :, 0].double()
        closest = pot.gather(2, best[:, :, None, None].expand(-1, -1, 1, n))[:, :, 0]
    return centers, flat


def _lloyd(P: _Batch, centers, max_iter: int, shift_tol):
    """Lloyd's iterations of every restart at once: ``(labels (G, R, n), inertia (G, R))``.

    A restart leaves the iteration when its labels stop changing or, one assignment after its
    centres moved less than ``shift_tol`` ``(G,)``, exactly as the numpy path's live set does.
    """
    import torch

    X = P.X
    G, R, k, d = centers.shape
    n = X.shape[1]
    labels = torch.full((G, R, n), -1, dtype=torch.long, device=X.device)
    live = torch.ones((G, R), dtype=torch.bool, device=X.device)
    settled = torch.zeros((G, R), dtype=torch.bool, device=X.device)
    for _ in range(max_iter + 1):
        packed, best, new = P.nearest(centers)
        moved = (new != labels).any(dim=2) & ~settled & live
        labels = torch.where(live[:, :, None], new, labels)
        live = moved
        if not bool(live.any()):
            break
        onehot = (packed == best[:, :, None, :]).to(P.dtype)  # (G, R, k, n)
        counts = onehot.sum(dim=3).double()  # exact: integers far below 2^24
        sums = torch.matmul(onehot, X[:, None]).double()  # (G, R, k, d)
        new_centers = sums / counts.clamp(min=1.0)[:, :, :, None]
        empty = (counts == 0) & live[:, :, None]
        if bool(empty.any()):  # rare: re-seed empty clusters at far points, as the numpy path
            for g, r in torch.nonzero(empty.any(dim=2)).tolist():
                dist = P.distance(best[g, r]).double().clone()
                for c in torch.nonzero(empty[g, r])[:, 0].tolist():
                    far = int(dist.argmax())
                    new_centers[g, r, c] = X[g, far].double()
                    dist[far] = -1.0
        shift = ((new_centers - centers) ** 2).sum(dim=(2, 3))
        settled = torch.where(live, shift <= shift_tol[:, None], settled)
        centers = torch.where(live[:, :, None, None], new_centers, centers)
    own = centers.gather(2, labels[:, :, :, None].expand(-1, -1, -1, d))  # (G, R, n, d)
    diff = X[:, None].double() - own
    return labels, (diff * diff).sum(dim=(2, 3))


def kmeans_restarts_torch(
    Xs: Sequence[np.ndarray],
    k: int,
    n_init: int,
    rngs: Sequence[np.random.Generator],
    device="cpu",
    max_iter: int = 300,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """`kmeans_restarts` on ``G`` point sets of one shape at once, as tensor ops on ``device``.

    ``Xs``: ``G`` arrays ``(n, d)`` (e.g. the spectral embeddings of ``G`` shuffled graphs);
    ``rngs``: one generator per set, drawn from exactly as `kmeans_restarts` draws. Returns
    ``labels`` ``(G, n_init, n)`` and ``inertia`` ``(G, n_init)`` in each set's units.
    """
    import torch

    G = len(Xs)
    if G == 0:
        return np.zeros((0, n_init, 0), dtype=np.int64), np.zeros((0, n_init))
    n, _ = np.shape(Xs[0])
    if any(np.shape(x) != np.shape(Xs[0]) for x in Xs):
        raise ValueError("every point set of a batch must have the same shape")
    saved = [copy.deepcopy(r) for r in rngs]
    trials = 2 + int(np.log(k))
    first = np.stack([r.integers(n, size=n_init) for r in rngs])
    # (G, k - 1, R, trials): one call draws the same numbers as the numpy path's k - 1 calls of (R, trials)
    uniforms = np.stack([r.random((k - 1, n_init, trials)) for r in rngs])
    X = np.asarray(np.stack([np.asarray(x, dtype=np.float64) for x in Xs]))
    peak = np.abs(X).max(axis=(1, 2)) if X.size else np.zeros(G)
    X = X / np.where(peak > 0, peak, 1.0)[:, None, None]
    shift_tol = tol * np.var(X, axis=1).mean(axis=1)
    dev = torch.device(device)
    with _ieee_float32():
        P = _Batch(torch.as_tensor(X, device=dev), k)
        centers, flat = _plus_plus(
            P,
            k,
            torch.as_tensor(first, device=dev),
            torch.as_tensor(uniforms, device=dev),
        )
        labels, inertia = _lloyd(P, centers, max_iter, torch.as_tensor(shift_tol, device=dev))
    labels, inertia = labels.cpu().numpy(), inertia.cpu().numpy()
    inertia = inertia * np.where(peak > 0, peak * peak, 1.0)[:, None]
    for g in np.flatnonzero(flat.cpu().numpy()):  # data-dependent draws: the numpy path, exactly
        labels[g], inertia[g] = kmeans_restarts(Xs[g], k, n_init, saved[g], max_iter=max_iter, tol=tol)
    return labels, inertia
