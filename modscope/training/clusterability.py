"""Training for clusterability ([spec §7][spec-7]): the spectral regulariser and the block clusterability
loss.

**Spectral** (Filan et al. 2021, "Clusterability in Neural Networks", arXiv:2103.03386; reference
code ``src/cluster_gradient.py`` of dfilan/clusterability_in_neural_networks). The penalty is
``lam * sum_{i=2}^{K+1} mu_i``, with ``mu_1 <= mu_2 <= ...`` the eigenvalues of the symmetric
normalised Laplacian ``L = I - D^-1/2 A D^-1/2`` of the MLP's unit graph ([spec §1][spec-1]: one node per
unit, input and output units included, ``A = |W|`` between consecutive layers, biases not edges,
degree-0 nodes removed, exactly as `modscope.clustering` scores it). K eigenvalues near 0 mean K + 1
nearly disconnected clusters, so ``K = k - 1`` for ``k`` clusters (K = 3 for 4, K = 11 for 12).

*The eigenvalues.* The graph of a layered net is bipartite (even layers against odd ones), so
``D^-1/2 A D^-1/2 = [[0, B], [B^T, 0]]`` and its top eigenvalues are the top singular values
``sigma_i`` of the block ``B``, found from the small Gram matrix ``G = B^T B`` of the smaller side
(``m x m``: 522 for 784-256x4-10, never the 1818 x 1818 graph): ``mu_i = 1 - sigma_i`` while
``i <= m``. ``G`` is assembled layer by layer (a chain's ``G`` is block tridiagonal);
`spectral_penalty` builds it with autograd and differentiates through ``torch.linalg.eigh``.

*Which eigenvalues.* ``mu_1 = 0`` always (``sqrt(degree)`` is an eigenvector), so the sum skips the
first eigenvalue only, as the reference does (``evals[1:K+1]``). A graph of ``c`` connected
components has ``c`` zero eigenvalues: the ``c - 1`` beyond the first stay in the sum (they are 0
and cost nothing, which is what "c nearly disconnected parts" should cost). Because ``mu_1`` is 0
for every weight, the sum from 2 equals the sum from 1, and the gradient is taken of the latter:
``sum_{i<=K+1} d mu_i = tr(P dL)`` with ``P`` the projector on the K + 1 lowest eigenvectors. That
is basis-free, so repeated eigenvalues *inside* the set (several components, symmetric nets) are
harmless; only a tie across the boundary (``mu_{K+1} == mu_{K+2}``) leaves the sum without a
derivative, and then the gradient of the eigenvectors ``eigh`` returned is used (one of the
one-sided derivatives). Only eigenvalue gradients are taken, never eigenvector ones, so ``eigh``'s
backward has no ``1 / (lambda_i - lambda_j)`` terms and stays finite at any multiplicity.

*Isolated nodes* (every incident weight exactly 0, e.g. after pruning) are left out of the graph,
as in scoring: their ``D^-1/2`` is 0 and they are dropped from ``G``; their weights are 0, and
``d|w|/dw = sign(0) = 0`` gives them no gradient. The smaller side needs at least K + 1 active
units (checked when the config is resolved, and again if pruning leaves fewer).

*The gradient in training.* At eigenvectors ``z_i`` of ``N = D^-1/2 A D^-1/2`` (unit, over the
active nodes), ``d mu_i = -z_i^T dN z_i`` (Hellmann-Feynman: the derivative of an eigenvalue with
its eigenvector held fixed). With ``zh = D^-1/2 z`` and ``c_x = d_x^-1 sum_i zh_ix (A zh_i)_x``,
for the edge of weight ``w`` between units ``x`` (layer l + 1) and ``y`` (layer l)::

    d/dw sum_i mu_i = sign(w) * (c_x + c_y - 2 sum_i zh_ix zh_iy)

This is the reference's closed form (its ``dy/dL = sum_i v_i v_i^T`` chained through ``L``, ``A``
and ``|W|``), which the reference evaluates in a double Python loop over every weight and, by a
slip, at **half** its value (its two ``0.5`` factors and single direct term: its training runs
as if lambda were halved); here it is one matrix product per layer (the ``c`` terms ride along as
two extra columns) and the full value. `SpectralClusterability` solves the Gram eigenproblem
(no autograd) for the K + 1 vectors and adds ``lam`` times this gradient after ``backward``; it is
autograd's gradient through ``eigh`` to rounding (tested), at a fraction of the cost.

*Reusing the eigenvectors* (``every = N > 1``): the eigenproblem is solved every N steps (and
whenever the set of isolated nodes changes); in between, the same formula with the last vectors is
the exact gradient of ``sum_i z_i^T L z_i`` for those fixed ``z``, which by Ky Fan's inequality is
an upper bound of ``sum_{i<=K+1} mu_i`` (the penalty) that touches it when the vectors are fresh.
After every step the vectors also take one step of subspace iteration with ``(I + N) / 2`` (the
``N z`` it needs is a by-product of the gradient; one QR of ``n_nodes x (K + 1)``), so they follow
the weights instead of going stale; the gradient depends only on their span.

*Weight normalisation* (``normalize=True``, off by default): before every step each hidden ReLU
unit's incoming weights and bias are scaled to L2 norm ``sqrt 2`` and its outgoing weights by the
inverse, the reference's ``NormalizeWeights`` callback. The network's function is unchanged (ReLU is
positively homogeneous) but the graph is not, so without it the optimiser can lower the penalty by
rescaling units. ReLU networks only.

**Block clusterability** (Golechha et al., "Training Neural Networks for Modularity aids
Interpretability", arXiv:2409.15747, and "Modular Training of Neural Networks aids
Interpretability", arXiv:2502.02470; the definition as implemented in their code, 7vik/modularity
``modularity.py`` and 7vik/nn-modularity): for one weight matrix and ``k`` paired clusters of its
input and output units, ``C(W) = sum_c sum_{i in U_c, j in V_c} W_ij^2 / sum_ij W_ij^2``, the share
of the squared weights inside the ``k`` diagonal blocks (1 / k for weights spread evenly); the
loss is ``task loss - lam * mean_W C(W)`` (their lam 20-40, k = 4). `BlockClusterability` adds
``lam * (1 - mean C)``: the same gradient, and a penalty that is 0 for perfectly block-diagonal
weights. Clusters are fixed contiguous equal blocks of unit indices (their "FixCluster" runs; the
remainder of a width not divisible by ``k`` joins the last block, as their ``cnn.ipynb`` does), so
blocks line up across layers. Their other regime, clusters found once by a bipartite spectral
clustering of a partly trained layer, pairs row and column clusters by k-means label index (an
arbitrary pairing) and is not offered. Which matrices: every hidden-to-hidden matrix (default;
their MLP/CNN runs penalise ``fc2``, a 64 x 64 hidden matrix) or every Linear (``"all"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ModscopeError
from ..runtime.threads import blas_threads
from .bimt import _add_grad
from .models import MLP
from .strategy import Regulariser

__all__ = [
    "CLUSTER_LOSSES",
    "BlockClusterability",
    "SpectralClusterability",
    "block_clusterability",
    "cluster_regulariser",
    "contiguous_blocks",
    "gram_side_layers",
    "laplacian_eigenvalues",
    "laplacian_eigenvectors",
    "normalize_relu_units",
    "rayleigh_gradient",
    "spectral_penalty",
]

# -- the layered graph in torch ------------------------------------------------------------------
def gram_side_layers(widths: Sequence[int]) -> tuple[int, ...]:
    """The layers (0 = input) on the smaller side of the bipartite unit graph, whose Gram matrix is
    solved: the odd layers unless the even ones have fewer units (a tie goes to the odd layers, as
    in `modscope.clustering.embedding.gram_side`)."""
    odd = tuple(range(1, len(widths), 2))
    even = tuple(range(0, len(widths), 2))
    return odd if sum(widths[i] for i in odd) <= sum(widths[i] for i in even) else even


def _widths(weights: Sequence[torch.Tensor]) -> tuple[int, ...]:
    if not weights:
        raise ModscopeError("no weight matrices")
    widths = [int(weights[0].shape[1])]
    for i, w in enumerate(weights):
        if w.ndim != 2 or int(w.shape[1]) != widths[-1]:
            raise ModscopeError(f"weight {i} of shape {tuple(w.shape)} does not chain (out x in layout)")
        widths.append(int(w.shape[0]))
    return tuple(widths)


def _degrees(a: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer ``(n_l,)``: the sum of ``|w|`` over each unit's edges (``a[l] = |W_l|``, out x in)."""
    d: list[torch.Tensor | None] = [None] * (len(a) + 1)
    for l, m in enumerate(a):
        for at, part in ((l, m.sum(0)), (l + 1, m.sum(1))):
            d[at] = part if d[at] is None else d[at] + part
    return d  # type: ignore[return-value]


