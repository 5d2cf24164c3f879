"""Differentiable weight masks: which weights does each function need? (Csordás et al. 2021,
[spec §5][spec-5])

For a frozen trained network every maskable weight gets a logit ``l`` (initially 2): the
weights of Linear and convolution layers (1-, 2-, 3-D, transposed), recurrent layers (``nn.LSTM``
/ ``GRU`` / ``RNN`` ``weight_ih_*`` / ``weight_hh_*`` and their cells), attention projections
(``nn.MultiheadAttention``'s ``in_proj_weight`` and ``out_proj``) and custom layers' own 2-D+
``weight`` (GPT-2's ``Conv1D``); not embeddings or normalisation gains; biases optionally
(`modscope.masks.frozen.maskable_names`). Every forward pass samples a hard mask by
Gumbel-sigmoid with a straight-through estimator::

    s = sigmoid((l + g1 - g2) / tau),   m = 1[s > 0.5] + s - stopgrad(s),   w_eff = w * m

and Adam (lr 1e-2, logits only) minimises the function's task loss plus ``beta * sum(l)``.
The final mask is ``l > 0``. ``g1 - g2`` of two Gumbel(0, 1) draws is a Logistic(0, 1) draw,
so one uniform ``u`` per weight gives it as ``logit(u)``.

Several functions are trained at once: K logit sets, one batch per function per step, and
ONE batched forward through the shared frozen network with K effective weight sets
(``torch.func.vmap`` over ``torch.func.functional_call``). ``vmap`` cannot batch the fused
recurrent ops (``aten::lstm``, ``gru``, ``lstm_cell``: no batching rule), so a network with
recurrent layers runs its K weight sets in a loop inside the step instead: the same
``functional_call`` per mask, each with the forward and backward of a single-mask run. So do
convolutions on the CPU, where ``vmap``'s grouped convolution is slower than K plain ones
(``forward=`` chooses). The user's model is never modified: every effective weight lives in
tensors passed to ``functional_call``.

The data: a `modscope.data.Data`, or anything `modscope.data.load_data` reads (a built-in `Task`,
arrays, memory-mapped ``.npz`` / ``.pt`` / IDX files, datasets), turned into `Data` once at the
entry; it is streamed: each step reads only the rows it drew (``split.rows``), and the masks are
scored batch by batch (`modscope.masks.measures.evaluate_streamed`), never the whole test set at
once.

Each mask's randomness (its batches and its Gumbel noise) comes from ``seed`` and the
function's *name* only, so a mask trained together with others equals the same mask
trained alone (up to floating-point summation order in the batched matmul).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.dataset import load_data
from ..data.functions import CONTROL, Function
from ..errors import ModscopeError, first_line
from ..graphs.network import Network
from ..runtime.modules import device_errors, model_device, resolve_device, threads_for, torch_threads
from ..runtime.options import settle
from ..runtime.seeds import stream_seed
from .data import FunctionData, StreamedData, resolve_data_functions, streamed_function
from .frozen import FrozenNet, maskable_names, no_fastpath
from .gumbel import hard_mask_weights, straight_through_grad
from .measures import evaluate_streamed, group_measures
from .result import MaskResult

__all__ = ["MaskConfig", "fit_logits", "fused_adam", "train_masks"]


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


def fused_adam(params: list[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch build has it (one pass over the (K, P) logits, ~9x faster on
    CPU than the per-op version); the update rule is the same."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def fit_logits(
    net: FrozenNet,
    data: Any,
    fns: Sequence[FunctionData],
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

    ``data``: the examples the masks train on, a `StreamedData` (or anything
    `modscope.data.load_data` reads, streamed from its train split). ``callback(step, logits)``
    runs after every step (``step`` counts from 1; ``logits`` is
    the live detached tensor: clone it to keep it).

    ``threads > 1`` (CPU only) splits the K mask sets into that many groups, each trained on
    its own thread with its own copy of the frozen network and one intra-op thread. The mask
    sets never interact (own batches, own noise, own Adam state), so every mask's arithmetic
    is the one of the single-thread run and the logits are identical. On a CPU the matrix work
    grows with K whatever the batching; threads are how K masks together cost less than K
    one-mask steps there. torch's process-wide intra-op thread count is 1 while they run.
    """
    source = data if isinstance(data, StreamedData) else _stream(net, load_data(data), (), False)
    dev = net.device
    K, P = len(fns), net.n_weights
    beta = 1e-4 / batch_size if beta is None else beta
    logits = torch.full((K, P), float(init), device=dev)  # updated by hand: not in the graph
    n_groups = max(1, min(int(threads), K)) if dev.type == "cpu" else 1
    fit = dict(steps=steps, batch_size=batch_size, lr=lr, beta=beta, tau=tau, seed=seed, batched=K > 1)
    with no_fastpath():  # once around every thread's steps: the flag is process-wide
        if n_groups > 1:
            _fit_threads(net, source, fns, logits, n_groups, progress, callback, fit)
            return logits
        after = None if callback is None else (lambda step: callback(step, logits))
        # a tiny network's K masks on one thread: torch's threads only cost there
        with torch_threads(threads_for(K * P * batch_size) if dev.type == "cpu" else None):
            _fit_group(net, source, fns, logits, after_step=after,
                       desc=f"masks ({K} together)" if progress else None, **fit)
    return logits


