"""The trainer: Adam on a task's MLP, with L1/L2, dropout, magnitude pruning, BIMT and the
clusterability regularisers ([spec §7][spec-7]).

Everything random (weight init, minibatch order, dropout masks) comes from generators
seeded from ``seed``; the global RNG is never touched, and the same seed on the same
machine gives a byte-identical checkpoint.

Magnitude pruning ([spec §3][spec-3], as the reference's TF model-optimization setup): after the
main training, ``prune_steps`` more steps in which each Linear weight matrix keeps a
mask of its largest-magnitude entries; the mask's sparsity rises as TF's
``PolynomialDecay`` (power 3) from 50 % to the target, refreshed every ``frequency``
steps and on the last step, and pruned weights are re-zeroed after every optimizer step,
so the final sparsity of every layer is exactly the target.

BIMT and the clusterability losses are training strategies
([`strategy.Regulariser`][modscope.training.strategy.Regulariser]): the loop calls their hooks around every
step (penalty, gradient, swaps) and records their parameters in the checkpoint's ``train_config``. The
regularisers stay on while pruning (as the reference's), BIMT's swaps do not.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from itertools import pairwise
from pathlib import Path
from types import EllipsisType
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.metrics import onehot_mse
from ..errors import ModscopeError
from ..runtime.modules import device_errors, resolve_device, threads_for, torch_threads
from ..runtime.options import settle
from ..runtime.seeds import torch_seeds
from ..tasks.base import Task
from .bimt import BIMT, BIMTConfig, BIMTStrategy
from .checkpoint import Checkpoint, save_checkpoint
from .clusterability import _count, cluster_regulariser
from .models import ACTIVATIONS, MLP, Architecture
from .pruning import magnitude_mask, polynomial_sparsity
from .strategy import Regulariser

__all__ = [
    "RECIPES",
    "TrainConfig",
    "TrainResult",
    "architecture_for",
    "evaluate",
    "forward",
    "init_model",
    "make_config",
    "parse_widths",
    "train",
    "weight_sparsity",
]

# Named presets: the options a recipe fills when they are left unset (explicit options win).
RECIPES: dict[str, dict[str, Any]] = {
    # Filan et al. 2021's Keras training (spec §3): Glorot-uniform weights and zero biases, Adam 1e-3
    # at batch 128 for 20 epochs; pruning: a fresh Adam and 20 more epochs while PolynomialDecay
    # raises the sparsity, the masks updated every 10 steps.
    "filan2021": {
        "init": "glorot",
        "lr": 1e-3,
        "batch_size": 128,
        "epochs": 20,
        "prune_epochs": 20,
        "prune_every": 10,
        "prune_fresh_optimizer": True,
    },
}

_FALLBACK = {"hidden": (64, 64), "steps": 1000, "batch_size": 128, "lr": 1e-3,
             "activation": "relu"}
_EVAL_CHUNK = 8192

Init = Literal["torch", "glorot"]  # TrainConfig.init
Loss = Literal["task", "mse_onehot"]  # TrainConfig.loss


@dataclass(frozen=True)
class TrainConfig:
    """How to train: every option of `train`, keyword-only (``TrainConfig(hidden=(64, 64), ...)``).

    Unset options (``None``) come from the task's defaults when the config is resolved
    ([`resolve()`][modscope.training.trainer.TrainConfig.resolve]); ``batch_size=None`` is full batch and
    ``...`` the task's default. ``l1`` / ``l2`` penalise Linear weights (``l1 * sum|W| + l2 * sum W^2``);
    ``weight_decay`` is AdamW's decoupled decay of every parameter (default: the task's for plain training, 0
    for BIMT). ``prune``: target sparsity in (0, 1), reached in ``prune_steps`` (default: ``steps``) steps of
    magnitude pruning after the main training (or ``prune_epochs`` epochs), the masks refreshed
    every ``prune_every`` steps (default: a tenth of the pruning, at most 100 steps), with a new
    Adam for the pruning phase when ``prune_fresh_optimizer``. ``bimt``: True (the task's BIMT
    defaults), a `BIMTConfig`, or a dict of overrides. ``init``: ``"torch"`` (torch's default,
    U(+-1/sqrt(fan_in)) weights and biases) or ``"glorot"`` (Glorot-uniform weights and zero
    biases, Keras's default). ``loss``: ``"task"`` (the task's) or ``"mse_onehot"`` (MSE of the
    logits to one-hot targets, BIMT's MNIST setting). ``recipe``: a named preset that fills the
    options left unset (`RECIPES`; ``"filan2021"`` is the reference training of Filan et al.).
    ``cluster_reg``: train for clusterability, a strategy object
    (`~modscope.training.clusterability.SpectralClusterability` for ``lam * sum_{i=2}^{K+1} mu_i``
    of the weight graph's Laplacian, or `~modscope.training.clusterability.BlockClusterability` for
    Golechha et al.'s block loss) or a dict ``{"loss": "spectral" | "golechha", **its parameters}``;
    not together with ``bimt``; recorded in ``train_config`` only when set.
    ``seed`` seeds the initialisation, the batch order and the dropout masks.
    """

    hidden: tuple[int, ...] | str | int | None = None
    activation: str | None = None
    dropout: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float | None = None
    prune: float | None = None
    prune_steps: int | None = None
    steps: int | None = None
    epochs: float | None = None
    batch_size: int | None | EllipsisType = ...
    lr: float | None = None
    seed: int = 0
    device: str = "cpu"
    bimt: BIMTConfig | dict | bool | None = None
    init: Init | None = None
    prune_every: int | None = None
    prune_epochs: float | None = None
    prune_fresh_optimizer: bool | None = None
    loss: Loss | None = None
    recipe: str | None = None
    cluster_reg: Regulariser | dict | None = None

    def resolve(self, task: Task) -> TrainConfig:
        """Every option checked and filled in from ``task.defaults`` (one-line errors)."""
        return make_config(task, **{f.name: getattr(self, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden) if isinstance(self.hidden, tuple) else self.hidden
        d["bimt"] = self.bimt.to_dict() if isinstance(self.bimt, BIMTConfig) else self.bimt
        if self.cluster_reg is None:  # unset: train_config stays as it was before the option existed
            del d["cluster_reg"]
        elif isinstance(self.cluster_reg, Regulariser):
            d["cluster_reg"] = self.cluster_reg.to_dict()
        return d


@dataclass
class TrainResult:
    """A trained network: its checkpoint and its metrics.

    ``metrics``: ``test_accuracy`` / ``train_accuracy`` (classification) and
    ``test_loss`` / ``train_loss`` (the task loss; MSE for regression), ``steps``,
    ``sparsity`` (fraction of zero Linear weights), ``seconds`` (wall time; kept out of
    the checkpoint so that it is reproducible byte for byte), and for BIMT ``swaps`` and
    ``connection_cost``.
    """

    checkpoint: Checkpoint
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        ck = self.checkpoint
        # the metrics at the top level (what `train --json` promises), their context beside them
        return {
            **self.metrics,
            "task": ck.task,
            "architecture": ck.architecture.to_dict(),
            "train_config": ck.train_config,
            "seed": ck.seed,
            "bimt": None if ck.bimt is None else {
                k: v for k, v in ck.bimt.items() if k not in ("permutations", "coordinates")
            },
        }

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.checkpoint)


# -- option checking --------------------------------------------------------------------------
def parse_widths(hidden: str | int | Sequence[int]) -> tuple[int, ...]:
    """``"256,256"`` / ``256`` / ``[256, 256]`` -> ``(256, 256)``; positive integers only."""
    if isinstance(hidden, str):
        try:  # int() ignores the spaces around each width
            widths = tuple(int(p) for p in hidden.split(",") if p.strip())
        except ValueError:
            raise ModscopeError(
                f"hidden widths must be comma-separated positive integers, got {hidden!r}"
            ) from None
    elif isinstance(hidden, int | np.integer):
        widths = (int(hidden),)
    else:
        widths = tuple(hidden)
        if not all(isinstance(w, int | np.integer) for w in widths):
            raise ModscopeError(f"hidden widths must be positive integers, got {list(widths)}")
        widths = tuple(int(w) for w in widths)
    if not widths or min(widths) < 1:
        raise ModscopeError(f"hidden widths must be positive integers, got {hidden!r}")
    return widths


def _check_number(name: str, value: float, low: float, *, strict: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ModscopeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise ModscopeError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    return value


def _embed_dim(task: Task) -> int | None:
    if task.vocab_size is None:
        return None
    if (task.defaults or {}).get("embed_dim"):
        return int(task.defaults["embed_dim"])
    n_tok = task.n_tokens or 1
    if task.n_inputs > n_tok and task.n_inputs % n_tok == 0:
        return task.n_inputs // n_tok
    return 32


def _with_recipe(o: dict[str, Any]) -> dict[str, Any]:
    """``o`` with the options its recipe fills where they are unset (explicit options win)."""
    recipe = o["recipe"]
    if recipe is None:
        return o
    if recipe not in RECIPES:
        raise ModscopeError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    blocked = {  # steps given: the recipe's epochs do not apply; nor its pruning epochs without pruning
        "epochs": o["steps"] is not None,
        "prune_epochs": o["prune"] is None or o["prune_steps"] is not None,
    }
    for key, value in RECIPES[recipe].items():
        unset = o[key] is ... if key == "batch_size" else o[key] is None
        if unset and not blocked.get(key, False):
            o[key] = value
    return o


def _task_defaults(task: Task, bimt: Any) -> dict[str, Any]:
    """``task.defaults`` over `_FALLBACK`; under BIMT its ``bimt_*`` training defaults first (e.g. MNIST:
    784-100-100-10). A default of None is unset, but for ``batch_size`` (there None is full batch)."""
    defaults = dict(task.defaults or {})
    if bimt not in (None, False):
        defaults.update({k[5:]: v for k, v in defaults.items() if k.startswith("bimt_")})
    return {**_FALLBACK, **{k: v for k, v in defaults.items() if v is not None or k == "batch_size"}}


def _model_options(o: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The network and its penalties: hidden widths, activation, dropout, L1 / L2, target sparsity."""
    hidden = parse_widths(defaults["hidden"] if o["hidden"] is None else o["hidden"])
    activation = o["activation"] or defaults["activation"]
    if activation not in ACTIVATIONS:
        raise ModscopeError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    dropout = _check_number("dropout", o["dropout"], 0.0)
    if dropout >= 1.0:
        raise ModscopeError(f"dropout must be in [0, 1), got {dropout}")
    l1 = _check_number("l1", o["l1"], 0.0)
    l2 = _check_number("l2", o["l2"], 0.0)
    prune = o["prune"]
    if prune is not None:
        prune = _check_number("prune", prune, 0.0, strict=True)
        if prune >= 1.0:
            raise ModscopeError(f"prune (target sparsity) must be in (0, 1), got {prune}")
    return dict(hidden=hidden, activation=activation, dropout=dropout, l1=l1, l2=l2, prune=prune)


def _schedule(o: dict[str, Any], task: Task, defaults: dict[str, Any], prune: float | None) -> dict[str, Any]:
    """The optimisation: batch size, the number of steps of training and pruning (given as steps or as
    epochs), learning rate, seed, and whether pruning starts a fresh optimizer."""
    n_train = int(task.x_train.shape[0])
    if n_train < 1:
        raise ModscopeError(f"task {task.name} has no training examples")
    batch_size = defaults["batch_size"] if o["batch_size"] is ... else o["batch_size"]
    if batch_size is not None:
        batch_size = _count("batch size", batch_size, 1)
        batch_size = None if batch_size >= n_train else batch_size
    per_epoch = 1 if batch_size is None else math.ceil(n_train / batch_size)

    def from_epochs(name: str, epochs: Any, steps: Any) -> tuple[float | None, Any]:
        if epochs is None:
            return None, steps
        epochs = _check_number(name, epochs, 0.0, strict=True)
        derived = max(1, round(epochs * per_epoch))
        if steps is not None and steps != derived:  # a resolved config has both, consistent
            raise ModscopeError(f"give steps or {name}, not both")
        return epochs, derived

    epochs, steps = from_epochs("epochs", o["epochs"], o["steps"])
    steps = _count("steps", defaults["steps"] if steps is None else steps, 1)
    prune_epochs, prune_steps = from_epochs("prune epochs", o["prune_epochs"], o["prune_steps"])
    if prune is None and prune_steps:
        raise ModscopeError("pruning steps or epochs need a target sparsity (prune)")
    if prune_steps is None:
        prune_steps = steps if prune is not None else 0
    prune_steps = _count("prune steps", prune_steps, 1 if prune is not None else 0)
    prune_every = max(1, min(100, prune_steps // 10)) if o["prune_every"] is None else o["prune_every"]
    return {
        "batch_size": batch_size, "epochs": epochs, "steps": steps, "prune_epochs": prune_epochs,
        "prune_steps": prune_steps, "prune_every": _count("prune every", prune_every, 1),
        "lr": _check_number("lr", defaults["lr"] if o["lr"] is None else o["lr"], 0.0, strict=True),
        "seed": _count("seed", o["seed"], 0),
        "prune_fresh_optimizer": bool(o["prune_fresh_optimizer"]),
    }


def _strategy_options(o: dict[str, Any], task: Task, defaults: dict[str, Any], hidden: tuple[int, ...],
                      activation: str) -> dict[str, Any]:
    """BIMT or a clusterability regulariser, weight decay, initialisation and loss."""
    bimt = o["bimt"]
    if bimt is True or isinstance(bimt, dict):  # the task's BIMT defaults, then the dict's overrides
        bimt = BIMTConfig.from_task(task, **(bimt if isinstance(bimt, dict) else {}))
    elif bimt is False:
        bimt = None
    weight_decay = o["weight_decay"]
    if weight_decay is None:  # BIMT trains with AdamW, weight decay 0 (spec §6)
        weight_decay = 0.0 if bimt is not None else (task.defaults or {}).get("weight_decay", 0.0)
    weight_decay = _check_number("weight decay", weight_decay, 0.0)
    init = o["init"] or "torch"
    if init not in ("torch", "glorot"):
        raise ModscopeError(f"unknown init {init!r}; use 'torch' or 'glorot'")
    loss = o["loss"] or defaults.get("loss") or "task"
    if loss not in ("task", "mse_onehot"):
        raise ModscopeError(f"unknown loss {loss!r}; use 'task' or 'mse_onehot'")
    if loss == "mse_onehot" and task.n_classes is None:
        raise ModscopeError(f"loss mse_onehot needs a one-group classifier; {task.name} is not")
    cluster = cluster_regulariser(o["cluster_reg"])
    if cluster is not None:
        if bimt is not None:
            raise ModscopeError("cluster_reg and bimt are two training strategies; use one of them")
        cluster.check(architecture_for(task, hidden).widths, activation)
    return {"bimt": bimt, "weight_decay": weight_decay, "init": init, "loss": loss, "cluster_reg": cluster}


def make_config(task: Task, **options: Any) -> TrainConfig:
    """Check every option and fill the unset ones from the recipe, then from ``task.defaults``
    (under BIMT the task's ``bimt_*`` training defaults first): a resolved `TrainConfig`."""
    o = _with_recipe(TrainConfig(**options).__dict__.copy())
    defaults = _task_defaults(task, o["bimt"])
    model = _model_options(o, defaults)
    schedule = _schedule(o, task, defaults, model["prune"])
    resolve_device(o["device"])
    strategy = _strategy_options(o, task, defaults, model["hidden"], model["activation"])
    return TrainConfig(**model, **schedule, **strategy, device=str(o["device"]), recipe=o["recipe"])


# -- building blocks --------------------------------------------------------------------------
def architecture_for(task: Task, hidden: Sequence[int], activation: str = "relu",
                     dropout: float = 0.0) -> Architecture:
    """The MLP for ``task``: ``n_inputs -> hidden... -> n_outputs`` (embedding for token tasks)."""
    embed_dim = _embed_dim(task)
    n_tokens = None if embed_dim is None else task.n_tokens or 1
    n_in = task.n_inputs if embed_dim is None else n_tokens * embed_dim
    return Architecture(
        (n_in, *hidden, task.n_outputs), activation, dropout, task.vocab_size, embed_dim, n_tokens
    )


def init_model(arch: Architecture, generator: torch.Generator, init: Init = "torch") -> MLP:
    """A fresh MLP, every number drawn from ``generator`` (never the global RNG). ``init``:
    torch's default (U(+-1/sqrt(fan_in)) weights and biases) or Glorot-uniform weights with zero
    biases (Keras's default, the reference's); embeddings N(0, 1) either way."""
    with torch.device("meta"):
        net = MLP(arch)
    net = net.to_empty(device="cpu")
    with torch.no_grad():
        for layer in net.layers:
            if init == "glorot":
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                nn.init.zeros_(layer.bias)
                continue
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        if net.embedding is not None:
            nn.init.normal_(net.embedding.weight, generator=generator)
    return net


def forward(model: MLP, x: torch.Tensor, bimt: BIMT | None = None,
            dropout_generator: torch.Generator | None = None) -> torch.Tensor:
    """The model on task-ordered inputs, returning task-ordered outputs ``(batch, n_out)``.

    With ``bimt`` the input features / outputs are permuted by its current positions; with
    ``dropout_generator`` dropout masks are drawn from it (training), else none (eval).
    """
    h = model.embed(x)
    if bimt is not None:
        h = bimt.to_positions(h)
    p = model.arch.dropout
    *hidden, output = model.layers
    for layer in hidden:
        h = model.act(layer(h))
        if p > 0 and dropout_generator is not None:
            keep = torch.rand(h.shape, generator=dropout_generator, device=h.device) >= p
            h = h * keep / (1.0 - p)
    h = output(h)
    if bimt is not None:
        h = bimt.to_task(h)
    return h


def _batches(n: int, batch_size: int | None,
             generator: torch.Generator) -> Iterator[torch.Tensor | None]:
    """Index tensors of successive minibatches, a fresh permutation per epoch (None = all)."""
    while True:
        if batch_size is None:
            yield None
            continue
        yield from torch.randperm(n, generator=generator).split(batch_size)


def weight_sparsity(model: MLP) -> float:
    """Fraction of exactly-zero entries over all Linear weight matrices."""
    zeros = sum(int((layer.weight == 0).sum()) for layer in model.layers)
    return zeros / sum(layer.weight.numel() for layer in model.layers)


@torch.no_grad()
def evaluate(task: Task, model: MLP, bimt: BIMT | None = None,
             device: torch.device | str = "cpu") -> dict[str, float]:
    """Train / test loss (and accuracy for classification) of ``model`` in eval mode."""
    model.eval()
    out: dict[str, float] = {}
    for split, x, y in (("train", task.x_train, task.y_train), ("test", task.x_test, task.y_test)):
        if x.shape[0] == 0:
            continue
        preds = torch.cat([forward(model, chunk.to(device), bimt).cpu() for chunk in x.split(_EVAL_CHUNK)])
        out[f"{split}_loss"] = float(task.loss(preds, y))
        if task.loss_kind == "ce":
            out[f"{split}_accuracy"] = task.metric(preds, y)
    return out


# -- the trainer ------------------------------------------------------------------------------
def train(
    task: Task,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    threads: int | None = None,
    **options: Any,
) -> TrainResult:
    """Train an MLP on ``task`` and return its checkpoint and metrics.

    ``config``: a `TrainConfig`, or its fields as keyword ``options`` (``train(task, steps=1000,
    hidden=(64, 64))``), not both; unset options come from ``task.defaults``. BIMT trains with
    AdamW (weight decay 0), swaps every ``swap_every`` steps of the main training (not while
    pruning), and thresholds small parameters at the end. ``threads``: torch threads while
    training (default: one for small networks, where more only cost, else torch's setting); the
    same seed and thread count give a byte-identical checkpoint.
    """
    cfg = settle(TrainConfig, config, options).resolve(task)
    arch = architecture_for(task, cfg.hidden, cfg.activation, cfg.dropout)
    work = sum(a * b for a, b in pairwise(arch.widths)) * (cfg.batch_size or task.x_train.shape[0])
    with torch_threads(threads_for(work, threads)), device_errors("--batch-size (batch_size=) or --hidden"):
        return _train(task, cfg, arch, progress)


def _optimizer(model: MLP, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.bimt is not None or cfg.weight_decay:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def _objective(cfg: TrainConfig, model: MLP, loss: torch.Tensor, strategies: Sequence[Regulariser],
               step: int) -> torch.Tensor:
    """The task loss plus L1 / L2 of the Linear weights and each strategy's penalty."""
    objective = loss
    if cfg.l1:
        objective = objective + cfg.l1 * sum(layer.weight.abs().sum() for layer in model.layers)
    if cfg.l2:
        objective = objective + cfg.l2 * sum(layer.weight.square().sum() for layer in model.layers)
    for strategy in strategies:
        term = strategy.penalty(model, step)
        if term is not None:
            objective = objective + term
    return objective


def _train(task: Task, cfg: TrainConfig, arch: Architecture, progress: bool) -> TrainResult:
    dev = resolve_device(cfg.device)
    init_seed, batch_seed, drop_seed = torch_seeds(cfg.seed, 3)
    model = init_model(arch, torch.Generator().manual_seed(init_seed), cfg.init).to(dev)
    drop_gen = torch.Generator(device=dev).manual_seed(drop_seed)
    # BIMT's state (None without it) and the training strategies whose hooks run around each step
    bimt_state = None if cfg.bimt is None else BIMT(cfg.bimt, arch.widths, task.input_shape, device=dev)
    strategies: list[Regulariser] = [] if bimt_state is None else [BIMTStrategy(bimt_state)]
    if cfg.cluster_reg is not None:  # a copy: the run's state stays out of the caller's config
        strategies.append(copy.copy(cfg.cluster_reg))
    opt = _optimizer(model, cfg)
    task_loss = task.loss if cfg.loss == "task" else partial(onehot_mse, n_classes=task.n_classes)

    x_train, y_train = task.x_train.to(dev), task.y_train.to(dev)
    batches = _batches(x_train.shape[0], cfg.batch_size, torch.Generator().manual_seed(batch_seed))
    weights = [layer.weight for layer in model.layers]
    masks: list[torch.Tensor] | None = None
    total = cfg.steps + cfg.prune_steps

    start = time.perf_counter()
    model.train()
    for strategy in strategies:
        strategy.start(model, cfg.steps)
    names = ", ".join("BIMT" if s.name == "bimt" else s.name for s in strategies)
    bar = tqdm(total=total, disable=not progress, file=sys.stderr, mininterval=0.5,
               desc=f"train {task.name}" + (f" ({names})" if names else ""))
    for step in range(total):
        if step >= cfg.steps:  # pruning: magnitude masks, refreshed on the TF schedule and on the last step
            t = step - cfg.steps
            if t == 0 and cfg.prune_fresh_optimizer:  # the reference recompiles: a new Adam
                opt = _optimizer(model, cfg)
            if t % cfg.prune_every == 0 or t == cfg.prune_steps - 1:
                s = polynomial_sparsity(t, cfg.prune_steps - 1, cfg.prune)
                masks = [magnitude_mask(w, s) for w in weights]
                _apply_masks(weights, masks)
        for strategy in strategies:
            strategy.before_step(model, step)
        idx = next(batches)
        xb, yb = (x_train, y_train) if idx is None else (x_train[idx], y_train[idx])
        loss = task_loss(forward(model, xb, bimt_state, drop_gen), yb)
        opt.zero_grad(set_to_none=True)
        _objective(cfg, model, loss, strategies, step).backward()
        for strategy in strategies:  # e.g. BIMT's lambda * cc: its gradient added directly (cheaper)
            strategy.add_grad(model, step)
        opt.step()
        if masks is not None:
            _apply_masks(weights, masks)
        for strategy in strategies:  # BIMT's swap passes (main training only)
            strategy.after_step(model, step, opt)
        bar.update(1)
        if progress and step % 200 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}", refresh=False)
    bar.close()
    metrics: dict[str, Any] = {}
    for strategy in strategies:  # BIMT: threshold, connection cost, swaps
        metrics.update(strategy.finish(model))
    return _result(task, cfg, model, bimt_state, metrics, time.perf_counter() - start)


def _result(task: Task, cfg: TrainConfig, model: MLP, bimt_state: BIMT | None, metrics: dict[str, Any],
            seconds: float) -> TrainResult:
    """The trained model's metrics (after the strategies' own ``metrics``) and its checkpoint."""
    metrics.update(evaluate(task, model, bimt_state, cfg.device))  # in eval mode
    metrics.update(steps=cfg.steps + cfg.prune_steps, sparsity=weight_sparsity(model))
    ckpt = Checkpoint(
        architecture=model.arch,
        state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        task={"name": task.name, "params": _plain(dict(task.params or {}))},
        train_config=cfg.to_dict(),
        seed=cfg.seed,
        metrics=dict(sorted(metrics.items())),
        bimt=None if bimt_state is None else bimt_state.state(),
    )
    metrics["seconds"] = seconds
    return TrainResult(checkpoint=ckpt, metrics=dict(sorted(metrics.items())))


def _plain(obj: Any) -> Any:
    """Task parameters as plain data (paths -> str) so ``weights_only`` loading accepts them."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


@torch.no_grad()
def _apply_masks(weights: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
    for w, m in zip(weights, masks, strict=True):
        w.mul_(m)