def _inv_sqrt(d: torch.Tensor) -> torch.Tensor:
    """``d^-1/2``, 0 where ``d == 0`` (isolated units), with a finite gradient everywhere."""
    on = d > 0
    return torch.where(on, torch.where(on, d, torch.ones_like(d)).rsqrt(), torch.zeros_like(d))


def _gram(M: Sequence[torch.Tensor], side: Sequence[int], n_layers: int) -> torch.Tensor:
    """``G = B^T B`` of the side layers, from the scaled blocks ``M[l] = D^-1/2 |W_l| D^-1/2``
    (``n_{l+1} x n_l``): diagonal blocks ``M_s^T M_s + M_{s-1} M_{s-1}^T``, off-diagonal blocks
    ``G[s, s+2] = (M_{s+1} M_s)^T`` (the units two layers apart share the layer between)."""
    last = n_layers - 1
    size = {s: (M[s].shape[1] if s < last else M[s - 1].shape[0]) for s in side}

    def block(s: int, s2: int) -> torch.Tensor:
        if s2 == s:  # through the layer above (s < last) and the one below (s >= 1)
            terms = ([M[s].T @ M[s]] if s < last else []) + ([M[s - 1] @ M[s - 1].T] if s >= 1 else [])
            return terms[0] if len(terms) == 1 else terms[0] + terms[1]
        if s2 == s + 2:
            return (M[s + 1] @ M[s]).T
        if s2 == s - 2:
            return M[s - 1] @ M[s - 2]
        return M[0].new_zeros(size[s], size[s2])

    return torch.cat([torch.cat([block(s, s2) for s2 in side], 1) for s in side], 0)