def _fit_threads(
    net: FrozenNet, source: StreamedData, fns: Sequence[FunctionData], logits: torch.Tensor, n_groups: int,
    progress: bool, callback: Callable[[int, torch.Tensor], None] | None, fit: dict[str, Any],
) -> None:
    """`fit_logits` on ``n_groups`` threads, each training a contiguous group of the mask sets (so
    its logits are a view of rows of ``logits``) on its own copy of the network."""
    K = len(fns)
    groups = np.array_split(np.arange(K), n_groups)
    steps = itertools.count(1)

    def report() -> None:  # runs once per step, while every group waits at the barrier
        callback(next(steps), logits)

    barrier = threading.Barrier(n_groups, action=report) if callback is not None else None
    errors: list[BaseException] = []

    def run(i: int, rows: np.ndarray) -> None:
        try:
            _fit_group(
                net.copy(), source, [fns[r] for r in rows], logits[rows[0] : rows[-1] + 1],
                after_step=None if barrier is None else (lambda _: barrier.wait()),
                desc=f"masks ({K} together, {n_groups} threads)" if progress and i == 0 else None, **fit,
            )
        except threading.BrokenBarrierError:
            pass  # another group failed; its error is the one to report
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(e)
            if barrier is not None:
                barrier.abort()

    # process-wide: one intra-op thread while the groups' threads run (the pool waits for them all)
    with torch_threads(1), ThreadPoolExecutor(n_groups) as pool:
        pool.map(run, range(n_groups), groups)
    if errors:
        raise errors[0]


def _fit_group(
    net: FrozenNet,
    source: StreamedData,
    fns: Sequence[FunctionData],
    logits: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    beta: float,
    tau: float,
    seed: int,
    batched: bool,
    after_step: Callable[[int], None] | None,
    desc: str | None,
) -> None:
    """Train the logits ``(K, P)`` of one group of mask sets in place, ``steps`` steps, with a
    progress bar labelled ``desc`` (none when ``desc`` is None)."""
    dev = net.device
    K, P, B = len(fns), net.n_weights, batch_size
    opt = fused_adam([logits], lr)
    batch_gens = [
        torch.Generator(device=dev).manual_seed(stream_seed(seed, f.name, 0)) for f in fns
    ]
    uniforms = _Uniforms([stream_seed(seed, f.name, 1) for f in fns], P, dev)
    idx = torch.empty(K, B, dtype=torch.long, device=dev)
    # The straight-through step by hand, in buffers kept across steps: the effective weights
    # are a leaf whose gradient autograd fills, and the logits' gradient is computed from it
    # into `grad`. The same arithmetic as `gumbel_sigmoid_weights`, without a fresh (K, P)
    # allocation (page faults on CPU) for the mask and for the gradient at every step.
    # The leaves are per-layer views of `eff`, so their gradients arrive layer by layer with no
    # concatenation or zero-filled scatter back into a (K, P) tensor.
    eff, grad = torch.empty(K, P, device=dev), torch.empty(K, P, device=dev)
    leaves = [t.requires_grad_() for t in net.split(eff)]
    from tqdm.auto import tqdm

    for step in tqdm(range(steps), desc=desc, unit="step", disable=desc is None):
        noise = uniforms.draw()
        for k, f in enumerate(fns):
            pick = torch.randint(f.train_index.numel(), (B,), generator=batch_gens[k], device=dev)
            idx[k] = f.train_index[pick]
        # z = (l + g1 - g2) / tau built in place: Logistic(0, 1) = logit(U(0, 1)) = g1 - g2
        z = noise.logit_(eps=1e-7).add_(logits)
        if tau != 1.0:
            z.div_(tau)
        with torch.no_grad():
            hard_mask_weights(z, net.w, out=eff)
        x, y = source.batch(idx, dev)  # the rows drawn, read as drawn
        out = net(leaves, x, batched=batched)  # (K, B, n_out): one forward for all K (or a loop)
        loss = sum(source.loss(out[k], y[k], f.groups) for k, f in enumerate(fns))
        for leaf in leaves:
            leaf.grad = None
        loss.backward()
        for leaf, sl in zip(leaves, net.spans, strict=True):
            straight_through_grad(leaf.grad.view(K, -1), z[:, sl], net.w[sl], float(tau), out=grad[:, sl])
        logits.grad = grad.add_(beta)  # plus the gradient of beta * sum(l)
        opt.step()
        if after_step is not None:
            after_step(step + 1)


