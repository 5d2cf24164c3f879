"""``modscope train``: train a plain, regularised, pruned, BIMT or clusterability-trained MLP on a task,
or the user's own module (``--model``) on their data file, plainly, with BIMT or for clusterability."""

from __future__ import annotations

from types import EllipsisType

from ..errors import ModscopeError
from .options import check_outputs, device_flag, input_dtype_flag, numbers, progress_flag, write_result

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an MLP on a task, or your module on your data (plain, with BIMT or for clusterability)",
        description="Train an MLP on a named task with Adam and write a modscope checkpoint (unset options "
        "take the task's defaults), or, with --model, your own module on your --data file and write its "
        "trained state dict.",
    )
    p.add_argument("--task", help="task name (listed in docs/guide/data.md)")
    p.add_argument("--data", metavar="PATH",
                   help="data folder for file-backed tasks; --model: your data file (.npz, .pt)")
    p.add_argument("--task-seed", type=int, default=0, help="seed of the task's data (default 0)")
    p.add_argument("--hidden", help="hidden widths, e.g. 256,256 (default: the task's)")
    p.add_argument("--activation", help="relu, silu, tanh, gelu or sigmoid (default: the task's)")
    for flag, what in (("--dropout", "dropout probability"), ("--l1", "L1 penalty on weights"),
                       ("--l2", "L2 penalty on weights")):
        p.add_argument(flag, type=float, default=0.0, help=f"{what} (default 0)")
    p.add_argument("--weight-decay", type=float,
                   help="AdamW decoupled weight decay (default: the task's; 0 with --bimt)")
    _pruning_flags(p)
    p.add_argument(
        "--init",
        choices=["torch", "glorot"],
        help="weight initialisation: torch's default (default) or Glorot-uniform with zero biases (Keras)",
    )
    p.add_argument("--loss", choices=["task", "mse_onehot"], help="training loss (default: the task's)")
    p.add_argument(
        "--recipe",
        choices=["filan2021"],
        help="a preset for the options left unset: filan2021 = the reference's Keras training "
        "(Glorot init, Adam 1e-3, batch 128, 20 epochs; pruning: fresh Adam, 20 epochs, masks every "
        "10 steps)",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimizer steps (default: the task's)")
    length.add_argument("--epochs", type=float, help="passes over the training set")
    p.add_argument("--batch-size", help="minibatch size or 'full' (default: the task's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, batches, dropout (default 0)")
    device_flag(p, "training runs")
    _bimt_flags(p)
    _cluster_flags(p)
    _model_flags(p)
    p.add_argument("--out", required=True, metavar="PATH",
                   help="checkpoint to write (.pt); --model: the trained state dict (.safetensors or .pt)")
    p.add_argument("--json", metavar="PATH", help="write metrics and config as JSON")
    progress_flag(p)
    p.set_defaults(run=run)


def _pruning_flags(p) -> None:
    p.add_argument("--prune", type=float, metavar="SPARSITY",
                   help="magnitude-prune to this sparsity in (0, 1) after training")
    p.add_argument("--prune-steps", type=int, help="pruning fine-tune steps (default: --steps)")
    p.add_argument("--prune-epochs", type=float, help="pruning fine-tune length in epochs (instead of steps)")
    p.add_argument("--prune-every", type=int,
                   help="steps between magnitude-mask updates (default: a tenth, <= 100)")
    p.add_argument("--prune-fresh-optimizer", action="store_true", default=None,
                   help="a new Adam for the pruning phase (the reference recompiles its model)")


# the --bimt-* flags of one number: the flag, its BIMTConfig field, its type and help
_BIMT_NUMBERS = (
    ("--bimt-lambda", "lam", float, "connection-cost weight lambda_0"),
    ("--bimt-A", "A", float, "distance weight factor A (0 = plain L1)"),
    ("--bimt-y-star", "y_star", float, "distance between layers y*"),
    ("--bimt-top-k", "top_k", int, "neurons moved per layer per swap pass"),
    ("--bimt-swap-every", "swap_every", int, "steps between swap passes (0 = never)"),
    ("--bimt-threshold", "threshold", float, "zero |parameters| below this at the end"),
)


def _bimt_flags(p) -> None:
    g = p.add_argument_group("BIMT (brain-inspired modular training); defaults from the task")
    g.add_argument("--bimt", action="store_true", help="train with BIMT")
    for flag, _, kind, text in _BIMT_NUMBERS:
        g.add_argument(flag, type=kind, help=text)
    g.add_argument("--bimt-reduction", choices=["sum", "mean"], help="per-tensor cost reduction")
    g.add_argument(
        "--bimt-lambdas",
        metavar="L1,L2,L3",
        help="three lambdas for the three phases of training (quarters: 1/4, 1/2, 1/4), e.g. 0.01,0.1,1",
    )
    g.add_argument(
        "--bimt-metric",
        choices=["l1", "l2"],
        help="--model: the distance between unit positions (default l1; modscope's MLP is always l1)",
    )


def _cluster_flags(p) -> None:
    c = p.add_argument_group(
        "training for clusterability (spec §7; not with --bimt)",
        "spectral (Filan et al. 2021): loss = task loss + LAMBDA * (mu_2 + ... + mu_{K+1}), the K "
        "smallest non-trivial eigenvalues of the normalised Laplacian of the |W| graph (0 for K+1 "
        "disconnected parts); golechha (Golechha et al. 2024-25): loss = task loss + LAMBDA * (1 - "
        "the share of sum W^2 inside C contiguous diagonal blocks)",
    )
    c.add_argument("--cluster-reg", type=float, metavar="LAMBDA",
                   help="train for clusterability with this penalty weight (>= 0)")
    c.add_argument("--cluster-loss", choices=["spectral", "golechha"],
                   help="which penalty (default spectral)")
    c.add_argument("--cluster-eigs", type=int, metavar="K",
                   help="spectral: number of eigenvalues after the trivial first, K = clusters - 1 "
                   "(default 3, i.e. 4 clusters; 11 for 12)")
    c.add_argument("--cluster-reg-every", type=int, metavar="N",
                   help="spectral: solve the eigenproblem every N steps (default 1 = exact every "
                   "step); in between the eigenvectors are reused, tracked by one subspace step")
    c.add_argument("--cluster-reg-normalize", action="store_true", default=None,
                   help="spectral: before every step rescale each hidden ReLU unit to incoming weights "
                   "+ bias of norm sqrt(2), outgoing weights inversely (the reference's; same function)")
    c.add_argument("--cluster-reg-clusters", type=int, metavar="C",
                   help="golechha: contiguous blocks of units per layer (default 4)")
    c.add_argument("--cluster-reg-layers", choices=["hidden", "all"],
                   help="golechha: penalise the hidden-to-hidden matrices (default) or every layer")


def _model_flags(p) -> None:
    g = p.add_argument_group(
        "your own module (--model instead of --task; with --data FILE)",
        "train the module your factory builds, from its own initial weights, on your data file; "
        "--bimt and --cluster-reg act on its unit graph (any traced network)",
    )
    g.add_argument("--model", metavar="PKG.MODULE:FACTORY",
                   help="build the module with this factory (your code; run from your project folder)")
    g.add_argument(
        "--input-shape",
        metavar="SHAPE",
        help="--model: the example input's shape, batch first, e.g. 1,3,32,32 (default: the factory's, "
        "else the first example of --data)",
    )
    input_dtype_flag(g)


def _flag(attribute: str) -> str:
    """The flag of an ``args`` attribute: ``cluster_reg_every`` -> ``--cluster-reg-every``."""
    return "--" + attribute.replace("_", "-")


# the --cluster-* flags (args attributes) of each loss; the option is the attribute's last word
_SPECTRAL = ("cluster_eigs", "cluster_reg_every", "cluster_reg_normalize")
_GOLECHHA = ("cluster_reg_clusters", "cluster_reg_layers")


def _cluster_reg(args) -> dict | None:
    """The ``cluster_reg`` option from the ``--cluster-*`` flags (one-line errors)."""
    if args.cluster_reg is None:
        if any(getattr(args, a) is not None for a in (*_SPECTRAL, *_GOLECHHA, "cluster_loss")):
            raise ModscopeError("--cluster-* options need --cluster-reg LAMBDA")
        return None
    if args.bimt:
        raise ModscopeError("--cluster-reg and --bimt are two training strategies; use one of them")
    loss = args.cluster_loss or "spectral"
    own, other = (_SPECTRAL, _GOLECHHA) if loss == "spectral" else (_GOLECHHA, _SPECTRAL)
    wrong = [_flag(a) for a in other if getattr(args, a) is not None]
    if wrong:
        raise ModscopeError(f"--cluster-loss {loss} does not take {', '.join(wrong)}")
    given = {a.split("_")[-1]: getattr(args, a) for a in own}
    return {"loss": loss, "lam": args.cluster_reg, **{k: v for k, v in given.items() if v is not None}}


# BIMTConfig field <- its --bimt-* flag's args attribute (argparse's: --bimt-top-k -> bimt_top_k)
_BIMT_FLAGS = {field: flag[2:].replace("-", "_") for flag, field, _, _ in _BIMT_NUMBERS}
_BIMT_FLAGS["reduction"] = "bimt_reduction"
# the TrainConfig fields whose flags are read here; every other field is a flag of the same name, as given
_READ_HERE = ("batch_size", "bimt", "cluster_reg")


def _bimt_options(args, flags: dict[str, str]) -> dict | None:
    """The ``--bimt-*`` flags given (``flags``: option <- args attribute) as BIMT options, None
    without ``--bimt`` (an option without it is a one-line error)."""
    overrides = {field: getattr(args, flag) for field, flag in flags.items()}
    overrides["lambdas"] = numbers(args.bimt_lambdas, 3, float,
                                   "--bimt-lambdas must be three comma-separated numbers")
    given = {k: v for k, v in overrides.items() if v is not None}
    if given and not args.bimt:
        raise ModscopeError("--bimt-* options need --bimt")
    return given if args.bimt else None


def _batch_size(text: str | None) -> int | None | EllipsisType:
    """``--batch-size``: ``...`` (the task's) when absent, None for ``full``, else an integer."""
    if text is None:
        return ...
    if text.strip().lower() == "full":
        return None
    try:
        return int(text)
    except ValueError:
        raise ModscopeError(f"--batch-size must be a positive integer or 'full', got {text!r}") from None


def run(args) -> int:
    """Train modscope's MLP on ``--task`` or the user's ``--model``, write it to ``--out`` (and
    ``--json``) and print one line: what trained, how long, its test metrics."""
    result, what, summary = (_run_task if args.model is None else _run_model)(args)
    mode = " BIMT" if args.bimt else ""
    if args.cluster_reg is not None:  # not with --bimt (_cluster_reg)
        mode = f" {args.cluster_loss or 'spectral'} cluster-reg {args.cluster_reg:g}"
    write_result(args, result.to_dict, f"{what}{mode}: {summary} -> {args.out}\n", source=args.out)
    return 0


def _run_task(args) -> tuple:
    """``--task``: modscope's MLP (`modscope.training.trainer.train`), saved as a checkpoint:
    ``(result, what trained, its steps, time and metrics)``."""
    if args.task is None:
        raise ModscopeError(
            "train needs --task NAME (modscope's MLP) or --model PKG.MODULE:FACTORY with --data FILE "
            "(your module)"
        )
    if args.input_shape is not None or args.bimt_metric is not None:
        raise ModscopeError("--input-shape and --bimt-metric go with --model (modscope's MLP needs neither)")
    from dataclasses import fields

    from ..tasks import get_task
    from ..training.trainer import TrainConfig, train

    bimt = _bimt_options(args, _BIMT_FLAGS)
    cluster_reg = _cluster_reg(args)
    check_outputs({"--out": args.out, "--json": args.json}, no_stdout=("--out",))
    batch = _batch_size(args.batch_size)
    task = get_task(args.task, seed=args.task_seed, data=args.data)
    as_given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in _READ_HERE}
    result = train(task, **as_given, batch_size=batch, bimt=bimt, cluster_reg=cluster_reg,
                   progress=not args.no_progress)
    result.save(args.out)
    m = result.metrics
    # the last two only after training for clusterability (its strategy's final metrics)
    names = ["test_accuracy", "test_loss", "sparsity", "cluster_penalty", "clusterability"]
    shown = ", ".join(f"{k} {m[k]:.4g}" for k in names if k in m)
    widths = "-".join(map(str, result.checkpoint.architecture.widths))
    return result, f"{task.name} {widths}", f"{m['steps']} steps in {m['seconds']:.1f} s, {shown}"


# the --task options that shape modscope's MLP or its training, with their values when not given
_TASK_ONLY = {"task_seed": 0, "hidden": None, "activation": None, "dropout": 0.0, "l1": 0.0, "l2": 0.0,
              "prune": None, "prune_steps": None, "prune_epochs": None, "prune_every": None,
              "prune_fresh_optimizer": None, "init": None, "loss": None, "recipe": None, "epochs": None,
              "cluster_reg_every": None, "cluster_reg_normalize": None}


def _model_options(args) -> dict:
    """``train_model``'s keyword options from the flags of a ``--model`` run (one-line errors)."""
    if args.task is not None:
        raise ModscopeError(
            "--task and --model exclude each other: --task trains modscope's MLP on a named task, "
            "--model your module on --data FILE"
        )
    if args.data is None:
        raise ModscopeError(
            "--model needs --data FILE: your data (.npz or .pt with x_train, y_train, x_test, y_test)"
        )
    wrong = [_flag(k) for k, v in _TASK_ONLY.items() if getattr(args, k) != v]
    if wrong:
        raise ModscopeError(f"--model does not take {', '.join(wrong)} (options of --task's MLP training)")
    bimt = _bimt_options(args, {**_BIMT_FLAGS, "metric": "bimt_metric"})
    batch = _batch_size(args.batch_size)
    return dict(steps=1000 if args.steps is None else args.steps, batch_size=128 if batch is ... else batch,
                lr=1e-3 if args.lr is None else args.lr, weight_decay=args.weight_decay or 0.0,
                seed=args.seed, device=args.device, bimt=bimt, cluster_reg=_cluster_reg(args),
                input_shape=args.input_shape, input_dtype=args.input_dtype, progress=not args.no_progress)


def _run_model(args) -> tuple:
    """``--model``: the user's module trained on their data (`modscope.workflows.user_models.train_model`),
    its state dict saved: ``(result, what trained, its steps, time and metrics)``."""
    from ..workflows.user_models import train_model

    options = _model_options(args)
    check_outputs({"--out": args.out, "--json": args.json}, no_stdout=("--out",))
    result = train_model(args.model, args.data, out=args.out, **options)
    fit = result.fit
    shown = [f"test {fit.metric_name} {fit.metric:.4g}"]
    shown += [f"{k} {v:.4g}" for k, v in fit.strategy.items() if isinstance(v, float)]
    return result, args.model, f"{fit.steps} steps in {result.seconds:.1f} s, " + ", ".join(shown)