def _side_gram(weights: Sequence[torch.Tensor], n: int):
    """``(widths, side, M, G, keep)``: the chain's widths, the layers of the smaller side, the scaled
    blocks and that side's Gram matrix over its active units (``keep``: ``(side units,)`` bool, which
    are active); refuses in one line fewer than ``n`` active units."""
    widths = _widths(weights)
    side = gram_side_layers(widths)
    a = [w.abs() for w in weights]
    d = _degrees(a)  # degrees, d^-1/2 and the scaled blocks, per layer
    dinv = [_inv_sqrt(x) for x in d]
    M = [m * dinv[l + 1][:, None] * dinv[l][None, :] for l, m in enumerate(a)]
    G = _gram(M, side, len(widths))
    keep = torch.cat([d[s] > 0 for s in side])
    m = int(keep.sum())
    if m < n:
        raise ModscopeError(
            f"{n - 1} cluster eigenvalues need {n} connected units on the smaller side of the layered "
            f"graph, which has {m} (widths {'-'.join(map(str, widths))})"
        )
    if m < keep.numel():
        idx = torch.nonzero(keep).squeeze(1)
        G = G.index_select(0, idx).index_select(1, idx)
    return widths, side, M, G, keep


def laplacian_eigenvalues(weights: Sequence[torch.Tensor], n: int) -> torch.Tensor:
    """``(n,)``: the ``n`` smallest eigenvalues ``mu_1 <= ... <= mu_n`` of the normalised Laplacian
    of the ``|W|`` chain graph (``weights``: ``W_l`` out x in, input first), isolated units removed,
    differentiable (autograd through ``torch.linalg.eigh`` of the smaller side's Gram matrix).

    The same numbers as the eigenvalues of `modscope.clustering.embedding.spectral_embedding` with
    ``n_components=n`` on the same weights. Individual eigenvalues have no derivative where they
    are repeated; sums over whole groups of equal eigenvalues do (see `spectral_penalty`).
    """
    G = _side_gram(weights, n)[3]
    m = G.shape[0]
    s2 = torch.linalg.eigh(G)[0]  # ascending; only eigenvalues are used: a stable backward
    top = s2[m - n:].flip(0)
    # sigma^2 <= eps (B's null space among the top n: fewer than n independent units) is held at eps,
    # where the clamp passes no gradient, instead of the unbounded one of sqrt at 0
    return 1.0 - top.clamp_min(torch.finfo(top.dtype).eps).sqrt()


