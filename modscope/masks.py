"""Differentiable weight masks: which weights does each function need? (Csordás et al. 2021, spec §5)

For a frozen trained network every maskable weight (of ``nn.Linear`` / ``nn.Conv2d`` layers;
biases optionally) gets a logit ``l`` (initially 2). Every forward pass samples a hard mask
by Gumbel-sigmoid with a straight-through estimator::

    s = sigmoid((l + g1 - g2) / tau),   m = 1[s > 0.5] + s - stopgrad(s),   w_eff = w * m

and Adam (lr 1e-2, logits only) minimises the function's task loss plus ``beta * sum(l)``.
The final mask is ``l > 0``. ``g1 - g2`` of two Gumbel(0, 1) draws is a Logistic(0, 1) draw,
so one uniform ``u`` per weight gives it as ``logit(u)``.

Several functions are trained at once: K logit sets, one batch per function per step, and
ONE batched forward through the shared frozen network with K effective weight sets
(``torch.func.vmap`` over ``torch.func.functional_call``). The user's model is never
modified: every effective weight lives in tensors passed to ``functional_call``.

Each mask's randomness (its batches and its Gumbel noise) comes from ``seed`` and the
function's *name* only, so a mask trained together with others equals the same mask
trained alone (up to floating-point summation order in the batched matmul).
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from ._atomic import write_atomic
from .errors import ModscopeError
from .tasks.base import Function, Task

MASKABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)
CONTROL = "control"
FORMAT = "modscope.masks"
FORMAT_VERSION = 1
_EVAL_CHUNK = 8192  # examples per evaluation forward: bounds memory on big test sets


# -- which weights are masked --------------------------------------------------------------------
def maskable_names(model: nn.Module, mask_bias: bool = False) -> list[str]:
    """Parameter names of the weights (and, with ``mask_bias``, biases) of Linear / Conv2d layers,
    in registration order (the forward order for :class:`~modscope.models.MLP`)."""
    names = []
    for mname, mod in model.named_modules():
        if isinstance(mod, MASKABLE):
            prefix = f"{mname}." if mname else ""
            names.append(prefix + "weight")
            if mask_bias and getattr(mod, "bias", None) is not None:
                names.append(prefix + "bias")
    if not names:
        raise ModscopeError("the model has no nn.Linear or nn.Conv2d layer to mask")
    return names


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode and give each its own ``training`` flag back afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def masked(
    model: nn.Module, mask: Mapping[str, torch.Tensor], invert: bool = False
) -> Iterator[nn.Module]:
    """Multiply the named parameters by a hard mask in place (``invert``: by its complement) and
    restore the exact original values on exit, also when the body raises.

    ``mask``: ``{parameter name: bool tensor of the parameter's shape}``, e.g. one entry of
    :func:`load_masks`. Use it to run your own code on a masked model; modscope's own
    evaluations never touch the model (they go through ``functional_call``).
    """
    params = dict(model.named_parameters())
    unknown = [n for n in mask if n not in params]
    if unknown:
        raise ModscopeError(f"mask names parameters the model does not have: {', '.join(unknown)}")
    for n, m in mask.items():
        if tuple(m.shape) != tuple(params[n].shape):
            raise ModscopeError(
                f"mask for {n} has shape {tuple(m.shape)}, the parameter {tuple(params[n].shape)}"
            )
    saved = {n: params[n].detach().clone() for n in mask}
    try:
        with torch.no_grad():
            for n, m in mask.items():
                keep = m.to(device=params[n].device, dtype=torch.bool)
                params[n].mul_((~keep if invert else keep).to(params[n].dtype))
        yield model
    finally:
        with torch.no_grad():
            for n, orig in saved.items():
                params[n].copy_(orig)


# -- the frozen network as a pure function of K effective weight sets ----------------------------
class FrozenNet:
    """``model`` as a function of flat effective weights, batched over K weight sets.

    The maskable weights are flattened and concatenated into ``w`` of shape ``(P,)``;
    ``forward(eff, x)`` takes ``eff`` of shape ``(K, P)`` and ``x`` of shape ``(K, B, ...)``
    (or ``(B, ...)`` shared by all K with ``shared_input=True``) and returns ``(K, B, out)``.
    Everything else (biases, embeddings, buffers) is passed detached, so no gradient or
    state ever reaches ``model``.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], device: str | torch.device = "cpu"):
        params = dict(model.named_parameters())
        self.model = model
        self.names = list(names)
        self.shapes = [tuple(params[n].shape) for n in self.names]
        self.sizes = [int(params[n].numel()) for n in self.names]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        # layer i's weights in the flat (P,) order
        self.spans = [slice(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]
        self.device = torch.device(device)
        self.w = torch.cat([params[n].detach().reshape(-1) for n in self.names]).to(self.device)
        fixed = {**params, **dict(model.named_buffers())}
        self.fixed = {k: v.detach().to(self.device) for k, v in fixed.items() if k not in self.names}

    @property
    def n_weights(self) -> int:
        return int(self.offsets[-1])

    def split(self, eff: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer views ``(K, *shape)`` of effective weights ``eff`` ``(K, P)``."""
        K = eff.shape[0]
        return [eff[:, sl].view(K, *shape) for sl, shape in zip(self.spans, self.shapes, strict=True)]

    def _call(self, ws: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, {**self.fixed, **dict(zip(self.names, ws, strict=True))}, (x,))

    def copy(self) -> FrozenNet:
        """The same frozen network over its own copy of the model: `functional_call` swaps a
        module's parameters while it runs, so concurrent threads each need their own."""
        return FrozenNet(copy.deepcopy(self.model), self.names, self.device)

    def forward(
        self,
        eff: torch.Tensor | Sequence[torch.Tensor],
        x: torch.Tensor,
        shared_input: bool = False,
        batched: bool = False,
    ) -> torch.Tensor:
        """``eff``: ``(K, P)``, or its per-layer ``(K, *shape)`` tensors as `split` gives them.

        ``K = 1`` runs as a plain call unless ``batched``: the batched (vmap) path rounds a
        little differently, and a group of one mask set must match it when it is part of a
        larger run split over threads.
        """
        ws = self.split(eff) if isinstance(eff, torch.Tensor) else list(eff)
        with eval_mode(self.model):
            if ws[0].shape[0] == 1 and not batched:  # a plain call, no vmap batching overhead
                # view, not select: its backward is a view too, not a zero-filled copy
                return self._call([w.view(w.shape[1:]) for w in ws], x if shared_input else x[0])[None]
            return vmap(self._call, in_dims=(0, None if shared_input else 0))(ws, x)

    __call__ = forward


def _hard_mask_weights(z: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = w * 1[z > 0]`` (``sigmoid(z) > 0.5`` iff ``z > 0``), ``(K, P)``."""
    # gt into a float tensor, then scale: 10x faster on CPU than torch.where / bool * float
    return torch.gt(z, 0, out=out).mul_(w)


def _straight_through_grad(
    grad: torch.Tensor, z: torch.Tensor, w: torch.Tensor, tau: float, out: torch.Tensor
) -> torch.Tensor:
    """d loss / d logits from d loss / d (w * m): ``grad * w * s * (1 - s) / tau``, ``s = sigmoid(z)``.

    Fused by hand into ``out`` (the literal formula keeps five ``(K, P)`` intermediates and
    costs twice the element-wise passes). ``z`` is overwritten with ``s``.
    """
    torch.mul(grad, w, out=out)
    torch.ops.aten.sigmoid_backward.grad_input(out, z.sigmoid_(), grad_input=out)
    return out.div_(tau) if tau != 1.0 else out


class _GumbelSigmoidST(torch.autograd.Function):
    """``w * m`` with ``m = 1[z > 0] + s - stopgrad(s)``, ``s = sigmoid(z)``, ``z = (l + noise) / tau``.

    Takes the pre-computed ``z`` (so the caller can build it in place in its noise buffer) and
    the logits only to route the gradient to them. The forward value is exactly
    ``w * 1[z > 0]``; the gradient is that of ``w * s`` with respect to ``l``.
    """

    @staticmethod
    def forward(ctx, logits, z, w, tau):  # noqa: ARG004 - logits only receive the gradient
        ctx.save_for_backward(z, w)
        ctx.tau = tau
        return _hard_mask_weights(z, w, torch.empty_like(z))

    @staticmethod
    def backward(ctx, grad):
        z, w = ctx.saved_tensors
        # z becomes s in place: a second backward through the same graph is refused by
        # autograd's version check on z
        return _straight_through_grad(grad, z, w, ctx.tau, torch.empty_like(z)), None, None, None


def gumbel_sigmoid_weights(
    logits: torch.Tensor, noise: torch.Tensor, w: torch.Tensor, tau: float = 1.0
) -> torch.Tensor:
    """Effective weights ``w * m`` of shape ``(K, P)`` from ``logits`` (K, P), Logistic noise
    ``noise = g1 - g2`` (K, P) and weights ``w`` (P,), with the straight-through gradient."""
    z = (logits.detach() + noise) / tau
    return _GumbelSigmoidST.apply(logits, z, w, float(tau))


# -- functions (data subsets) -------------------------------------------------------------------
@dataclass(frozen=True)
class _FnData:
    name: str
    train_index: torch.Tensor  # (n,) long, on device
    test_x: torch.Tensor
    test_y: torch.Tensor
    groups: tuple[int, ...] | None


def _resolve_functions(
    task: Task, functions: Sequence[str | Function] | Mapping[str, Function] | None
) -> list[Function]:
    if functions is None:
        fns = list(task.functions.values())
    elif isinstance(functions, Mapping):
        fns = list(functions.values())
    else:
        fns = []
        for f in functions:
            if isinstance(f, Function):
                fns.append(f)
            elif f in task.functions:
                fns.append(task.functions[f])
            else:
                known = ", ".join(task.functions) or "none"
                hint = "; per-class masks: --classes / class_functions(task)" if str(
                    f).startswith("not-") else ""
                raise ModscopeError(
                    f"task {task.name} has no function {f!r} (it has: {known}){hint}"
                )
    if not fns:
        raise ModscopeError(f"no functions to mask: task {task.name} defines none and none were given")
    names = [f.name for f in fns]
    if len(set(names)) != len(names):
        raise ModscopeError(f"function names must be unique, got {names}")
    return fns


def _fn_data(task: Task, fn: Function, device: torch.device) -> _FnData:
    n_train = task.x_train.shape[0]
    idx = fn.train_index if fn.train_index is not None else torch.arange(n_train)
    if idx.numel() == 0:
        raise ModscopeError(f"function {fn.name} has no training examples")
    x, y = task.x_test, task.y_test
    if fn.test_index is not None:
        x, y = x[fn.test_index], y[fn.test_index]
    return _FnData(fn.name, idx.long().to(device), x.to(device), y.to(device), fn.groups)


def _stream_seed(seed: int, name: str, stream: int) -> int:
    """A 63-bit seed that depends only on ``seed``, the function name and the stream (0 batches,
    1 Gumbel noise): a mask is the same whether it is trained alone or with others."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()), stream))
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


class _Uniforms:
    """Fills row k of a ``(K, P)`` float32 buffer with U(0, 1) draws from function k's own stream.

    On the CPU the draws come from numpy's PCG64 (about 1.6x faster than torch's mt19937 for
    float32, and the noise is the largest cost of a mask step); elsewhere from a torch generator
    on the device.
    """

    def __init__(self, seeds: Sequence[int], n: int, device: torch.device):
        self.device = device
        if device.type == "cpu":
            self.rngs = [np.random.Generator(np.random.PCG64(s)) for s in seeds]
            self.np_buf = np.empty((len(seeds), n), np.float32)
            self.buf = torch.from_numpy(self.np_buf)  # shares memory with np_buf
        else:
            self.rngs = [torch.Generator(device=device).manual_seed(s) for s in seeds]
            self.buf = torch.empty(len(seeds), n, device=device)

    def draw(self) -> torch.Tensor:
        for k, rng in enumerate(self.rngs):
            if self.device.type == "cpu":
                rng.random(out=self.np_buf[k], dtype=np.float32)
            else:
                torch.rand(self.buf.shape[1], generator=rng, device=self.device, out=self.buf[k])
        return self.buf


# -- training -----------------------------------------------------------------------------------
def _adam(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch build has it (one pass over the (K, P) logits, ~9x faster on
    CPU than the per-op version); the update rule is the same."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def fit_logits(
    net: FrozenNet,
    task: Task,
    fns: Sequence[_FnData],
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-2,
    beta: float | None = None,
    tau: float = 1.0,
    init: float = 2.0,
    seed: int = 0,
    progress: bool = False,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    threads: int = 1,
) -> torch.Tensor:
    """Train K = ``len(fns)`` logit sets together; returns the logits, ``(K, P)`` float32.

    ``callback(step, logits)`` runs after every step (``step`` counts from 1; ``logits`` is
    the live detached tensor: clone it to keep it).

    ``threads > 1`` (CPU only) splits the K mask sets into that many groups, each trained on
    its own thread with its own copy of the frozen network and one intra-op thread. The mask
    sets never interact (own batches, own noise, own Adam state), so every mask's arithmetic
    is the one of the single-thread run and the logits are identical. On a CPU the matrix work
    grows with K whatever the batching; threads are how K masks together cost less than K
    one-mask steps there. torch's process-wide intra-op thread count is 1 while they run.
    """
    dev = net.device
    K, P = len(fns), net.n_weights
    beta = 1e-4 / batch_size if beta is None else beta
    logits = torch.full((K, P), float(init), device=dev)  # updated by hand: not in the graph
    n_groups = max(1, min(int(threads), K)) if dev.type == "cpu" else 1
    fit = dict(steps=steps, batch_size=batch_size, lr=lr, beta=beta, tau=tau, seed=seed, batched=K > 1)
    if n_groups == 1:
        after = None if callback is None else (lambda step: callback(step, logits))
        _fit_group(net, task, fns, logits, progress=progress, after_step=after, desc=f"masks ({K} together)",
                   **fit)
        return logits

    # contiguous groups, so each group's logits are a view of rows of `logits`
    groups = np.array_split(np.arange(K), n_groups)
    state = {"step": 0}

    def report() -> None:  # runs once per step, while every group waits at the barrier
        state["step"] += 1
        callback(state["step"], logits)

    barrier = threading.Barrier(n_groups, action=report) if callback is not None else None
    errors: list[BaseException] = []

    def sync(_: int) -> None:
        barrier.wait()

    def run(i: int, rows: np.ndarray) -> None:
        try:
            _fit_group(
                net.copy(), task, [fns[r] for r in rows], logits[rows[0] : rows[-1] + 1],
                progress=progress and i == 0, after_step=None if barrier is None else sync,
                desc=f"masks ({K} together, {n_groups} threads)", **fit,
            )
        except threading.BrokenBarrierError:
            pass  # another group failed; its error is the one to report
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(e)
            if barrier is not None:
                barrier.abort()

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        workers = [threading.Thread(target=run, args=(i, rows)) for i, rows in enumerate(groups)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        torch.set_num_threads(before)
    if errors:
        raise errors[0]
    return logits


def _fit_group(
    net: FrozenNet,
    task: Task,
    fns: Sequence[_FnData],
    logits: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    beta: float,
    tau: float,
    seed: int,
    batched: bool,
    progress: bool,
    after_step: Callable[[int], None] | None,
    desc: str,
) -> None:
    """Train the logits ``(K, P)`` of one group of mask sets in place, ``steps`` steps."""
    dev = net.device
    K, P, B = len(fns), net.n_weights, batch_size
    opt = _adam([logits], lr)
    batch_gens = [
        torch.Generator(device=dev).manual_seed(_stream_seed(seed, f.name, 0)) for f in fns
    ]
    uniforms = _Uniforms([_stream_seed(seed, f.name, 1) for f in fns], P, dev)
    x_train, y_train = task.x_train.to(dev), task.y_train.to(dev)
    idx = torch.empty(K, B, dtype=torch.long, device=dev)
    # The straight-through step by hand, in buffers kept across steps: the effective weights
    # are a leaf whose gradient autograd fills, and the logits' gradient is computed from it
    # into `grad`. The same arithmetic as `_GumbelSigmoidST`, without a fresh (K, P)
    # allocation (page faults on CPU) for the mask and for the gradient at every step.
    # The leaves are per-layer views of `eff`, so their gradients arrive layer by layer with no
    # concatenation or zero-filled scatter back into a (K, P) tensor.
    eff, grad = torch.empty(K, P, device=dev), torch.empty(K, P, device=dev)
    leaves = [t.requires_grad_() for t in net.split(eff)]
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=desc, unit="step")
    for step in it:
        noise = uniforms.draw()
        for k, f in enumerate(fns):
            pick = torch.randint(f.train_index.numel(), (B,), generator=batch_gens[k], device=dev)
            idx[k] = f.train_index[pick]
        # z = (l + g1 - g2) / tau built in place: Logistic(0, 1) = logit(U(0, 1)) = g1 - g2
        z = noise.logit_(eps=1e-7).add_(logits)
        if tau != 1.0:
            z.div_(tau)
        with torch.no_grad():
            _hard_mask_weights(z, net.w, out=eff)
        out = net(leaves, x_train[idx], batched=batched)  # (K, B, n_out): one forward for all K
        y = y_train[idx]
        loss = sum(task.loss(out[k], y[k], f.groups) for k, f in enumerate(fns))
        for leaf in leaves:
            leaf.grad = None
        loss.backward()
        for leaf, sl in zip(leaves, net.spans, strict=True):
            _straight_through_grad(leaf.grad.view(K, -1), z[:, sl], net.w[sl], float(tau), out=grad[:, sl])
        logits.grad = grad.add_(beta)  # plus the gradient of beta * sum(l)
        opt.step()
        if after_step is not None:
            after_step(step + 1)


# -- measures -----------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def overlap_measures(
    masks: torch.Tensor, names: Sequence[str], function_rows: Sequence[int] | None = None
) -> dict[str, dict]:
    """Kept fraction, IoU, IoMin and shared fraction of bool masks ``(K, P)``.

    ``iou`` / ``iomin`` have keys ``"f|g"`` for every pair f before g in ``names``. ``shared``
    of mask i is ``|M_i ∧ ∪_j M_j| / |M_i|`` over the rows ``j != i`` in ``function_rows``
    (default all; modscope leaves the control mask out of the union). Undefined ratios
    (empty denominators) are ``None``.
    """
    m = masks.to(torch.float64)
    K, P = m.shape
    rows = list(range(K)) if function_rows is None else list(function_rows)
    size = m.sum(1)
    inter = m @ m.T
    out: dict[str, dict] = {"kept_fraction": {}, "iou": {}, "iomin": {}, "shared": {}}
    for i in range(K):
        out["kept_fraction"][names[i]] = float(size[i] / P) if P else None
        for j in range(i + 1, K):
            key = f"{names[i]}|{names[j]}"
            union = size[i] + size[j] - inter[i, j]
            out["iou"][key] = _ratio(float(inter[i, j]), float(union))
            out["iomin"][key] = _ratio(float(inter[i, j]), float(min(size[i], size[j])))
        others = [j for j in rows if j != i]
        if others:
            any_other = masks[others].any(0)
            out["shared"][names[i]] = _ratio(float((masks[i] & any_other).sum()), float(size[i]))
        else:
            out["shared"][names[i]] = None
    return out


def _metric_matrix(net: FrozenNet, task: Task, eff: torch.Tensor, data: Sequence[_FnData]):
    """``out[k][g]``: task metric of the network with effective weights ``eff[k]`` on data g."""
    res = []
    with torch.no_grad():
        for d in data:
            outs = [
                net(eff, d.test_x[s : s + _EVAL_CHUNK], shared_input=True)
                for s in range(0, d.test_x.shape[0], _EVAL_CHUNK)
            ]
            o = torch.cat(outs, 1)
            res.append([task.metric(o[k], d.test_y, d.groups) for k in range(eff.shape[0])])
    return [list(r) for r in zip(*res, strict=True)]


def _per_class_accuracy(net: FrozenNet, task: Task, eff: torch.Tensor) -> np.ndarray:
    """``(K, n_classes)`` per-class accuracy (confusion-matrix diagonal / row sums) on the test set."""
    x, y = task.x_test.to(net.device), task.y_test[:, 0].to(net.device)
    C = task.n_classes
    with torch.no_grad():
        pred = torch.cat(
            [
                net(eff, x[s : s + _EVAL_CHUNK], shared_input=True).argmax(-1)
                for s in range(0, x.shape[0], _EVAL_CHUNK)
            ],
            1,
        )
    conf = torch.zeros(eff.shape[0], C, C, dtype=torch.float64, device=net.device)
    for k in range(eff.shape[0]):
        conf[k].view(-1).index_add_(
            0, y * C + pred[k], torch.ones(y.numel(), dtype=torch.float64, device=net.device)
        )
    rows = conf.sum(2)
    acc = torch.diagonal(conf, dim1=1, dim2=2) / rows.clamp(min=1)
    acc[rows == 0] = float("nan")
    return acc.cpu().numpy()


# -- result --------------------------------------------------------------------------------------
@dataclass
class MaskResult:
    """Masks of several functions of one network and what they say.

    ``masks[f]`` maps each masked parameter name to a bool tensor of its shape. ``accuracy[f][g]``
    is the task metric (accuracy, or MSE for regression tasks) of the network under mask f on the
    test data of g; ``inverted_accuracy[f][g]`` the same with exactly the weights of mask f
    removed and all others kept; ``full_accuracy[g]`` the intact network on g. The ``control``
    mask, when trained, learns the whole task; it is left out of the ``shared`` unions.
    ``class_drop[f][c]`` (per-class runs only): per-class accuracy of the intact network minus
    that under mask f, from the confusion matrices on the whole test set.
    """

    functions: list[str]
    layer_names: list[str]
    masks: dict[str, dict[str, torch.Tensor]]
    kept_fraction: dict[str, float | None]
    iou: dict[str, float | None]
    iomin: dict[str, float | None]
    shared: dict[str, float | None]
    accuracy: dict[str, dict[str, float]]
    inverted_accuracy: dict[str, dict[str, float]]
    full_accuracy: dict[str, float]
    layers: dict[str, dict[str, dict]]
    class_drop: dict[str, dict[str, float | None]] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    logits: dict[str, dict[str, torch.Tensor]] | None = None
    history: dict[int, MaskResult] = field(default_factory=dict)  # steps -> result (record_at)

    def to_dict(self) -> dict:
        d = {
            "functions": list(self.functions),
            "kept_fraction": self.kept_fraction,
            "iou": self.iou,
            "iomin": self.iomin,
            "shared": self.shared,
            "accuracy": self.accuracy,
            "inverted_accuracy": self.inverted_accuracy,
            "full_accuracy": self.full_accuracy,
            "layers": self.layers,
        }
        if self.class_drop is not None:
            d["class_drop"] = self.class_drop
        return _clean(d)

    def to_payload(self) -> dict[str, Any]:
        """Everything but ``logits`` and ``history``, as plain containers and tensors."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("logits", "history")}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> MaskResult:
        return cls(**payload)

    def to_frame(self):
        """One row per (mask, data): metric under the mask, under its inverse, intact; plus the
        mask's kept and shared fractions."""
        import pandas as pd

        rows = [
            {
                "mask": f,
                "data": g,
                "accuracy": self.accuracy[f][g],
                "inverted_accuracy": self.inverted_accuracy[f][g],
                "full_accuracy": self.full_accuracy[g],
                "kept_fraction": self.kept_fraction[f],
                "shared": self.shared[f],
            }
            for f in self.functions
            for g in self.full_accuracy
        ]
        return pd.DataFrame(rows)

    def layer_frame(self):
        """One row per (layer, mask): kept and shared fraction in that layer."""
        import pandas as pd

        return pd.DataFrame(
            [
                {"layer": layer, "mask": f, "kept_fraction": v["kept_fraction"][f],
                 "shared": v["shared"][f]}
                for layer, v in self.layers.items()
                for f in self.functions
            ]
        )

    def save(self, path: str | os.PathLike) -> os.PathLike:
        """Write the hard masks (and the config) to a file ``torch.load(weights_only=True)`` reads."""
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "functions": list(self.functions),
            "layers": list(self.layer_names),
            "masks": {f: {n: t.cpu().contiguous() for n, t in m.items()} for f, m in self.masks.items()},
            "config": _clean(self.config),
        }
        return write_atomic(path, lambda fh: torch.save(payload, fh))


def load_masks(path: str | os.PathLike) -> dict[str, dict[str, torch.Tensor]]:
    """Read a file written by :meth:`MaskResult.save`: ``{function: {parameter name: bool tensor}}``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModscopeError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        raise ModscopeError(f"{path}: not a readable torch file ({type(exc).__name__})") from None
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
        raise ModscopeError(f"{path}: not a modscope masks file")
    if obj.get("format_version") != FORMAT_VERSION:
        raise ModscopeError(f"{path}: masks format version {obj.get('format_version')!r} unsupported")
    return {f: dict(obj["masks"][f]) for f in obj["functions"]}


def _clean(obj):
    """JSON-ready: numpy scalars to Python, NaN / inf to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# -- the public entry point ------------------------------------------------------------------------
def train_masks(
    model: nn.Module,
    task: Task,
    functions: Sequence[str | Function] | Mapping[str, Function] | None = None,
    *,
    steps: int = 20_000,
    batch_size: int = 128,
    lr: float = 1e-2,
    beta: float | None = None,
    tau: float = 1.0,
    init: float = 2.0,
    mask_bias: bool = False,
    control: bool = True,
    class_removal: bool = False,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    keep_logits: bool = False,
    record_at: Sequence[int] = (),
    threads: int = 1,
) -> MaskResult:
    """Learn one weight mask per function of ``task`` on the frozen ``model``, all K at once.

    ``functions``: names in ``task.functions`` or :class:`Function` objects (default: all of
    the task's). ``control`` adds a mask trained on all of the task's data. ``beta`` defaults to
    ``1e-4 / batch_size`` (spec §5). ``class_removal`` (classifiers, with ``not-<c>``
    functions) adds the per-class accuracy drop of each mask. ``record_at``: step counts
    below ``steps`` at which to evaluate the masks too (``result.history[n]``; identical to
    a run with ``steps=n``, since the randomness is the same). ``threads``: CPU threads the
    mask sets are split over, -1 for all cores (the masks are the same for any value; see
    :func:`fit_logits`). ``model`` is never modified.
    """
    steps, batch_size = int(steps), int(batch_size)
    if steps < 1:
        raise ModscopeError(f"steps must be at least 1, got {steps}")
    if batch_size < 1:
        raise ModscopeError(f"batch size must be at least 1, got {batch_size}")
    if not tau > 0:
        raise ModscopeError(f"tau must be positive, got {tau}")
    if beta is not None and not beta >= 0:
        raise ModscopeError(f"beta must be non-negative, got {beta}")
    if not lr > 0:
        raise ModscopeError(f"learning rate must be positive, got {lr}")
    bad = [n for n in record_at if not 1 <= int(n) < steps]
    if bad:
        raise ModscopeError(f"record_at steps must lie in [1, {steps}), got {bad}")
    threads = int(threads)
    if threads == 0 or threads < -1:
        raise ModscopeError(f"threads must be >= 1 or -1 (all cores), got {threads}")
    if threads == -1:
        threads = os.cpu_count() or 1
    if class_removal and task.n_classes is None:
        raise ModscopeError(f"per-class removal needs a single-head classifier; {task.name} is not")
    fns = _resolve_functions(task, functions)
    if control and any(f.name == CONTROL for f in fns):
        raise ModscopeError(f"a function is called {CONTROL!r}; rename it or pass control=False")
    if control:
        fns.append(Function(CONTROL))
    from .train import resolve_device

    dev = resolve_device(device)
    net = FrozenNet(model, maskable_names(model, mask_bias), dev)
    data = [_fn_data(task, f, dev) for f in fns]
    beta = 1e-4 / batch_size if beta is None else float(beta)
    config = dict(
        steps=steps, batch_size=batch_size, lr=lr, beta=beta, tau=tau, init=init,
        mask_bias=mask_bias, seed=int(seed), task=task.name, functions=[f.name for f in fns],
    )
    snapshots: dict[int, torch.Tensor] = {}
    wanted = {int(n) for n in record_at}

    def record(step: int, logits: torch.Tensor) -> None:
        if step in wanted:
            snapshots[step] = logits.clone()

    logits = fit_logits(
        net, task, data, steps=steps, batch_size=batch_size, lr=lr, beta=beta, tau=tau,
        init=init, seed=seed, progress=progress, callback=record if wanted else None, threads=threads,
    )
    result = evaluate_masks(net, task, data, logits, class_removal, config, keep_logits)
    result.history = {
        n: evaluate_masks(net, task, data, snapshots[n], class_removal, {**config, "steps": n})
        for n in sorted(snapshots)
    }
    return result


def evaluate_masks(
    net: FrozenNet,
    task: Task,
    data: Sequence[_FnData],
    logits: torch.Tensor,
    class_removal: bool = False,
    config: dict[str, Any] | None = None,
    keep_logits: bool = False,
) -> MaskResult:
    """All measures of the hard masks ``logits > 0`` (logits ``(K, P)``, one row per ``data``)."""
    keep = logits > 0
    fnames = [d.name for d in data]
    fn_rows = [i for i, n in enumerate(fnames) if n != CONTROL]

    overall = overlap_measures(keep, fnames, fn_rows)
    layers = {}
    for n, sl in zip(net.names, net.spans, strict=True):
        layers[n] = overlap_measures(keep[:, sl], fnames, fn_rows)

    eff = net.w * keep
    acc = _metric_matrix(net, task, eff, data)
    inv_acc = _metric_matrix(net, task, net.w * ~keep, data)
    full = _metric_matrix(net, task, net.w[None], data)[0]

    class_drop = None
    if class_removal:
        full_pc = _per_class_accuracy(net, task, net.w[None])[0]
        masked_pc = _per_class_accuracy(net, task, eff)
        class_drop = {
            f: {str(c): float(full_pc[c] - masked_pc[k, c]) for c in range(task.n_classes)}
            for k, f in enumerate(fnames)
        }

    def split(t: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = zip(net.names, net.spans, net.shapes, strict=True)
        return {n: t[sl].reshape(shape).cpu() for n, sl, shape in parts}

    return MaskResult(
        functions=fnames,
        layer_names=list(net.names),
        masks={f: split(keep[k]) for k, f in enumerate(fnames)},
        kept_fraction=overall["kept_fraction"],
        iou=overall["iou"],
        iomin=overall["iomin"],
        shared=overall["shared"],
        accuracy={f: dict(zip(fnames, acc[k], strict=True)) for k, f in enumerate(fnames)},
        inverted_accuracy={f: dict(zip(fnames, inv_acc[k], strict=True)) for k, f in enumerate(fnames)},
        full_accuracy=dict(zip(fnames, full, strict=True)),
        layers=layers,
        class_drop=class_drop,
        config=dict(config or {}),
        logits={f: split(logits[k]) for k, f in enumerate(fnames)} if keep_logits else None,
    )


# -- checkpoints and text -------------------------------------------------------------------------
def masks_checkpoint(
    path: str | os.PathLike,
    *,
    task: str | None = None,
    data: str | None = None,
    functions: Sequence[str] | None = None,
    classes: bool = False,
    cache: str | os.PathLike | None = None,
    **kwargs: Any,
) -> MaskResult:
    """Load a modscope checkpoint and run :func:`train_masks` on its task (or ``task``).

    ``functions``: names of the task's functions (default all); ``classes``: one ``not-<c>``
    mask per class instead, with the per-class accuracy drop. ``kwargs`` go to
    :func:`train_masks`. The file is only read. ``cache``: a folder where the finished run
    (all its masks, trained together as one unit) is kept, keyed by the weights, the task and
    every setting; a rerun with the same inputs reads it instead of training again.
    """
    from .checkpoint import load_checkpoint
    from .knockout import task_for_checkpoint
    from .tasks import class_functions

    if classes and functions:
        raise ModscopeError("give either functions or classes, not both")
    ckpt = load_checkpoint(path)
    the_task = task_for_checkpoint(ckpt, task, data)
    fns: Any = functions
    if classes:
        fns = class_functions(the_task)
    store = None
    if cache is not None:
        from .cache import UnitCache, fingerprint_arrays

        # how the run is spread over the machine does not change its result
        settings = {k: v for k, v in kwargs.items() if k not in ("progress", "device", "threads")}
        store = UnitCache(cache, {
            "unit": "masks", "weights": fingerprint_arrays([t.numpy() for t in ckpt.state_dict.values()]),
            "task": [the_task.name, the_task.params], "functions": functions, "classes": classes,
            "settings": settings,
        })
        found = store.get_payload("result")
        if found is not None:
            return MaskResult.from_payload(found)
    result = train_masks(ckpt.model(), the_task, fns, class_removal=classes, **kwargs)
    if store is not None:
        store.put_payload("result", result.to_payload())
    return result


def format_masks(result: MaskResult) -> str:
    """A plain-text summary: per mask its size and metric on every function's data, intact and
    inverted; overlaps overall and per layer."""
    data = list(result.full_accuracy)
    w = max(8, *(len(f) for f in result.functions)) + 2
    col = max(9, *(len(g) + 2 for g in data))
    lines = [
        f"masks: {result.config.get('task', '?')}, {result.config.get('steps', '?')} steps, "
        f"seed {result.config.get('seed', '?')}   (metric on each function's test data)",
        "",
        "mask".ljust(w) + "kept".rjust(8) + "shared".rjust(8) + "  | "
        + "".join(g.rjust(col) for g in data) + "  | inverted: " + "".join(g.rjust(col) for g in data),
        "full".ljust(w) + " " * 16 + "  | " + "".join(f"{result.full_accuracy[g]:.4f}".rjust(col)
                                                   for g in data),
    ]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    for f in result.functions:
        lines.append(
            f.ljust(w) + pct(result.kept_fraction[f]).rjust(8) + pct(result.shared[f]).rjust(8)
            + "  | " + "".join(f"{result.accuracy[f][g]:.4f}".rjust(col) for g in data)
            + "  |           "
            + "".join(f"{result.inverted_accuracy[f][g]:.4f}".rjust(col) for g in data)
        )
    if result.iou:
        lines += ["", "pair".ljust(2 * w) + "IoU".rjust(8) + "IoMin".rjust(8) + "   IoU per layer"]
        for key, v in result.iou.items():
            per_layer = " ".join(
                "-" if lv["iou"][key] is None else f"{lv['iou'][key]:.3f}"
                for lv in result.layers.values()
            )
            lines.append(
                key.ljust(2 * w) + ("-" if v is None else f"{v:.3f}").rjust(8)
                + ("-" if result.iomin[key] is None else f"{result.iomin[key]:.3f}").rjust(8)
                + "   " + per_layer
            )
    if result.class_drop:
        lines += ["", "per-class accuracy drop (intact - masked) of each not-<c> mask on its class"]
        for f, row in result.class_drop.items():
            own = f[4:] if f.startswith("not-") else None
            others = [v for c, v in row.items() if c != own and v is not None]
            mean_other = sum(others) / len(others) if others else float("nan")
            if own is not None and own in row:
                lines.append(f"{f.ljust(w)} own class {row[own]:+.3f}   others (mean) "
                             f"{mean_other:+.3f}")
    return "\n".join(lines) + "\n"
