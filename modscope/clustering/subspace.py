"""The top eigenpairs of batched symmetric operators on a torch device, by Chebyshev-filtered
subspace iteration: only matrix products with a block of vectors, so a GPU runs it at full speed
where a dense ``eigh`` of a large matrix (or a stack of them) is latency-bound.

Each round applies a Chebyshev polynomial of the operator that is small on the unwanted part of
the spectrum ``[lo, cut]`` (``cut`` the block's lowest Ritz value) and grows fast above it, then
orthonormalises the block and takes the Rayleigh-Ritz pairs. Repeated eigenvalues (a graph in
several components has eigenvalue 1 once per component) cost nothing extra, unlike Lanczos.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["topk_eigh"]


def _ritz(apply: Callable, Q):
    """Rayleigh-Ritz on the orthonormal block ``Q`` ``(B, n, p)``: values descending, vectors, residuals."""
    import torch

    Y = apply(Q)
    H = Q.mT @ Y
    theta, S = torch.linalg.eigh((H + H.mT) / 2)
    theta, S = theta.flip(-1), S.flip(-1)
    Q, Y = Q @ S, Y @ S
    resid = torch.linalg.vector_norm(Y - Q * theta[:, None, :], dim=1)  # (B, p)
    return theta, Q, resid


def topk_eigh(
    apply: Callable,
    shape: tuple[int, int],
    k: int,
    *,
    lo: float,
    hi: float,
    device,
    seed: int = 0,
    tol: float = 1e-10,
    degree: int = 12,
    max_rounds: int = 200,
    extra: int | None = None,
):
    """The ``k`` largest eigenpairs of ``B`` symmetric ``n x n`` operators at once.

    ``apply(X)``: the operators times a block ``X`` ``(B, n, p)`` -> ``(B, n, p)``, float64 on
    ``device``; ``shape`` ``(B, n)``; every eigenvalue lies in ``[lo, hi]``. Returns
    ``(values (B, k) descending, vectors (B, n, k), converged (B,) numpy bool)``: ``converged[b]``
    when every residual ``||A v - lambda v|| <= tol * max(|lo|, |hi|)``; an operator still short of
    it after ``max_rounds`` rounds is marked ``False`` (its caller then solves it another way,
    never uses it as it is). The start block comes from ``numpy.random.default_rng(seed)``, so a
    run is reproducible.
    """
    import torch

    B, n = shape
    p = min(n, extra if extra is not None else max(2 * k, k + 8))
    rng = np.random.default_rng(seed)
    Q = torch.as_tensor(rng.uniform(-1.0, 1.0, (B, n, p)), dtype=torch.float64, device=device)
    Q, _ = torch.linalg.qr(Q)
    scale = max(abs(lo), abs(hi), 1e-300)
    theta, Q, resid = _ritz(apply, Q)
    for _ in range(max_rounds):
        done = resid <= tol * scale
        if bool(done[:, :k].all()):
            break
        # lock the leading pairs converged in every operator of the batch: the filter then
        # works on the rest, deflated, so a converged large eigenvalue cannot swamp the others
        nlock = int(done.int().cumprod(dim=1).sum(dim=1).min())  # the leading run of converged pairs
        locked, free = Q[:, :, :nlock], Q[:, :, nlock:]

        def deflated(X, locked=locked):
            Y = apply(X)
            return Y - locked @ (locked.mT @ Y) if locked.shape[2] else Y

        # damp [lo, cut], cut the block's lowest Ritz value: the wanted end grows fastest; the
        # degree is kept low enough that the largest free value grows at most 1e10-fold, so the
        # smaller wanted ones stay above rounding
        cut = theta[:, -1].clamp(min=lo + 1e-12 * scale)
        c = ((cut + lo) / 2)[:, None, None]
        e = ((cut - lo) / 2)[:, None, None]
        top = float(((theta[:, nlock] - (cut + lo) / 2) / ((cut - lo) / 2)).max())
        m = degree if top <= 1.0 else int(np.clip(np.arccosh(1e10) / np.arccosh(top), 1, degree))
        prev, cur = free, (deflated(free) - c * free) / e
        for _ in range(m - 1):
            prev, cur = cur, 2.0 * (deflated(cur) - c * cur) / e - prev
            norm = torch.linalg.vector_norm(cur, dim=1, keepdim=True).clamp(min=1e-300)
            prev, cur = prev / norm, cur / norm  # the same scaling keeps the recurrence exact
        if nlock:
            cur = cur - locked @ (locked.mT @ cur)
        Q, _ = torch.linalg.qr(torch.cat([locked, cur], dim=2))
        theta, Q, resid = _ritz(apply, Q)
    return theta[:, :k], Q[:, :, :k], (resid[:, :k] <= tol * scale).all(dim=1).cpu().numpy()  # converged