def spectral_penalty(weights: Sequence[torch.Tensor], eigs: int) -> torch.Tensor:
    """The spectral clusterability penalty ``sum_{i=2}^{K+1} mu_i`` (``K = eigs``), a 0-d tensor
    differentiable in ``weights`` (``W_l`` out x in; biases are not part of the graph).

    Its value is the sum of the eigenvalues after the first; its gradient is that of
    ``sum_{i=1}^{K+1} mu_i`` (the same function: ``mu_1 = 0`` for every weight), which is defined
    whenever ``mu_{K+1} < mu_{K+2}``, also when eigenvalues inside the set repeat.
    """
    mu = laplacian_eigenvalues(weights, int(eigs) + 1)
    return mu.sum() - mu[0].detach()


@torch.no_grad()
def laplacian_eigenvectors(
    weights: Sequence[torch.Tensor], n: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(mu, z)``: the ``n`` smallest Laplacian eigenvalues ``(n,)`` (ascending) and their unit
    eigenvectors of ``N = D^-1/2 |A| D^-1/2`` as one ``(n_l, n)`` block per layer (zero rows at
    isolated units), computed in ``dtype``. No autograd: the Gram matrix of the smaller side is
    solved (LAPACK's subset ``eigh`` on the CPU, ``torch.linalg.eigh`` elsewhere) and the other side
    follows as ``u = B v / sigma``; each vector is ``[u; v] / sqrt 2`` (``[0; v]`` for ``sigma = 0``).
    """
    widths, side, M, G, keep = _side_gram([w.detach().to(dtype) for w in weights], n)
    n_layers, m = len(widths), G.shape[0]
    if G.device.type == "cpu":
        import scipy.linalg as sla

        # one BLAS thread: a few hundred rows gain little from more, and a second thread pool beside
        # torch's own (spinning between its ops) slowed two-thread training steps tenfold here
        with blas_threads(1):
            s2_np, V_np = sla.eigh(G.numpy(), subset_by_index=[m - n, m - 1], overwrite_a=True,
                                   check_finite=False)
        s2, V = torch.from_numpy(s2_np), torch.from_numpy(V_np)
    else:
        s2, V = torch.linalg.eigh(G)
        s2, V = s2[m - n:], V[:, m - n:]
    s2, V = s2.flip(0), V.flip(1)
    sigma = s2.clamp_min(0.0).sqrt()
    full = G.new_zeros(keep.numel(), n)
    full[keep] = V
    z = dict(zip(side, torch.split(full, [widths[s] for s in side]), strict=True))  # layer -> (n_l, n)
    null = s2 <= m * torch.finfo(s2.dtype).eps  # a null vector of B: eigenvalue 0 of N, u = 0
    scale = torch.where(null, torch.zeros_like(sigma), 1.0 / torch.where(null, torch.ones_like(sigma), sigma))
    for t in range(n_layers):
        if t in side:
            continue
        u = G.new_zeros(widths[t], n)
        if t >= 1:
            u += M[t - 1] @ z[t - 1]
        if t < n_layers - 1:
            u += M[t].T @ z[t + 1]
        z[t] = u * scale * math.sqrt(0.5)  # normalised: [u; v] / sqrt 2
    root = torch.where(null, torch.ones_like(sigma), torch.full_like(sigma, math.sqrt(0.5)))
    return 1.0 - sigma, [z[t] * root if t in side else z[t] for t in range(n_layers)]


@torch.no_grad()
def rayleigh_gradient(
    weights: Sequence[torch.Tensor],
    z: Sequence[torch.Tensor],
    abs_weights: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(value, grads)`` of ``f(W) = sum_i z_i^T L(|W|) z_i`` for fixed vectors ``z`` (one
    ``(n_l, n)`` block per layer, as `laplacian_eigenvectors` returns them), without autograd.

    ``grads[l]`` (shaped like ``W_l``) is ``sign(W) * (c_x + c_y - 2 sum_i zh_ix zh_iy)`` with
    ``zh = D^-1/2 z`` and ``c = D^-1 (zh * (A zh)).sum(1)``: the closed form of the reference, one
    matrix product per layer. At eigenvectors it is the gradient of the sum of their eigenvalues
    (Hellmann-Feynman) and ``value`` (0-d) that sum. ``L`` is over the active units (isolated ones
    get ``zh = 0``, ``c = 0`` and no gradient). ``abs_weights``: ``|W|`` when already computed.
    """
    a = [w.abs() for w in weights] if abs_weights is None else list(abs_weights)
    value, grads, _ = _rayleigh(weights, z, a, _degrees(a))
    return value, [g.mul_(w.sign()) for g, w in zip(grads, weights, strict=True)]


def _rayleigh(weights, z, a, d, scale: float = 1.0):
    """`rayleigh_gradient` times ``scale`` *before* the ``sign(W)`` factor, and ``N z`` per layer
    (``(n_l, n)``, for the subspace step)."""
    dtype = weights[0].dtype
    dinv = [_inv_sqrt(x) for x in d]
    zs = [zz.to(dtype) for zz in z]
    zh = [zz * di[:, None] for zz, di in zip(zs, dinv, strict=True)]
    Az = [torch.zeros_like(x) for x in zh]
    for l, m in enumerate(a):
        Az[l + 1] += m @ zh[l]
        Az[l] += (zh[l + 1].T @ m).T
    quad = [(x * y).sum(1) for x, y in zip(zh, Az, strict=True)]  # per unit: sum_i zh (A zh)
    # ||z||^2 over the active units minus z^T N z
    value = sum(((zz * zz).sum(1) * (di > 0) - q).sum() for zz, q, di in zip(zs, quad, dinv, strict=True))
    grads = []
    for l in range(len(weights)):
        c_out, c_in = quad[l + 1] * dinv[l + 1].square(), quad[l] * dinv[l].square()
        left = torch.cat([zh[l + 1], c_out[:, None], torch.ones_like(c_out)[:, None]], 1)  # (n_{l+1}, n+2)
        right = torch.cat([-2.0 * zh[l], torch.ones_like(c_in)[:, None], c_in[:, None]], 1)  # (n_l, n+2)
        grads.append((left * scale) @ right.T)
    nz = [y * di[:, None] for y, di in zip(Az, dinv, strict=True)]  # N z = D^-1/2 A zh
    return value, grads, nz


def _subspace_step(z: Sequence[torch.Tensor], nz: Sequence[torch.Tensor],
                   active: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One step of subspace iteration with ``(I + N) / 2`` (eigenvalues ``1 - mu / 2`` in [0, 1],
    largest for the smallest ``mu``): ``orth(z + N z)`` over the active units. The gradient depends
    only on the span of the vectors, so no Rayleigh-Ritz rotation is needed."""
    y = torch.cat([(a + b) * on[:, None] for a, b, on in zip(z, nz, active, strict=True)])
    q = torch.linalg.qr(y)[0]
    return list(torch.split(q, [int(x.shape[0]) for x in z]))


# -- weight normalisation (the reference's ReLU-symmetry callback) -------------------------------
@torch.no_grad()
def normalize_relu_units(model: MLP) -> None:
    """Scale each hidden unit's incoming weights and bias to L2 norm ``sqrt 2`` and its outgoing
    weights by the inverse (a ReLU net computes the same function). Units whose incoming weights and
    bias are all 0 are left alone."""
    for layer, after in pairwise(model.layers):  # the hidden units are layer's outputs, after's inputs
        sq = layer.weight.square().sum(1)
        if layer.bias is not None:
            sq = sq + layer.bias.square()
        s = sq.sqrt() / math.sqrt(2.0)
        s = torch.where(s > 0, s, torch.ones_like(s))
        layer.weight.div_(s[:, None])
        if layer.bias is not None:
            layer.bias.div_(s)
        after.weight.mul_(s[None, :])


def _number(name: str, value: Any, *, low: float = 0.0) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ModscopeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or x < low:
        raise ModscopeError(f"{name} must be a finite number >= {low:g}, got {value}")
    return x


def _whole(value: Any) -> bool:
    """An integral number: an int, a numpy integer or a finite float without a fraction (not a bool, a
    string, None or a NaN, which int() would refuse with a TypeError / ValueError or accept as 0 / 1)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer | float):
        return False
    return math.isfinite(value) and int(value) == value


def _count(name: str, value: Any, low: int) -> int:
    # a string, None or a NaN is a one-line refusal too, not int()'s TypeError / ValueError
    if not _whole(value) or value < low:
        raise ModscopeError(f"{name} must be an integer >= {low}, got {value}")
    return int(value)


def _integer(name: str, value: Any, low: int) -> int:
    """`_count` with a value that is not a whole number shown as its repr (a string quoted)."""
    if not _whole(value):
        raise ModscopeError(f"{name} must be an integer >= {low}, got {value!r}")
    return _count(name, value, low)


# -- the strategies ------------------------------------------------------------------------------
class SpectralClusterability(Regulariser):
    """Filan et al.'s spectral regulariser: ``lam * sum_{i=2}^{K+1} mu_i`` of the ``|W|`` graph.

    ``lam``: weight of the penalty (>= 0; the reference's ``0.1`` with K = 3 multiplies the *mean*
    of the eigenvalues and its gradient is half the true one, so ``lam = 0.1 / 3 / 2 = 0.0167``
    here trains as the reference did). ``eigs``: K, the number of eigenvalues after the trivial
    first (K = k - 1 for k clusters). ``every``: solve the eigenproblem every that many steps and
    reuse the eigenvectors in between (1 = every step, the exact gradient). ``normalize``: rescale
    hidden ReLU units before every step (the reference's weight normalisation).
    """

    name = "spectral"

    def __init__(self, lam: float, eigs: int = 3, every: int = 1, normalize: bool = False) -> None:
        self.lam = _number("cluster-reg lambda", lam)
        self.eigs = _integer("cluster eigs", eigs, 1)
        self.every = _integer("cluster-reg every", every, 1)
        self.normalize = bool(normalize)
        self._z: list[torch.Tensor] | None = None
        self._active: list[torch.Tensor] | None = None
        self.refreshes = 0
        self.value: torch.Tensor | None = None  # the last step's bound (0-d), for monitoring

    def params(self) -> dict[str, Any]:
        return {"lam": self.lam, "eigs": self.eigs, "every": self.every, "normalize": self.normalize}

    def check(self, widths: Sequence[int], activation: str) -> None:
        """One-line errors for a network it cannot regularise (too few units, non-ReLU with
        ``normalize``)."""
        side = gram_side_layers(widths)
        m = sum(widths[s] for s in side)
        if self.eigs + 1 > m:
            raise ModscopeError(
                f"cluster eigs K = {self.eigs} needs K + 1 = {self.eigs + 1} eigenvalues, but the smaller "
                f"side of the layered graph (widths {'-'.join(map(str, widths))}) has {m} units"
            )
        if self.normalize and activation != "relu":
            raise ModscopeError(
                f"cluster-reg normalize needs ReLU units (it rescales them), not {activation}"
            )

    def start(self, model: MLP, steps: int) -> None:
        self._z, self._active = None, None
        self.refreshes = 0
        self.value = None

    def before_step(self, model: MLP, step: int) -> None:
        if self.normalize:
            normalize_relu_units(model)

    @torch.no_grad()
    def add_grad(self, model: MLP, step: int) -> None:
        if self.lam == 0:
            return
        weights = [layer.weight for layer in model.layers]
        a = [w.abs() for w in weights]
        d = _degrees(a)
        active = [x > 0 for x in d]
        fresh = self._z is None or step % self.every == 0 or any(
            not torch.equal(x, y) for x, y in zip(active, self._active, strict=True))
        if fresh:  # in the weights' precision (float32: eigenvectors to ~1e-5, ample for a gradient)
            self._z = laplacian_eigenvectors(weights, self.eigs + 1, weights[0].dtype)[1]
            self._active = active
            self.refreshes += 1
        self.value, grads, nz = _rayleigh(weights, self._z, a, d, self.lam)
        for w, g in zip(weights, grads, strict=True):  # grad += lam * g * sign(w)
            _add_grad(w, g.mul_(w.sign()), 1.0)
        if self.every > 1:  # follow the moving eigenvectors until the next refresh
            self._z = _subspace_step(self._z, nz, active)

    def finish(self, model: MLP) -> dict[str, Any]:
        with torch.no_grad():
            mu = laplacian_eigenvalues([layer.weight.double() for layer in model.layers], self.eigs + 1)
        return {"cluster_penalty": float(mu[1:].sum()), "cluster_refreshes": self.refreshes}


def contiguous_blocks(n: int, k: int) -> torch.Tensor:
    """``(n,)`` cluster ids of ``n`` units in ``k`` contiguous blocks of ``n // k`` units, the
    remainder joining the last block."""
    if n < k:
        raise ModscopeError(f"cannot split {n} units into {k} blocks")
    return torch.clamp(torch.arange(n) // (n // k), max=k - 1)


def block_clusterability(weight: torch.Tensor, k: int) -> torch.Tensor:
    """``C(W)``: the share of ``sum W^2`` inside the ``k`` diagonal blocks of contiguous clusters of
    the output and input units (``weight`` out x in); differentiable; 0-d."""
    rows = contiguous_blocks(int(weight.shape[0]), k).to(weight.device)
    cols = contiguous_blocks(int(weight.shape[1]), k).to(weight.device)
    sq = weight.square()
    inside = (rows[:, None] == cols[None, :]).to(weight.dtype)
    return (sq * inside).sum() / sq.sum().clamp_min(torch.finfo(weight.dtype).tiny)


class BlockClusterability(Regulariser):
    """Golechha et al.'s clusterability loss: ``lam * (1 - mean_W C(W))`` over the penalised
    weight matrices, ``C`` the share of the squared weights inside ``clusters`` contiguous diagonal
    blocks (`block_clusterability`). ``layers``: ``"hidden"`` (hidden-to-hidden matrices, default)
    or ``"all"`` (every Linear). Their settings: lam 20 to 40, 4 clusters."""

    name = "golechha"

    def __init__(self, lam: float, clusters: int = 4, layers: Literal["hidden", "all"] = "hidden") -> None:
        self.lam = _number("cluster-reg lambda", lam)
        self.clusters = _integer("cluster-reg clusters", clusters, 2)
        if layers not in ("hidden", "all"):
            raise ModscopeError(f"cluster-reg layers must be 'hidden' or 'all', got {layers!r}")
        self.layers = layers
        self.value: float | None = None

    def params(self) -> dict[str, Any]:
        return {"lam": self.lam, "clusters": self.clusters, "layers": self.layers}

    def _which(self, n_matrices: int) -> range:
        return range(1, n_matrices - 1) if self.layers == "hidden" else range(n_matrices)

    def check(self, widths: Sequence[int], activation: str) -> None:
        """One-line errors: no matrix to penalise, or a layer narrower than the number of clusters."""
        which = self._which(len(widths) - 1)
        if not which:
            raise ModscopeError("the golechha loss on hidden-to-hidden matrices needs two hidden layers; "
                                 "penalise every layer instead (layers 'all')")
        for l in which:
            for n in (widths[l], widths[l + 1]):
                if n < self.clusters:
                    raise ModscopeError(
                        f"cannot split a layer of {n} units into {self.clusters} clusters "
                        f"(widths {'-'.join(map(str, widths))})"
                    )

    def start(self, model: MLP, steps: int) -> None:
        self.value = None

    def clusterability(self, model: MLP) -> torch.Tensor:
        """``mean C`` over the penalised matrices (differentiable, 0-d)."""
        layers = model.layers
        cs = [block_clusterability(layers[l].weight, self.clusters) for l in self._which(len(layers))]
        return torch.stack(cs).mean()

    def penalty(self, model: MLP, step: int) -> torch.Tensor | None:
        if self.lam == 0:
            return None
        c = self.clusterability(model)
        self.value = float(c.detach())
        return self.lam * (1.0 - c)

    def finish(self, model: MLP) -> dict[str, Any]:
        with torch.no_grad():
            return {"clusterability": float(self.clusterability(model))}


CLUSTER_LOSSES: dict[str, type[Regulariser]] = {
    "spectral": SpectralClusterability,
    "golechha": BlockClusterability,
}


def cluster_regulariser(spec: Regulariser | dict[str, Any] | None) -> Regulariser | None:
    """A strategy object from itself or from a dict ``{"loss": "spectral" | "golechha", **params}``
    (``"name"`` is accepted for ``"loss"``, so a checkpoint's record round-trips)."""
    if spec is None or isinstance(spec, Regulariser):
        return spec
    if not isinstance(spec, dict):
        raise ModscopeError(f"cluster_reg must be a clusterability strategy or a dict, got {spec!r}")
    opts = dict(spec)
    kind = opts.pop("loss", None) or opts.pop("name", None) or "spectral"
    opts.pop("name", None)
    if kind not in CLUSTER_LOSSES:
        raise ModscopeError(f"unknown cluster loss {kind!r}; choose from {', '.join(CLUSTER_LOSSES)}")
    try:
        return CLUSTER_LOSSES[kind](**opts)
    except TypeError as e:
        raise ModscopeError(f"cluster loss {kind}: {e}") from None