@dataclass(frozen=True)
class MaskConfig:
    """How masks are learned ([spec §5][spec-5]), keyword-only.

    ``steps`` of Adam at ``lr`` on the logits, ``batch_size`` examples per function per step;
    ``beta`` the sparsity weight (default ``1e-4 / batch_size``), ``tau`` the Gumbel-sigmoid
    temperature, ``init`` the logits' starting value; ``mask_bias`` masks biases too;
    ``control`` adds a mask trained on all of the task's data; ``class_removal`` (one-group
    classifiers, with ``not-<c>`` functions) adds each mask's per-class accuracy drop; ``seed``
    seeds every mask's batches and noise (by the function's name).
    """

    steps: int = 20_000
    batch_size: int = 128
    lr: float = 1e-2
    beta: float | None = None
    tau: float = 1.0
    init: float = 2.0
    mask_bias: bool = False
    control: bool = True
    class_removal: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.steps) != self.steps or self.steps < 1:
            raise ModscopeError(f"steps must be at least 1, got {self.steps}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ModscopeError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.tau > 0:
            raise ModscopeError(f"tau must be positive, got {self.tau}")
        if self.beta is not None and not self.beta >= 0:
            raise ModscopeError(f"beta must be non-negative, got {self.beta}")
        if not self.lr > 0:
            raise ModscopeError(f"learning rate must be positive, got {self.lr}")
        object.__setattr__(self, "steps", int(self.steps))
        object.__setattr__(self, "batch_size", int(self.batch_size))

    @property
    def sparsity_weight(self) -> float:
        """``beta``, or its default ``1e-4 / batch_size`` (the reference's)."""
        return 1e-4 / self.batch_size if self.beta is None else float(self.beta)


def train_masks(
    model: nn.Module,
    task: Any,
    functions: Sequence[str | Function] | Mapping[str, Any] | None = None,
    config: MaskConfig | None = None,
    *,
    device: str | torch.device | None = None,
    threads: int = 1,
    progress: bool = False,
    keep_logits: bool = False,
    record_at: Sequence[int] = (),
    example_input: Any = None,
    output: int | Callable[[Any], Any] | None = None,
    eval_batch_size: int = 512,
    forward: str = "auto",
    **options: Any,
) -> MaskResult:
    """Learn one weight mask per function on the frozen ``model``, all K at once.

    ``task``: the data, a `modscope.data.Data` or anything `modscope.data.load_data` reads (a
    built-in `Task`, ``(x, y)`` arrays, ``.npz`` / ``.pt`` files, IDX folders, a ``Dataset`` or
    ``DataLoader``), turned into `Data` once here and streamed in batches.
    Masks train on the train split (the test split when the data has none; the result's
    ``config["trained_on"]`` says which) and are scored on the test split. Each step reads the
    rows it drew (``split.rows``): arrays, memory maps and indexable datasets read just those; a
    ``DataLoader`` can only be read in its own order, so each step costs a pass over it (pass its
    dataset instead).

    ``functions``: names of the data's functions, [`Function`][modscope.data.functions.Function]
    objects, ``name=classes`` specs, or a mapping of names to `Function` objects or predicates
    ``predicate(x, y) -> (B,) bool`` (`modscope.masks.data.resolve_data_functions`; default: all of
    the data's). One mask per class: ``class_functions(task_or_data)`` with ``class_removal=True``.
    ``config``: a `MaskConfig`, or its fields as keyword ``options``, not both. ``record_at``: step
    counts below ``steps`` at which to evaluate the masks too (``result.history[n]``; identical to a run with
    ``steps=n``, since the randomness is the same). ``threads``: CPU threads the mask sets are
    split over, -1 for all cores (the masks are the same for any value; see
    [`fit_logits()`][modscope.masks.fit.fit_logits]).

    ``example_input``: a batch-1 input of the model; with it the model is traced
    (`modscope.graphs.tracing.trace_network`) and the result gains per-unit-group tables
    (``result.groups``: kept fraction and overlaps of the weights writing into or reading from
    each unit group of the traced graph) and ``result.units`` for
    [`alignment()`][modscope.masks.alignment.alignment].
    ``output``: which output to score when the model returns several (an index or a function
    of the forward's result). ``eval_batch_size``: examples per evaluation batch (user data).
    ``forward``: how the K masks share a step: ``"batched"`` (one ``vmap`` forward), ``"loop"``
    (one forward per mask), or ``"auto"`` (the loop for recurrent layers, which ``vmap`` cannot
    batch, and for convolutions on the CPU, where it is faster; `modscope.masks.frozen.loops`).
    ``device``: where the masks are learned (``"cpu"``, ``"cuda"``, ``"cuda:1"``; default: where
    ``model`` is); the weights are copied there and every batch follows them. The masks' noise and
    batches come from generators on that device, so a CUDA run is another draw of the same
    procedure, not the CPU's masks to float tolerance. Running out of device memory is one line
    saying what to lower. ``model`` is never modified.
    """
    if isinstance(model, Network):  # one network object: its module and what it was traced on
        example_input = model.example_input if example_input is None else example_input
        model = model.torch_module()
    cfg = settle(MaskConfig, config, options)
    threads, loop = _check_run(cfg, record_at, threads, eval_batch_size, forward)
    net, source, fns, recorded = _prepare(model, task, functions, cfg, device, output, loop)
    units = None
    if example_input is not None:  # trace before training: a model the tracer refuses fails fast
        from ..graphs.tracing import trace_network

        units = trace_network(model, example_input).parameters  # traced where the model is
    with device_errors("--batch-size (batch_size=), --eval-batch-size or the number of functions"):
        result = _fit_and_score(
            net, source, fns, cfg, recorded, threads=threads, progress=progress, keep_logits=keep_logits,
            record_at=record_at, eval_batch_size=int(eval_batch_size),
        )
    if units is not None:
        for r in (result, *result.history.values()):
            r.groups = group_measures(units, r)
            r.units = units
    return result


def _prepare(
    model: nn.Module, task: Any, functions: Any, cfg: MaskConfig, device: Any, output: Any, loop: bool | None
) -> tuple[FrozenNet, StreamedData, list[Function], dict[str, Any]]:
    """The frozen network, the data as training streams it, the functions (and the control) and
    what the result says it was made with. A built-in Task becomes `Data` here, once; its results
    keep 0.3.0's keys (no metric, split or forward)."""
    builtin = callable(getattr(task, "to_data", None))
    the_data = load_data(task)
    dev = model_device(model) if device is None else resolve_device(device)
    fns = resolve_data_functions(the_data, functions)
    if cfg.control:
        if any(f.name == CONTROL for f in fns):
            raise ModscopeError(f"a function is called {CONTROL!r}; rename it or pass control=False")
        fns.append(Function(CONTROL))
    net = FrozenNet(model, maskable_names(model, cfg.mask_bias), dev, output, loop)
    source = _stream(net, the_data, fns, cfg.class_removal)
    # the config's fields in its order (beta resolved), but the two that add functions or measures
    recorded = {k: v for k, v in asdict(cfg).items() if k not in ("control", "class_removal")}
    recorded.update(beta=cfg.sparsity_weight, seed=int(cfg.seed), task=source.name,
                    functions=[f.name for f in fns])
    if not builtin:
        recorded.update(metric=the_data.metric_name, trained_on=source.split,
                        forward="loop" if net.loop else "batched")
    return net, source, fns, recorded


def _fit_and_score(
    net: FrozenNet,
    source: StreamedData,
    fns: Sequence[Function],
    cfg: MaskConfig,
    recorded: dict[str, Any],
    *,
    threads: int,
    progress: bool,
    keep_logits: bool,
    record_at: Sequence[int],
    eval_batch_size: int,
) -> MaskResult:
    """Train every function's mask together (`fit_logits`) and score them on the test split; the
    masks at the steps of ``record_at`` too (``result.history``)."""
    snapshots: dict[int, torch.Tensor] = {}
    wanted = {int(n) for n in record_at}

    def record(step: int, logits: torch.Tensor) -> None:
        if step in wanted:
            snapshots[step] = logits.clone()

    def evaluate(logits: torch.Tensor, config: dict, keep: bool = False) -> MaskResult:
        return evaluate_streamed(net, source, fns, logits, cfg.class_removal, config, keep, eval_batch_size)

    # the config's training fields (steps, batch_size, lr, beta, tau, init, seed), named as fit_logits
    # names them; fit_logits resolves beta=None to the same default as MaskConfig.sparsity_weight
    fit = {k: v for k, v in asdict(cfg).items() if k not in ("mask_bias", "control", "class_removal")}
    logits = fit_logits(
        net, source, [streamed_function(source, f, net.device) for f in fns], progress=progress,
        callback=record if wanted else None, threads=threads, **fit,
    )
    result = evaluate(logits, recorded, keep_logits)
    result.history = {n: evaluate(snapshots[n], {**recorded, "steps": n}) for n in sorted(snapshots)}
    return result


def _check_run(
    cfg: MaskConfig, record_at: Sequence[int], threads: int, eval_batch_size: int, forward: str
) -> tuple[int, bool | None]:
    """``(threads, loop)``: the run's settings checked (one-line errors); ``-1`` threads is every
    core, ``loop`` None for ``forward="auto"``."""
    bad = [n for n in record_at if not 1 <= int(n) < cfg.steps]
    if bad:
        raise ModscopeError(f"record_at steps must lie in [1, {cfg.steps}), got {bad}")
    threads = int(threads)
    if threads == 0 or threads < -1:
        raise ModscopeError(f"threads must be >= 1 or -1 (all cores), got {threads}")
    if int(eval_batch_size) < 1:
        raise ModscopeError(f"eval_batch_size must be at least 1, got {eval_batch_size}")
    if forward not in ("auto", "batched", "loop"):
        raise ModscopeError(f"forward must be 'auto', 'batched' or 'loop', got {forward!r}")
    loop = None if forward == "auto" else forward == "loop"
    return (os.cpu_count() or 1) if threads == -1 else threads, loop


def _stream(net: FrozenNet, data: Any, fns: Sequence[Function], class_removal: bool) -> StreamedData:
    """The data as mask training streams it, checked against the model on a first batch: the
    model must take the inputs and give ``(batch, outputs)``; the labels must fit the outputs."""
    test = data.split("test")
    if len(test) == 0:
        raise ModscopeError(f"{data.name} has no test examples")
    split = "train" if data.train is not None and len(data.train) > 0 else "test"
    stream = StreamedData(data, split, (), net.w.dtype if net.w.is_floating_point() else torch.float32)
    x, y = test.rows(np.arange(min(2, len(test))))
    try:
        with torch.no_grad():
            out = net(net.w[None], stream.inputs(x, net.device), shared_input=True)[0]
    except ModscopeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's model on the user's data: one line
        raise ModscopeError(
            f"the data do not fit the model: inputs of shape {tuple(x.shape[1:])} "
            f"({type(exc).__name__}: {first_line(exc)})"
        ) from None
    if out.ndim != 2:
        raise ModscopeError(
            f"the model's output must be (batch, outputs), got shape {tuple(out.shape)}; "
            "pick one with output="
        )
    n_out = int(out.shape[1])
    groups = data.groups(n_out)
    if data.metric is None and data.loss is None:
        _check_labels(data, groups, n_out)
    for f in fns:
        limit = len(groups) if data.kind == "classification" else n_out
        if f.groups is not None and not all(0 <= g < limit for g in f.groups):
            raise ModscopeError(
                f"function {f.name}: output groups must lie in 0..{limit - 1}, got {list(f.groups)}"
            )
    if class_removal and (data.n_classes is None or len(groups) != 1):
        raise ModscopeError(f"per-class removal needs a single-head classifier; {data.name} is not")
    return StreamedData(data, split, groups, stream.dtype)


def _check_labels(data: Any, groups: tuple[int, ...], n_out: int) -> None:
    """The labels of every split fit the outputs: one column per output group, each class below
    its group's size (classification), or one column per output (regression)."""
    for which, s in (("test", data.test), ("train", data.train)):
        if s is None or len(s) == 0:
            continue
        y = s.labels()
        if data.kind == "regression":
            if y.shape[1] != n_out:
                raise ModscopeError(
                    f"{which} targets have {y.shape[1]} columns but the model has {n_out} outputs"
                )
            continue
        if y.shape[1] != len(groups):
            raise ModscopeError(
                f"{which} labels have {y.shape[1]} columns but the model's outputs form {len(groups)} "
                f"group(s) {list(groups)}: pass output_groups to load_data"
            )
        top = y.max(0).values
        for g, size in enumerate(groups):
            if int(top[g]) >= size:
                where = f" of output group {g}" if len(groups) > 1 else ""
                raise ModscopeError(
                    f"{which} labels go up to class {int(top[g])} but the model has {size} outputs{where}"
                )
